"""Two runs of one project started at once share one teacher pass (issue 19, item 6).

The second run waits on the cache's lock (engine/teacher/cache_lock.py), then reuses the
first run's cache instead of generating it again.
"""

from __future__ import annotations

import subprocess
import sys

from engine.runs.events import read_events

from engine_fixtures import write_project
from test_multiprocess import LAUNCH_TIMEOUT, PROCESS_ENV, REPO


def test_two_runs_at_once_generate_the_teacher_cache_once(tmp_path, char_model_dir):
    # 256 inputs of 16 new tokens: a teacher pass of a few seconds, so the two runs' passes overlap.
    project = write_project(tmp_path / "p", char_model_dir, count=256, max_new_tokens=16, eval_count=2, max_steps=1)
    runs = [subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(project), "--run-dir",
                              str(project / "runs" / name), "--quiet"], env=PROCESS_ENV, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name in ("a", "b")]
    outputs = [run.communicate(timeout=LAUNCH_TIMEOUT)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(outputs)
    caches = sorted(event["cache"] for name in ("a", "b")
                    for event in read_events(project / "runs" / name / "events.jsonl") if "cache" in event)
    assert caches == ["hit", "miss"]
    for name in ("a", "b"):
        assert (project / "runs" / name / "teacher" / "labels.pt").exists()
