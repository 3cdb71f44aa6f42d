"""Experiment trackers (issue 10, item 6): `distill.report_to` sends events.jsonl's figures to TensorBoard, W&B, ...

TensorBoard is the tracker exercised end to end (it writes files and needs no
network); its event files are read back with TensorBoard's own reader.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.project.loader import load_project
from engine.errors import ConfigError
from engine.runs.events import read_events
from engine.runs.trackers import TRACKERS, TrackerSteps, Trackers, figures_of

from engine_fixtures import write_project

tensorboard = pytest.importorskip("tensorboard", reason="the `tensorboard` extra: pip install -e '.[tensorboard]'")


def with_report_to(folder: Path, model: Path, report_to: str, stage_tables: str = "", **overrides) -> Path:
    project = write_project(folder, model, **overrides)
    text = (project / "project.toml").read_text()
    (project / "project.toml").write_text(text.replace("[distill]\n", f"[distill]\nreport_to = {report_to}\n")
                                          + stage_tables)
    return project


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar TensorBoard finds under `folder`: tag -> [(step, value)] in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    for event_file in sorted(folder.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(event_file))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, []).extend((point.step, point.value) for point in accumulator.Scalars(tag))
    return {tag: sorted(points) for tag, points in found.items()}


def test_tracker_names_are_checked_when_the_project_loads(tmp_path, char_model_dir):
    project = load_project(with_report_to(tmp_path / "one", char_model_dir, '"tensorboard"'))
    assert project.distill.report_to == ["tensorboard"]  # a single name is a list of one

    with pytest.raises(ConfigError) as raised:
        load_project(with_report_to(tmp_path / "typo", char_model_dir, '["tensorbord", "neptune"]'))
    problems = "\n".join(raised.value.problems)
    assert "`distill.report_to` has 'tensorbord': expected some of tensorboard, wandb," in problems
    assert "(did you mean 'tensorboard'?)" in problems
    assert "`distill.report_to` has 'neptune'" in problems

    stages = '\n[[stages]]\nname = "first"\n[stages.distill]\nreport_to = ["wandb"]\n'
    with pytest.raises(ConfigError, match=r"`stages.first.distill.report_to`: trackers follow the whole run"):
        load_project(with_report_to(tmp_path / "staged", char_model_dir, '["tensorboard"]', stages))


def test_our_tracker_names_are_accelerates():
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    assert set(TRACKERS) <= set(LOGGER_TYPE_TO_CLASS)


def test_a_tracker_whose_package_is_missing_stops_the_run_before_any_work(tmp_path, char_model_dir, capsys):
    missing = next((name for name, package in TRACKERS.items() if importlib.util.find_spec(name) is None), None)
    if missing is None:
        pytest.skip("every tracker package is installed here")
    project = with_report_to(tmp_path / "missing", char_model_dir, f'["tensorboard", "{missing}"]')
    assert main(["run", str(project), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"`distill.report_to` has {missing!r}, but its package is not installed here: " \
           f"`pip install {TRACKERS[missing]}`" in error
    (run_dir,) = (project / "runs").iterdir()
    assert {event["stage"] for event in read_events(run_dir / "events.jsonl")} <= {"setup", "done"}
    assert not (run_dir / "tensorboard").exists() and not (run_dir / "teacher").exists()


def test_tensorboard_gets_the_figures_of_events_jsonl(tmp_path, char_model_dir):
    project = with_report_to(tmp_path / "tb", char_model_dir, '["tensorboard"]', max_steps=3)
    assert main(["run", str(project), "--quiet"]) == 0
    (run_dir,) = (project / "runs").iterdir()
    events = read_events(run_dir / "events.jsonl")
    logged = scalars(run_dir / "tensorboard")

    train = [event for event in events if event["type"] == "train"]
    assert [event["step"] for event in train] == [1, 2, 3]
    for figure in ("loss", "kl", "lr", "tokens_per_s", "memory_mb", "epoch"):
        expected = [(event["step"], pytest.approx(event[figure], rel=1e-6, abs=1e-9)) for event in train]
        assert logged[f"train/{figure}"] == expected, figure

    evals = [event for event in events if event["type"] == "eval"]
    assert {event["which"] for event in evals} == {"teacher", "student_before", "student_after"}
    for event in evals:
        for metric, value in event["metrics"].items():
            assert logged[f"eval/{event['which']}/{metric}"] == [(3, pytest.approx(value, rel=1e-6, abs=1e-9))]
    metrics = json.loads((run_dir / "metrics.json").read_text())  # the same figures as the run's own record
    assert all(metrics[event["which"]] == event["metrics"] for event in evals)


def test_later_training_phases_continue_the_tracker_step(tmp_path):
    """Stages and baselines restart at step 1 in events.jsonl; their tracker steps only grow (W&B drops steps
    that go back), and a resumed run keeps the steps its phases had."""
    def train(stage: str, step: int, phase: str = "student") -> dict:
        return {"type": "train", "stage": "train", "stage_name": stage, "phase": phase, "step": step, "loss": step / 10}

    script = [train("first", 1), train("first", 2), train("first", 2, "baselines/scdir"),
              {"type": "eval", "stage": "eval", "stage_name": "first", "operation": "main", "which": "teacher",
               "metrics": {"rouge_l": 0.5, "prompt_tokens": {"teacher": 12.0}, "note": "text"}},
              train("second", 1), train("second", 2)]
    steps = TrackerSteps()
    logged = [figures_of(event, steps) for event in script]
    assert [step for _, step in logged] == [1, 2, 4, 4, 5, 6]
    assert logged[2][0] == {"first/baselines/scdir/train/loss": 0.2}
    assert logged[3][0] == {"first/eval/teacher/rouge_l": 0.5, "first/eval/teacher/prompt_tokens/teacher": 12.0}

    # The run stopped after the first stage and resumes: the second stage's steps stay 5, 6.
    trackers = Trackers(["tensorboard"], tmp_path, "p", earlier_events=script[:4])
    for event in [{"type": "status", "stage": "train", "message": "resumed"}] + script[4:]:
        trackers.observe(event)
    trackers.finish()
    assert scalars(tmp_path / "tensorboard") == {"second/train/loss": [(5, pytest.approx(0.1)), (6, pytest.approx(0.2))]}
