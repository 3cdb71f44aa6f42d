"""Faults across processes (issue 19, item 6): one rank killed, the others stop, the run resumes.

torchrun stops the other workers when one dies, and a gloo collective with a dead peer
fails at once; the run folder must then name the dead rank, and `--resume` under the
same launch must go on from the last checkpoint as if nothing happened. `ctxdistill eval`
under several processes scores once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.runs.events import read_events

from test_multiprocess import LAUNCH_TIMEOUT, PROCESS_ENV, REPO, project_for, torchrun, train_losses

KILL_TO_EXIT_LIMIT = 60  # seconds from the kill to the launcher's exit (the barrier limit is 6 hours)


def events_so_far(run_dir: Path) -> list[dict]:
    try:
        return read_events(run_dir / "events.jsonl")
    except (OSError, ValueError):
        return []


def test_a_killed_rank_stops_the_others_names_itself_and_the_run_resumes(tmp_path, context_model_dir):
    project = project_for(tmp_path / "p", context_model_dir, checkpoint_every=2)
    # 24 steps: long enough that the kill after the second checkpoint lands in training.
    toml = project / "project.toml"
    toml.write_text(toml.read_text().replace("max_steps = 8\n", "max_steps = 24\n"))
    run_dir = project / "runs" / "r1"
    launcher = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                                 "-m", "engine.cli", "run", str(project), "--run-dir", str(run_dir), "--quiet"],
                                env=PROCESS_ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + LAUNCH_TIMEOUT
    while not any(event["type"] == "checkpoint" and event["step"] == 4 for event in events_so_far(run_dir)):
        assert time.time() < deadline and launcher.poll() is None, "no checkpoint before the deadline"
        time.sleep(0.05)
    rank_one = events_so_far(run_dir)[0]["ranks"][1]
    os.kill(rank_one["pid"], signal.SIGKILL)  # the rank, not the launcher
    killed = time.time()
    launcher.communicate(timeout=KILL_TO_EXIT_LIMIT)
    assert launcher.returncode != 0 and time.time() - killed < KILL_TO_EXIT_LIMIT

    done = read_events(run_dir / "events.jsonl")[-1]
    assert done["status"] == "failed"
    assert done["message"].startswith(f"rank 1 died (pid {rank_one['pid']}); resume with"), done["message"]
    assert not (run_dir / "student").exists()
    before = {event["step"]: event["loss"] for event in read_events(run_dir / "events.jsonl") if event["type"] == "train"}
    shutil.rmtree(run_dir / "checkpoints" / "step-4")  # as if killed before it: the resume runs steps 3-4 again

    torchrun("--resume", str(run_dir))
    events = read_events(run_dir / "events.jsonl")
    assert events[-1]["status"] == "completed"
    resumed_at = max(index for index, event in enumerate(events) if event.get("message") == "resuming run")
    after = {event["step"]: event["loss"] for event in events[resumed_at:] if event["type"] == "train"}
    assert (min(after), max(after)) == (3, 24)
    # Steps 3 and 4, run before the kill and again from the step-2 checkpoint, give the same losses.
    assert [after[step] for step in (3, 4)] == pytest.approx([before[step] for step in (3, 4)], rel=1e-6)

    # `ctxdistill eval` under two processes scores once: one more "done" event, one writer.
    torchrun_eval = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                     "-m", "engine.cli", "eval", str(run_dir)]
    finished = subprocess.run(torchrun_eval, env=PROCESS_ENV, cwd=REPO, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    rescored = read_events(run_dir / "events.jsonl")[len(events):]
    assert [event["type"] for event in rescored].count("done") == 1
    assert json.loads((run_dir / "metrics.json").read_text())["answer_kl"]["after"] is not None
