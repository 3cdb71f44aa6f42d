"""The run's event stream: one JSON object per line in `events.jsonl`.

The file is the only channel between a run and whoever watches it (the CLI's
progress bar, the TUI dashboard, a later session reattaching), so every line is
flushed as it happens and every line is self-describing.

Event types and their figures:

| type         | fields (besides `type`, `time`, `stage`)                          |
| ------------ | ----------------------------------------------------------------- |
| `status`     | `message`, optional `cache` ("hit"/"miss"), `pid`, `command`       |
| `progress`   | `step`, `total_steps`, `elapsed_s`, `eta_s`                        |
| `train`      | `phase` ("student", or a baseline's folder), `step`, `total_steps`, `loss`, `kl`, `lr`, `tokens_per_s`, `memory_mb`, `epoch` |
| `eval`       | `which` (teacher / student_before / student_after), `metrics`     |
| `sample`     | `which`, `index`, `output`, `answer`                               |
| `checkpoint` | `step`, `path`                                                     |
| `error`      | `message`, optional `traceback`                                    |
| `done`       | `status` ("completed" / "stopped" / "failed"), optional `metrics`  |

Stages, in order: `setup`, `teacher`, `train`, `eval`, `done`.

Every event also names where in the project it happened: `stage_name` (the
[[stages]] item, "main" for a project without stages) and `operation` (the
[[operations]] item, "main" without operations; null for events of a whole
stage, such as its training steps). `stage` keeps its meaning: the phase above.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

EVENT_TYPES = ("status", "progress", "train", "eval", "sample", "checkpoint", "error", "done")
STAGES = ("setup", "teacher", "train", "eval", "done")


class EventWriter:
    """Appends events to `events.jsonl`, flushed and fsynced line by line.

    Only the main process of a distributed run writes (`enabled=False` elsewhere).
    Listeners (callables taking the event dict) see every event as it is written:
    the CLI draws its progress bar from them. `trackers` (engine/runs/trackers.py, the
    project's `distill.report_to`) get a copy of the figures and are closed with the writer.
    """

    def __init__(self, path: Path, enabled: bool = True, trackers=None):
        self.path = Path(path)
        self.enabled = enabled
        self.listeners: list = []
        self.trackers = trackers if enabled else None
        self.stage = "setup"
        self.scope: dict[str, str | None] = {}  # stage_name and operation, merged into every event
        self._file = open(self.path, "a", encoding="utf-8") if enabled else None

    def set_scope(self, stage_name: str | None = None, operation: str | None = None) -> None:
        """Name the project stage and operation that the following events belong to."""
        self.scope = {"stage_name": stage_name, "operation": operation}

    def emit(self, type: str, stage: str | None = None, **fields: Any) -> dict:
        assert type in EVENT_TYPES, type
        if stage is not None:
            self.stage = stage
        event = {"type": type, "time": time.time(), "stage": self.stage, **self.scope, **fields}
        if self._file is not None:
            self._file.write(json.dumps(event, default=_jsonable) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        if self.enabled:
            for listener in self.listeners:
                listener(event)
            if self.trackers is not None:
                self.trackers.observe(event)  # after the line is written: events.jsonl comes first
        return event

    def close(self) -> None:
        if self.trackers is not None:
            self.trackers.finish()
        if self._file is not None:
            self._file.close()
            self._file = None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # torch / numpy scalars
        return value.item()
    return str(value)


def read_events(path: Path) -> list[dict]:
    """All complete events in the file; a half-written last line is skipped."""
    return list(EventTail(path).read_new())


class EventTail:
    """Incrementally reads new complete lines of an `events.jsonl` (for tailing)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0

    def read_new(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            chunk = file.read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for line in chunk[: end + 1].splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


@dataclass
class RunState:
    """What a run's events say about it, folded line by line (for UIs)."""

    stage: str = "setup"
    status: str = "running"  # running / completed / stopped / failed
    message: str = ""
    step: int = 0
    total_steps: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    started_at: float | None = None
    last_event_at: float | None = None
    pid: int | None = None
    command: str | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    lrs: list[tuple[int, float]] = field(default_factory=list)
    tokens_per_s: float | None = None
    memory_mb: float | None = None
    evals: dict[str, dict] = field(default_factory=dict)
    checkpoints: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    teacher_cache: str | None = None
    stage_name: str | None = None  # the project stage ([[stages]]) running now
    operation: str | None = None  # the operation running now (None during a stage's training)
    stage_names: list[str] = field(default_factory=list)  # project stages seen, in order
    stage_evals: dict[str, dict[str, dict[str, dict]]] = field(default_factory=dict)  # stage -> operation -> which -> metrics

    def apply(self, event: dict) -> None:
        kind = event.get("type")
        self.stage = event.get("stage", self.stage)
        if "stage_name" in event:
            self.stage_name, self.operation = event["stage_name"], event.get("operation")
            if self.stage_name is not None and self.stage_name not in self.stage_names:
                self.stage_names.append(self.stage_name)
        self.last_event_at = event.get("time", self.last_event_at)
        if self.started_at is None:
            self.started_at = self.last_event_at
        if kind == "status":
            self.message = event.get("message", "")
            if "pid" in event:  # a (re)started process: a resumed run is running again
                self.status = "running"
            self.pid = event.get("pid", self.pid)
            self.command = event.get("command", self.command)
            if "cache" in event:
                self.teacher_cache = event["cache"]
        elif kind == "train" and event.get("phase", "student") != "student":
            pass  # a baseline's training (engine/evaluation/baselines.py): not the student's curve
        elif kind in ("progress", "train"):
            self.step = event.get("step", self.step)
            self.total_steps = event.get("total_steps", self.total_steps)
            self.elapsed_s = event.get("elapsed_s", self.elapsed_s)
            self.eta_s = event.get("eta_s", self.eta_s)
            if kind == "train":
                self.losses.append((self.step, float(event["loss"])))
                self.lrs.append((self.step, float(event["lr"])))
                self.tokens_per_s = event.get("tokens_per_s")
                self.memory_mb = event.get("memory_mb")
        elif kind == "eval":
            self.evals[event["which"]] = event["metrics"]
            if event.get("stage_name") is not None:
                by_operation = self.stage_evals.setdefault(event["stage_name"], {})
                by_operation.setdefault(event.get("operation") or "", {})[event["which"]] = event["metrics"]
        elif kind == "checkpoint":
            self.checkpoints.append(event["path"])
        elif kind == "error":
            self.errors.append(event.get("message", ""))
        elif kind == "done":
            self.status = event.get("status", "completed")


def fold_events(events: list[dict]) -> RunState:
    state = RunState()
    for event in events:
        state.apply(event)
    return state
