"""Faults: stops and kills at any stage resume to the uninterrupted run's result; damaged files are never trusted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.project.loader import load_project
from engine.runs.events import read_events
from engine.run import new_run_dir, run
from engine.teacher.teacher_pass import load_cache
from engine.training.train import STOP_FILE

from engine_fixtures import write_project

IDENTITY_UNSTRIPPED = 'kind = "identity"\nstrip = false'


def project_with_small_batches(folder: Path, model: Path, **overrides) -> Path:
    """8 inputs in teacher batches of 2 (four batches), checkpoints every 2 steps."""
    project = write_project(folder, model, extract=IDENTITY_UNSTRIPPED, labels="sampled", max_steps=6, **overrides)
    text = (project / "project.toml").read_text()
    text = text.replace("batch_size = 16\n\n[distill]", "batch_size = 2\n\n[distill]")
    text = text.replace("seed = 0\n\n[eval]", "seed = 0\ncheckpoint_every = 2\n\n[eval]")
    (project / "project.toml").write_text(text)
    return project


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, char_model_dir):
    project = project_with_small_batches(tmp_path_factory.mktemp("whole") / "p", char_model_dir)
    assert main(["run", str(project), "--quiet"]) == 0
    (run_dir,) = (project / "runs").iterdir()
    return run_dir


def same_teacher(a: Path, b: Path) -> None:
    first, second = load_cache(a / "teacher"), load_cache(b / "teacher")
    assert [r.output_ids for r in first] == [r.output_ids for r in second]
    for x, y in zip(first, second):
        assert torch.equal(x.label_ids, y.label_ids) and torch.equal(x.label_probs, y.label_probs)


def same_metrics(a: Path, b: Path) -> None:
    first, second = (json.loads((run / "metrics.json").read_text()) for run in (a, b))
    for key in ("teacher", "student_before", "student_after", "answer_kl"):
        assert first[key] == second[key], key


def test_a_stop_in_the_teacher_pass_keeps_finished_batches(tmp_path, char_model_dir, uninterrupted):
    project = load_project(project_with_small_batches(tmp_path / "p", char_model_dir))
    run_dir = new_run_dir(project)

    def stop_after_two_batches(event):
        if event["type"] == "progress" and event["stage"] == "teacher" and event["step"] >= 4:
            (run_dir / STOP_FILE).touch()

    assert run(project, run_dir, listeners=[stop_after_two_batches]) is None
    assert read_events(run_dir / "events.jsonl")[-1]["status"] == "stopped"
    kept = sorted(path.name for path in (run_dir / "teacher" / "partial").glob("batch-*.pt"))
    assert kept == ["batch-000000.pt", "batch-000001.pt"]  # the stop took effect after the batch in flight

    lines = len(read_events(run_dir / "events.jsonl"))
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    resumed = read_events(run_dir / "events.jsonl")[lines:]
    assert any("2 batch(es) kept from the interrupted pass" in event.get("message", "") for event in resumed)
    assert not (run_dir / "teacher" / "partial").exists()
    same_teacher(run_dir, uninterrupted)
    same_metrics(run_dir, uninterrupted)


def test_a_stop_in_the_evaluation_continues_where_it_stopped(tmp_path, char_model_dir, monkeypatch):
    """Issue 20 item 18: the batches decoded before the stop are not decoded again, and the scores
    are the uninterrupted evaluation's."""
    import engine.teacher.generation as generation

    def small_eval_batches(folder: Path) -> Path:
        project = project_with_small_batches(folder, char_model_dir, eval_count=8)  # 4 batches of 2 per decode
        text = (project / "project.toml").read_text()
        (project / "project.toml").write_text(text.replace("reference = \"label\"\nbatch_size = 16",
                                                           "reference = \"label\"\nbatch_size = 2"))
        return project

    whole_project = small_eval_batches(tmp_path / "whole")
    assert main(["run", str(whole_project), "--quiet"]) == 0
    (whole,) = (whole_project / "runs").iterdir()

    project = load_project(small_eval_batches(tmp_path / "p"))
    run_dir = new_run_dir(project)

    def stop_in_the_students_evaluation(event):
        if event["type"] == "progress" and event["stage"] == "eval" and event.get("which") == "student_after" \
                and event["step"] >= 4:
            (run_dir / STOP_FILE).touch()

    assert run(project, run_dir, listeners=[stop_in_the_students_evaluation]) is None
    assert read_events(run_dir / "events.jsonl")[-1]["status"] == "stopped"
    kept = run_dir / "eval-progress"
    assert len(list((kept / "after-main").glob("batch-*.pt"))) == 2
    assert len(list((kept / "teacher-main").glob("batch-*.pt"))) == len(list((kept / "before-main").glob("batch-*.pt")))

    decoded_batches = []
    real_generate_batch = generation.generate_batch
    monkeypatch.setattr(generation, "generate_batch",
                        lambda model, tokenizer, prompts, **options: decoded_batches.append(len(prompts))
                        or real_generate_batch(model, tokenizer, prompts, **options))
    lines = len(read_events(run_dir / "events.jsonl"))
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    resumed = read_events(run_dir / "events.jsonl")[lines:]
    assert any(event.get("message", "").startswith("continuing the evaluation stopped earlier") for event in resumed)
    assert decoded_batches == [2, 2]  # only the student's last two batches were decoded again
    assert not kept.exists()
    same_metrics(run_dir, whole)


