"""The command-line conventions people expect (issue 23): --version, one rule for "no argument",
help text on every argument, and `init --template chat` making a project that checks and runs."""

from __future__ import annotations

import argparse
import json
from importlib import metadata

import pytest

from engine.cli import main


def parsers_of(entry, argv) -> list[argparse.ArgumentParser]:
    """Every parser `entry` builds (the top one and each subcommand's), caught at parse time."""
    caught = []

    def catch(self, args=None, namespace=None):
        caught.append(self)
        raise SystemExit(0)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", catch)
        with pytest.raises(SystemExit):
            entry(argv)
    (top,) = caught
    found = [top]
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += list(action.choices.values())
    return found


def test_version_names_the_package_and_the_libraries(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"ctxdistill {metadata.version('ctxdistill')} (")
    for name in ("torch", "transformers", "accelerate", "textual"):
        assert f"{name} {metadata.version(name)}" in line


def test_every_argument_and_flag_has_help_text():
    parsers = parsers_of(main, [])
    assert {parser.prog.split()[-1] for parser in parsers} >= {"ctxdistill", "run", "preview", "check", "eval", "init"}
    for parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"{parser.prog}: {action.dest} has no help"


def test_no_argument_means_the_current_folder(tmp_path, monkeypatch, capsys):
    help_text = " ".join(parsers_of(main, [])[0].format_help().split())
    assert "Without PROJECT_DIR, run, check and preview use the project in the current folder" in help_text
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "no project.toml in the current folder" in error and "pass PROJECT_DIR" in error
    assert main(["init", "here", "--template", "empty"]) == 0
    monkeypatch.chdir(tmp_path / "here")
    assert main(["check"]) == 0
    assert "here" in capsys.readouterr().out


@pytest.fixture(scope="module")
def chat_model_dir(tmp_path_factory):
    from chat_fixtures import build_chat_model_dir

    # A character tokenizer: the template's system prompt is about 500 tokens long.
    return build_chat_model_dir(tmp_path_factory.mktemp("chat-model"), "chatml", max_positions=1024)


def test_init_chat_makes_a_lora_system_prompt_project_that_checks_and_runs(tmp_path, chat_model_dir, capsys):
    from chat_fixtures import run_on_tiny_model

    from engine.project.loader import load_project

    folder = tmp_path / "assistant"
    assert main(["init", str(folder), "--template", "chat", "--model", str(chat_model_dir)]) == 0
    project = load_project(folder)
    assert project.model.name == str(chat_model_dir) and project.model.chat_template
    assert project.teacher.system and not project.student.system
    assert project.distill.lora.r > 0 and project.eval.metrics == ["rouge_l"] and project.eval.reference == "teacher"
    assert main(["check", str(folder)]) == 0
    run_dir = run_on_tiny_model(folder, tmp_path / "copy", chat_model_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= metrics["student_after"]["rouge_l"] <= 1
    first = json.loads((run_dir / "events.jsonl").read_text().splitlines()[0])
    assert first["versions"]["torch"] == metadata.version("torch")
    assert set(first["versions"]) >= {"ctxdistill", "torch", "transformers", "accelerate", "textual"}


def test_init_chat_without_a_model_names_the_default_and_other_templates_take_one(tmp_path):
    from engine.project.loader import load_project
    from engine.project.scaffold import DEFAULT_CHAT_MODEL

    assert main(["init", str(tmp_path / "chat"), "--template", "chat"]) == 0
    assert load_project(tmp_path / "chat").model.name == DEFAULT_CHAT_MODEL
    assert main(["init", str(tmp_path / "plain"), "--model", "some/where"]) == 0
    assert load_project(tmp_path / "plain").model.name == "some/where"
