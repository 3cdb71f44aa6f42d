"""Launching, watching, stopping and listing engine runs (no Textual here).

A run is a separate process (`ctxdistill run`, through `accelerate launch`
when the project asks for several processes) started in its own session so it
outlives the app. Its folder is the whole truth about it: `events.jsonl` says
what happened, `pid` says which process to signal, `STOP` asks it to
checkpoint and stop.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import engine
from engine.runs.events import RunState, read_events

ENGINE_ROOT = Path(engine.__file__).resolve().parent.parent


def new_run_dir(project_dir: Path, project_name: str) -> Path:
    """`PROJECT/runs/<utc-timestamp>-<name>/`, unique even within one second."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path(project_dir) / "runs" / f"{stamp}-{project_name}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir


def build_command(project_dir: Path, run_dir: Path, num_processes: int = 1,
                  resume: bool = False) -> list[str]:
    """The exact command line that runs (or resumes) a distillation."""
    if num_processes > 1:
        accelerate = shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))
        if not Path(accelerate).exists():
            accelerate_prefix = [sys.executable, "-m", "accelerate.commands.launch"]
        else:
            accelerate_prefix = [accelerate, "launch"]
        # `--multi_gpu` is what starts N processes (torch's launcher) on GPUs and CPUs alike: without it
        # accelerate's simple launcher starts one. Port 0: a free port, so two runs at once never collide.
        prefix = [*accelerate_prefix, "--multi_gpu", "--num_processes", str(num_processes),
                  "--main_process_port", "0", "-m", "engine.cli"]
    else:
        prefix = [sys.executable, "-m", "engine.cli"]
    tail = ["--resume", str(run_dir)] if resume else ["--run-dir", str(run_dir)]
    return [*prefix, "run", str(project_dir), *tail]


def format_command(command: list[str]) -> str:
    return shlex.join(command)


def launch(command: list[str], run_dir: Path) -> int:
    """Start `command` detached (own session), output to RUN_DIR/stdout.log; returns the pid."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "STOP").unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ENGINE_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("HF_HUB_OFFLINE", "1")
    with open(run_dir / "stdout.log", "ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, cwd=str(ENGINE_ROOT),
        )
    (run_dir / "pid").write_text(f"{process.pid}\n")
    (run_dir / "command").write_text(format_command(command) + "\n")
    return process.pid


def read_pid(run_dir: Path) -> int | None:
    try:
        return int((Path(run_dir) / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    """True while the process runs (a zombie child of ours counts as dead)."""
    if not pid:
        return False
    try:  # reap it if it is our own finished child, else it lingers as a zombie
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_start_time(pid: int) -> float | None:
    """When `pid` started (epoch seconds), from /proc; None where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def run_alive(run_dir: Path) -> bool:
    """Whether the run's process still runs (and is the one that wrote `pid`, not a reused pid)."""
    pid = read_pid(run_dir)
    if not pid_alive(pid):
        return False
    started = process_start_time(pid)
    try:
        written = (Path(run_dir) / "pid").stat().st_mtime
    except OSError:
        return False
    # A process that started after the pid file was written got a recycled pid.
    return started is None or started <= written + 2.0


def request_stop(run_dir: Path) -> None:
    """Ask the recipe to checkpoint and stop (it checks for STOP between steps)."""
    (Path(run_dir) / "STOP").write_text(f"{time.time()}\n")


def kill(run_dir: Path) -> bool:
    """SIGKILL the run's whole process group (the launcher and its workers)."""
    pid = read_pid(run_dir)
    if not run_alive(run_dir):
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if not pid_alive(pid):
            break
        time.sleep(0.02)
    return True


LOG_LINES = 500
COST_KEYS = ("sample_s", "score_s", "train_s")  # an on-policy step: student sampling, teacher scoring, training
LOG_FIGURES = ("step", "total_steps", "loss", "kl", "lr", "tokens_per_s", "memory_mb", "which", "cache", "status")


