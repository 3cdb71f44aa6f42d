"""The libraries' progress bars stay out of the CLI's output unless `--verbose` (issue 26, item 7).

Run as a user runs it: a fresh `python -m engine.cli` process, with no progress-bar
switch in its environment. The project's own input function reads its rows with
`datasets.load_dataset` (a progress bar per split it generates), and the model load
draws transformers' "Loading weights" bar when bars are on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine_fixtures import write_project

ROOT = Path(__file__).resolve().parents[2]
TASKS = '''
def rows(rng, n):
    from pathlib import Path

    import datasets

    table = datasets.load_dataset("json", data_files=str(Path(__file__).with_name("rows.jsonl")), split="train")
    return [{"input": row["input"], "label": row["input"][::-1]} for row in table][:n]
'''
BARS = ("it/s]", "Loading weights", "Generating train split")


@pytest.fixture(scope="module")
def project(tmp_path_factory, char_model_dir) -> Path:
    folder = write_project(tmp_path_factory.mktemp("quiet") / "tiny", char_model_dir, count=4, eval_count=2)
    (folder / "tasks.py").write_text(TASKS)
    (folder / "rows.jsonl").write_text("".join(json.dumps({"input": f"abc{i}"}) + "\n" for i in range(6)))
    toml = folder / "project.toml"
    toml.write_text(toml.read_text().replace("tasks:reverse_inputs", "tasks:rows"))
    return folder


def cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if "PROGRESS_BARS" not in key and key != "CTXDISTILL_VERBOSE"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(cache), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_no_library_progress_bar_unless_verbose(project, tmp_path):
    quiet = cli("preview", str(project), "--n", "1", cache=tmp_path / "datasets-1")
    assert quiet.returncode == 0, quiet.stderr
    assert "--- teacher output" in quiet.stdout
    assert not [bar for bar in BARS if bar in quiet.stdout + quiet.stderr], quiet.stderr

    verbose = cli("--verbose", "preview", str(project), "--n", "1", cache=tmp_path / "datasets-2")
    assert verbose.returncode == 0, verbose.stderr
    assert "Loading weights" in verbose.stderr and "Generating train split" in verbose.stderr