def test_a_damaged_checkpoint_falls_back_to_the_one_before(tmp_path, char_model_dir, uninterrupted):
    project = load_project(project_with_small_batches(tmp_path / "p", char_model_dir))
    run_dir = new_run_dir(project)

    def stop_at_step_four(event):
        if event["type"] == "checkpoint" and event["step"] == 4:
            (run_dir / STOP_FILE).touch()

    assert run(project, run_dir, listeners=[stop_at_step_four]) is None
    weights = run_dir / "checkpoints" / "step-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a disk that lost the end of the file

    lines = len(read_events(run_dir / "events.jsonl"))
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    messages = [event.get("message", "") for event in read_events(run_dir / "events.jsonl")[lines:]]
    assert any(message.startswith("checkpoint step-4 is damaged") for message in messages)
    assert "resumed from step-2" in messages
    same_metrics(run_dir, uninterrupted)


def test_a_damaged_teacher_cache_is_never_reused(tmp_path, char_model_dir, uninterrupted):
    import shutil

    project = project_with_small_batches(tmp_path / "p", char_model_dir)
    damaged = project / "runs" / "20000101T000000000Z-tiny" / "teacher"
    shutil.copytree(uninterrupted / "teacher", damaged)
    labels = damaged / "labels.pt"
    labels.write_bytes(labels.read_bytes()[:-100])  # key.json is whole, its labels are not
    assert main(["run", str(project), "--quiet"]) == 0
    newest = sorted((project / "runs").iterdir())[-1]
    events = read_events(newest / "events.jsonl")
    assert [event["cache"] for event in events if event.get("cache")] == ["miss"]
    same_teacher(newest, uninterrupted)