def event_line(event: dict) -> str:
    """`12:04:31 train [second/lower] step 3/10 loss 0.4120 lr 1.00e-03`: one event for the log pane."""
    when = datetime.fromtimestamp(event["time"]).strftime("%H:%M:%S") if isinstance(event.get("time"), (int, float)) else "--:--:--"
    scope = "/".join(str(event[key]) for key in ("stage_name", "operation") if event.get(key))
    kind, stage = str(event.get("type", "?")), str(event.get("stage") or "")
    parts = [when, kind] + ([stage] if stage and stage != kind else []) + ([f"[{scope}]"] if scope else [])
    if event.get("message"):
        parts.append(str(event["message"]).splitlines()[0])
    if "step" in event and "total_steps" in event:
        parts.append(f"{event['step']}/{event['total_steps']} {event.get('unit', 'steps')}")
    for key in LOG_FIGURES[2:]:
        value = event.get(key)
        if isinstance(value, float):
            parts.append(f"{key} {value:.2e}" if key == "lr" else f"{key} {value:.4g}")
        elif value is not None and not isinstance(value, (dict, list)):
            parts.append(f"{key} {value}")
    if event.get("type") == "eval" and isinstance(event.get("metrics"), dict):
        parts += [f"{name} {value:.3f}" for name, value in event["metrics"].items() if isinstance(value, (int, float))]
    return " ".join(parts)


@dataclass
class WatchedRun(RunState):
    """`RunState` plus what a dashboard needs to tell the truth (issue 12).

    - counts are per stage: the teacher pass counts inputs, training steps, so a
      new stage starts its count afresh instead of showing the last one's;
    - `active_s` sums the time every process of the run ran, so the elapsed time
      never runs backwards across a stop and resume (the engine's `elapsed_s`
      restarts with each stage and each process);
    """

    unit: str = "steps"
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))  # the newest events as lines
    log_count: int = 0  # events logged in all (the screen writes the lines it has not written yet)
    eval_progress: dict = field(default_factory=dict)  # which -> (done, total) inputs of the evaluation
    kls: list[tuple[int, float]] = field(default_factory=list)  # the student's answer KL per logged step
    active_s: float = 0.0  # time run by the run's earlier processes
    process_started_at: float | None = None
    # Curves run over one global step axis (issue 20 item 2): a stage's steps count on from the last stage's total.
    stage_offsets: dict = field(default_factory=dict)  # stage -> global step its training starts after
    train_steps: dict = field(default_factory=dict)  # stage -> (step, total steps) of the student's training
    # On-policy (issue 21): each stage's policy as its training events say, and the latest step's cost.
    stage_policies: dict = field(default_factory=dict)  # stage -> "off" | "on" | "mixed"
    step_cost: dict = field(default_factory=dict)  # sample_s, score_s, train_s: seconds per step, latest log window
    teacher_tokens: int | None = None  # tokens the teacher scored in this stage (this process's run of it)

    def apply(self, event: dict) -> None:
        kind = event.get("type")
        when = event.get("time", self.last_event_at)
        if kind == "status" and "pid" in event:  # a (re)started process
            if self.process_started_at is not None and self.last_event_at is not None:
                self.active_s += max(0.0, self.last_event_at - self.process_started_at)
            self.process_started_at = when
        elif self.process_started_at is None:
            self.process_started_at = when
        if self.status != "running" and kind != "done":  # a resumed run's new events
            self.status = "running"
        where = (event.get("stage", self.stage), event.get("stage_name", self.stage_name),
                 event.get("operation", self.operation))
        if where != (self.stage, self.stage_name, self.operation) and kind != "done":
            self.step, self.total_steps, self.eta_s = 0, 0, None
        if where[1] != self.stage_name and kind != "done":
            self.eval_progress = {}  # a new project stage evaluates afresh
        super().apply(event)
        self.log.append(event_line(event))
        self.log_count += 1
        if kind == "progress" and event.get("stage") == "eval" and event.get("which"):
            self.eval_progress[event["which"]] = (event.get("step", 0), event.get("total_steps", 0))
        if kind == "progress":
            self.unit = event.get("unit", "steps")
        elif kind == "train" and event.get("phase", "student") == "student":
            self.unit = "steps"
            stage = event.get("stage_name") or ""
            if stage not in self.stage_offsets:
                self.stage_offsets[stage] = sum(total for _, total in self.train_steps.values())
            self.train_steps[stage] = (self.step, self.total_steps)
            x = self.stage_offsets[stage] + self.step
            self.losses[-1] = (x, self.losses[-1][1])
            self.lrs[-1] = (x, self.lrs[-1][1])
            if isinstance(event.get("kl"), (int, float)):
                self.kls.append((x, float(event["kl"])))
            self.stage_policies[stage] = str(event.get("policy") or "off")
            self.step_cost = {key: float(event[key]) for key in COST_KEYS if isinstance(event.get(key), (int, float))}
            self.teacher_tokens = event.get("teacher_tokens") if isinstance(event.get("teacher_tokens"), int) else None

    @property
    def policy(self) -> str:
        """The latest training's policy ("off" before any training)."""
        return next(reversed(self.stage_policies.values()), "off")

    @property
    def boundaries(self) -> list[tuple[int, str]]:
        """(global step, stage) after which each stage but the first starts training."""
        return [(offset, stage) for stage, offset in self.stage_offsets.items() if offset > 0]

    @property
    def trained(self) -> tuple[int, int]:
        """(steps, total steps) of the student's training over all stages (not the teacher's or eval's counts)."""
        return (sum(step for step, _ in self.train_steps.values()),
                sum(total for _, total in self.train_steps.values()))

    def elapsed(self, now: float, alive: bool) -> float:
        """Seconds the run's processes have run, live up to `now` while one runs."""
        if self.process_started_at is None or self.last_event_at is None:
            return self.active_s
        end = now if alive else self.last_event_at
        return self.active_s + max(0.0, end - self.process_started_at)


