"""ctxtui.runner: commands, detached launch, pid checks, stop file, kill, run history (no Textual)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import scripted_events, write_run
from ctxtui import runner


def test_command_is_the_engine_cli_or_accelerate_launch(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    single = runner.build_command(tmp_path, run_dir, num_processes=1)
    assert single == [sys.executable, "-m", "engine.cli", "run", str(tmp_path), "--run-dir", str(run_dir)]
    several = runner.build_command(tmp_path, run_dir, num_processes=4)
    assert "launch" in " ".join(several) and "accelerate" in " ".join(several)
    assert several[several.index("--num_processes") + 1] == "4"
    assert several[-6:] == ["-m", "engine.cli", "run", str(tmp_path), "--run-dir", str(run_dir)]
    resume = runner.build_command(tmp_path, run_dir, resume=True)
    assert resume[-2:] == ["--resume", str(run_dir)]
    assert runner.format_command(["a b", "c"]) == "'a b' c"


def test_new_run_dirs_are_unique(tmp_path):
    first = runner.new_run_dir(tmp_path, "demo")
    first.mkdir(parents=True)
    second = runner.new_run_dir(tmp_path, "demo")
    assert first != second and first.name.endswith("-demo")


def test_launch_detached_then_stop_file_and_kill(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    pid = runner.launch(["sleep", "30"], run_dir)
    try:
        assert runner.read_pid(run_dir) == pid and runner.run_alive(run_dir)
        assert (run_dir / "stdout.log").exists() and "sleep 30" in (run_dir / "command").read_text()
        runner.request_stop(run_dir)
        assert (run_dir / "STOP").exists()
        assert runner.kill(run_dir)
        assert not runner.run_alive(run_dir)
    finally:
        subprocess.run(["kill", "-9", str(pid)], capture_output=True)


def test_history_statuses_and_reattach_target(project_dir):
    write_run(project_dir, "20260101T000000Z-demo")  # completed
    stopped = scripted_events(done=False) + [{"type": "done", "time": time.time(), "stage": "done", "status": "stopped"}]
    write_run(project_dir, "20260102T000000Z-demo", events=stopped, results=False)
    crashed = write_run(project_dir, "20260103T000000Z-demo", events=scripted_events(done=False), results=False)
    (crashed / "pid").write_text("999999\n")  # no such process: it died without a done event
    live = write_run(project_dir, "20260104T000000Z-demo", events=scripted_events(done=False), results=False)
    sleeper = subprocess.Popen(["sleep", "30"])
    (live / "pid").write_text(f"{sleeper.pid}\n")
    try:
        runs = runner.list_runs(project_dir)
        assert [r.status for r in runs] == ["running", "interrupted", "stopped", "completed"]
        assert runs[0].resumable is False and runs[1].resumable and runs[2].resumable
        assert runner.find_running_run(project_dir) == live
    finally:
        sleeper.kill()
        sleeper.wait()
    assert runner.find_running_run(project_dir) is None


def test_a_resumed_run_counts_as_running_again():
    events = scripted_events(done=False) + [{"type": "done", "time": 1.0, "stage": "done", "status": "stopped"},
                                            {"type": "status", "time": 2.0, "stage": "setup", "message": "resuming"}]
    assert runner.fold_run_events(events).status == "running"


def test_engine_never_imports_the_ui():
    """The dependency runs one way (design.md): no engine module names textual or ctxtui."""
    import re
    from pathlib import Path

    import engine

    pattern = re.compile(r"^\s*(from|import)\s+(textual|ctxtui)\b", re.MULTILINE)
    offenders = [str(path) for path in Path(engine.__file__).parent.rglob("*.py") if pattern.search(path.read_text())]
    assert offenders == []


def test_a_recycled_pid_is_not_the_run(tmp_path):
    import os

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "pid").write_text(f"{os.getpid()}\n")  # alive, but ...
    os.utime(run_dir / "pid", (1.0, 1.0))  # ... it started long after this pid file was written
    if runner.process_start_time(os.getpid()) is None:
        pytest.skip("no /proc here: pid reuse cannot be detected")
    assert runner.run_alive(run_dir) is False
