"""bench/gpu_check.sh (issue 17, item 9) keeps working offline: its DRY=1 mode runs the whole plumbing on
the CPU (a 2-layer model of the same kind, tiny counts, no tests, no install) and writes its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_the_gpu_check_runs_dry_on_a_cpu(tmp_path):
    environment = {**os.environ, "DRY": "1", "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"),
                   "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    finished = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=REPOSITORY, env=environment, capture_output=True,
                              text=True, timeout=590)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    figures = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert figures["card"] == "cpu (dry run)"
    assert figures["run_exit_status"] == {"sampled": "0", "topk": "0", "ensemble": "0"}, finished.stdout[-3000:]
    for name, run in figures["runs"].items():
        assert run["status"] == "completed", (name, run)
        assert run["steps"] >= 2 and run["tokens_per_s"] > 0 and run["teacher_tokens"] > 0, (name, run)
    assert figures["runs"]["topk"]["trained"] == "full" and figures["runs"]["sampled"]["trained"] == "LoRA r=16"