def _kill_when(command: list[str], run_dir: Path, condition, timeout: float = 120) -> None:
    """Start `command`, SIGKILL it as soon as `condition(events)` holds."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and process.poll() is None:
            if (run_dir / "events.jsonl").exists() and condition(read_events(run_dir / "events.jsonl")):
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before the moment to kill it"


@pytest.mark.parametrize("moment", ["teacher", "train"])
def test_a_killed_run_resumes_to_the_same_result(tmp_path, char_model_dir, uninterrupted, moment):
    project = project_with_small_batches(tmp_path / "p", char_model_dir)
    run_dir = tmp_path / "killed"
    conditions = {
        "teacher": lambda events: any(e["type"] == "progress" and e["stage"] == "teacher" and e["step"] >= 2 for e in events),
        "train": lambda events: any(e["type"] == "checkpoint" and e["step"] == 2 for e in events),
    }
    _kill_when([sys.executable, "-m", "engine.cli", "run", str(project), "--run-dir", str(run_dir), "--quiet"],
               run_dir, conditions[moment])
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    same_teacher(run_dir, uninterrupted)
    same_metrics(run_dir, uninterrupted)


PICKY_METRIC = '''

def picky(prediction, reference):
    if prediction == reference:
        return 1.0
    raise ValueError("cannot score " + repr(prediction))
'''


def test_a_metric_failing_after_training_keeps_the_student_and_eval_takes_the_fix(tmp_path, char_model_dir, capsys):
    project = write_project(tmp_path / "p", char_model_dir, max_steps=2, extract=IDENTITY_UNSTRIPPED,
                            metrics='["exact_match", "tasks:picky"]')
    with open(project / "tasks.py", "a") as file:
        file.write(PICKY_METRIC)
    assert main(["run", str(project), "--quiet"]) == 2  # it passes the start-up check (it scores a label against itself)
    err = capsys.readouterr().err
    assert "ValueError: cannot score" in err and "The trained student is kept" in err and "Traceback" not in err
    (run_dir,) = (project / "runs").iterdir()
    assert (run_dir / "student" / "config.json").exists() and not (run_dir / "metrics.json").exists()

    toml = project / "project.toml"
    toml.write_text(toml.read_text().replace('metrics = ["exact_match", "tasks:picky"]', 'metrics = ["exact_match"]'))
    assert main(["eval", str(run_dir)]) == 0
    assert set(json.loads((run_dir / "metrics.json").read_text())["student_after"]) == {"exact_match"}
    assert 'metrics = ["exact_match"]' in (run_dir / "project.toml").read_text()  # the run folder tells the truth


def test_resume_refuses_a_project_file_changed_where_finished_work_depends_on_it(tmp_path, char_model_dir, capsys):
    project_dir = write_project(tmp_path / "p", char_model_dir, max_steps=4, extract=IDENTITY_UNSTRIPPED)
    project = load_project(project_dir)
    run_dir = new_run_dir(project)

    def stop_early(event):
        if event["type"] == "train" and event["step"] >= 1:
            (run_dir / STOP_FILE).touch()

    assert run(project, run_dir, listeners=[stop_early]) is None
    toml = project_dir / "project.toml"
    original = toml.read_text()
    toml.write_text(original.replace("Reverse the letters.", "Sort the letters."))
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "changed since this run was launched" in err and "teacher.template" in err
    toml.write_text(original)  # back as launched: the resume goes on
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0


def test_a_runs_path_under_a_file_is_a_clear_error(tmp_path, char_model_dir, capsys):
    project = write_project(tmp_path / "p", char_model_dir, max_steps=1, extract=IDENTITY_UNSTRIPPED)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    assert main(["run", str(project), "--run-dir", str(tmp_path / "blocker" / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "a part of the path is a file, not a folder" in err and "Traceback" not in err


def test_a_full_disk_is_a_clear_error_and_the_run_resumes(tmp_path, char_model_dir, uninterrupted, capsys, monkeypatch):
    import errno

    import engine.training.train

    project = project_with_small_batches(tmp_path / "p", char_model_dir)
    run_dir = tmp_path / "full"
    original = engine.training.train.save_checkpoint

    def disk_full_at_step_four(accelerator, checkpoints_dir, step, events):
        if step == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(checkpoints_dir / "step-4"))
        return original(accelerator, checkpoints_dir, step, events)

    monkeypatch.setattr(engine.training.train, "save_checkpoint", disk_full_at_step_four)
    assert main(["run", str(project), "--run-dir", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the disk is full writing") and "Traceback" not in err
    assert f"ctxdistill run --resume {run_dir}" in err
    monkeypatch.setattr(engine.training.train, "save_checkpoint", original)  # space freed
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    same_metrics(run_dir, uninterrupted)
