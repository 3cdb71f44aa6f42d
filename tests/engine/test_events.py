"""The event stream: flushed lines, tailing across half-written lines, folding into a run state."""

from __future__ import annotations

import json

import pytest
import torch

from engine.runs.events import EventTail, EventWriter, fold_events, read_events


def test_writer_appends_flushed_lines_and_tail_skips_a_half_written_one(tmp_path):
    path = tmp_path / "events.jsonl"
    seen = []
    writer = EventWriter(path)
    writer.listeners.append(seen.append)
    writer.emit("status", stage="setup", message="starting", pid=1)
    writer.emit("train", stage="train", step=1, total_steps=2, loss=torch.tensor(1.5), lr=1e-3)
    tail = EventTail(path)
    first = list(tail.read_new())  # readable before close: every line is flushed
    assert [event["type"] for event in first] == ["status", "train"]
    assert first[1]["loss"] == 1.5 and first[1]["stage"] == "train"
    assert [event["type"] for event in seen] == ["status", "train"]
    with open(path, "a") as file:
        file.write('{"type": "train", "step": 2')  # a writer caught mid-line
    assert list(tail.read_new()) == []
    with open(path, "a") as file:
        file.write(', "stage": "train", "loss": 1.0, "lr": 0.001, "total_steps": 2}\n')
    assert [event["step"] for event in tail.read_new()] == [2]
    writer.emit("done", stage="done", status="completed")
    writer.close()
    assert [event["type"] for event in tail.read_new()] == ["done"]
    assert len(read_events(path)) == 4


def test_unknown_event_type_is_refused(tmp_path):
    writer = EventWriter(tmp_path / "events.jsonl")
    with pytest.raises(AssertionError):
        writer.emit("progres")
    writer.close()


def test_disabled_writer_writes_nothing(tmp_path):
    writer = EventWriter(tmp_path / "events.jsonl", enabled=False)
    writer.emit("status", message="not the main process")
    writer.close()
    assert not (tmp_path / "events.jsonl").exists()


def test_fold_events_into_a_run_state():
    events = [
        {"type": "status", "time": 1.0, "stage": "setup", "message": "starting", "pid": 7},
        {"type": "status", "time": 2.0, "stage": "teacher", "message": "hit", "cache": "hit"},
        {"type": "train", "time": 3.0, "stage": "train", "step": 1, "total_steps": 2, "loss": 2.0, "lr": 1e-3,
         "tokens_per_s": 10.0, "memory_mb": 5.0, "elapsed_s": 1.0, "eta_s": 1.0},
        {"type": "checkpoint", "time": 4.0, "stage": "train", "step": 1, "path": "/r/checkpoints/step-1"},
        {"type": "eval", "time": 5.0, "stage": "eval", "which": "teacher", "metrics": {"exact_match": 1.0}},
        {"type": "done", "time": 6.0, "stage": "done", "status": "stopped"},
    ]
    state = fold_events(json.loads(json.dumps(events)))
    assert state.status == "stopped" and state.stage == "done" and state.pid == 7
    assert state.teacher_cache == "hit"
    assert state.losses == [(1, 2.0)] and state.step == 1 and state.total_steps == 2
    assert state.checkpoints == ["/r/checkpoints/step-1"]
    assert state.evals == {"teacher": {"exact_match": 1.0}}
    assert state.started_at == 1.0 and state.last_event_at == 6.0
