"""The bad-input corpus (issue 11): every mistake gets exit status 2 and one clear message, never a traceback.

Each case in bad_inputs/cases.toml is a small change to bad_inputs/base/ and a
command. Most need no model (`ctxdistill check` draws the inputs and runs the
start-up checks in well under a second); the few marked `model = "char"` use
the tiny test model.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomlkit

from engine.cli import main

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
CASES = tomllib.loads((CORPUS / "cases.toml").read_text(encoding="utf-8"))["case"]


def build_project(case: dict, folder: Path, model: str | None) -> Path:
    """base/ with the case's changes applied, in `folder`."""
    shutil.copytree(CORPUS / "base", folder)
    data = tomllib.loads((folder / "project.toml").read_text(encoding="utf-8"))
    for dotted, value in case.get("set", {}).items():
        *tables, key = dotted.split(".")
        place = data
        for table in tables:
            place = place.setdefault(table, {})
        place[key] = value
    for dotted in case.get("unset", []):
        *tables, key = dotted.split(".")
        place = data
        for table in tables:
            place = place[table]
        del place[key]
    if model is not None:
        data["model"]["name"] = model
    text = case["raw"] if "raw" in case else tomlkit.dumps(data) + "\n" + case.get("append", "")
    (folder / "project.toml").unlink()
    if "project.toml" not in case.get("dirs", []):
        (folder / "project.toml").write_text(text, encoding="utf-8")
    if "folder" in case:
        shutil.copytree(CORPUS / case["folder"], folder, dirs_exist_ok=True)
    for name, content in case.get("files", {}).items():
        (folder / name).write_text(content, encoding="utf-8")
    for name in case.get("dirs", []):
        (folder / name).mkdir()
    return folder


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_the_corpus_is_large_and_well_formed():
    ids = [case["id"] for case in CASES]
    assert len(ids) >= 50 and len(set(ids)) == len(ids)
    for case in CASES:
        assert case.get("expect"), f"{case['id']}: every case names what its message must say"
        assert "folder" not in case or (CORPUS / case["folder"]).is_dir(), case["id"]


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_bad_input_gets_a_clear_message(case, tmp_path, capsys, request):
    model = str(request.getfixturevalue("char_model_dir")) if case.get("model") == "char" else None
    project = build_project(case, tmp_path / "project", model)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    argv = [part.format(project=project, tmp=scratch) for part in case.get("command", ["check", "{project}"])]
    status, output = run_cli(argv, capsys)
    assert status == 2, f"exit status {status}, output:\n{output}"
    assert "Traceback" not in output
    for expected in case["expect"]:
        assert expected in output, f"{expected!r} not in:\n{output}"
    for unwanted in case.get("absent", []):
        assert unwanted not in output, f"{unwanted!r} in:\n{output}"
    if argv[0] == "run" and "--run-dir" not in argv:
        assert not (project / "runs").exists(), "a project that fails its checks writes no run folder"


def test_the_base_project_passes_the_checks(tmp_path, capsys):
    project = build_project({}, tmp_path / "project", None)
    status, output = run_cli(["check", str(project)], capsys)
    assert status == 0, output
    assert "8 distillation inputs, 3 held out" in output and "ok" in output


def test_trust_remote_code_is_announced(tmp_path, capsys):
    project = build_project({"set": {"model.trust_remote_code": True}}, tmp_path / "project", None)
    status, output = run_cli(["check", str(project)], capsys)
    assert status == 0, output
    assert "warning: `model.trust_remote_code` = true" in output and "'toy-base'" in output


def test_a_bad_project_in_a_fresh_process_prints_no_traceback(tmp_path):
    """The real entry point, as a user runs it: message on stderr, status 2."""
    project = build_project({"set": {"inputs.function": "tasks:raises"}}, tmp_path / "project", None)
    result = subprocess.run([sys.executable, "-m", "engine.cli", "check", str(project)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("error: ") and "tasks.py, line 17, in raises" in result.stderr