def apply_event(state: RunState, event: dict) -> None:
    """Fold one event (a resumed run's new events make it running again)."""
    if not isinstance(state, WatchedRun) and state.status != "running" and event.get("type") != "done":
        state.status = "running"
    state.apply(event)


def fold_run_events(events) -> WatchedRun:
    state = WatchedRun()
    for event in events:
        apply_event(state, event)
    return state


def last_event(run_dir: Path) -> dict | None:
    """The last complete event of the run (read from the file's end: cheap for a timer)."""
    try:
        with open(Path(run_dir) / "events.jsonl", "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 8192))
            lines = file.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(lines[:-1] if lines else []):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def effective_status(state: RunState, alive: bool) -> str:
    """The events' status, corrected for a process that died without a `done` event."""
    if state.status == "running" and not alive:
        return "interrupted"
    return state.status


@dataclass
class RunInfo:
    """One row of the project's run history."""

    run_dir: Path
    status: str
    started_at: float | None
    state: RunState
    metrics: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def date(self) -> str:
        when = self.started_at or self.run_dir.stat().st_mtime
        return datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M")

    @property
    def resumable(self) -> bool:
        return self.status in ("stopped", "interrupted", "failed")


def load_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def load_samples(run_dir: Path) -> list[dict]:
    samples = []
    try:
        lines = (Path(run_dir) / "samples.jsonl").read_text().splitlines()
    except OSError:
        return samples
    for line in lines:
        try:
            samples.append(json.loads(line))
        except ValueError:
            continue
    return samples


def run_info(run_dir: Path) -> RunInfo:
    state = fold_run_events(read_events(Path(run_dir) / "events.jsonl"))
    status = effective_status(state, run_alive(run_dir))
    if state.started_at is None and read_pid(run_dir) and status == "running":
        status = "starting" if run_alive(run_dir) else "interrupted"
    return RunInfo(Path(run_dir), status, state.started_at, state,
                   load_json(Path(run_dir) / "metrics.json"))


def list_runs(project_dir: Path) -> list[RunInfo]:
    """The project's runs, newest first."""
    runs_root = Path(project_dir) / "runs"
    if not runs_root.is_dir():
        return []
    dirs = [d for d in runs_root.iterdir()
            if d.is_dir() and ((d / "events.jsonl").exists() or (d / "pid").exists())]
    return sorted((run_info(d) for d in dirs), key=lambda r: r.name, reverse=True)


def find_running_run(project_dir: Path) -> Path | None:
    """The newest run whose process is still alive (to reattach after a restart)."""
    for info in list_runs(project_dir):
        if info.status in ("running", "starting") and run_alive(info.run_dir):
            return info.run_dir
    return None
