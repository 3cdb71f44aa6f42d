"""Each shipped project runs end to end on the embedded model, with tiny counts (the wiring).

The full-size figures come from the commands in each project's README, not from here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import tomlkit

from engine.cli import main
from engine.project.loader import load_project
from engine.errors import EngineError
from engine.runs.events import read_events
from engine.models import local_source, resolve_model_path

SAMPLE_PROJECTS = sorted(path.parent for path in
                         (Path(__file__).resolve().parents[2] / "sample_projects").glob("*/project.toml"))


def tiny_copy(project_dir: Path, tmp_path: Path) -> tuple[Path, tomlkit.TOMLDocument]:
    """The project in `tmp_path` with tiny counts (skipped where its model is a hub model not cached here)."""
    name = load_project(project_dir).model.name
    try:
        local_source(name, resolve_model_path(name, project_dir))
    except EngineError:  # a hub model (system-prompt): its own test runs it on a tiny model of the same architecture
        pytest.skip(f"{name} is not in the local Hugging Face cache")
    copy = tmp_path / project_dir.name
    shutil.copytree(project_dir, copy, ignore=shutil.ignore_patterns("runs", "__pycache__", "README.md"))
    document = tomlkit.parse((copy / "project.toml").read_text())
    document["inputs"]["count"] = 8
    document["eval"]["count"] = 4
    document["distill"]["max_steps"] = 2
    document["distill"]["num_samples"] = 10
    (copy / "project.toml").write_text(tomlkit.dumps(document))
    return copy, document


@pytest.mark.parametrize("project_dir", SAMPLE_PROJECTS, ids=lambda path: path.name)
def test_sample_project_runs_with_tiny_counts(project_dir, tmp_path):
    copy, document = tiny_copy(project_dir, tmp_path)

    assert main(["run", str(copy), "--quiet"]) == 0

    (run_dir,) = (copy / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if metrics.get("combined"):
        last = list(metrics["stages"].values())[-1]["operations"]
        every = list(last.values())
        assert set(metrics["matrix"]) == set(metrics["stages"])
    else:
        every = [metrics]
        for name in document["baselines"]["methods"] if "baselines" in document else []:
            assert f"baseline_{name}" in metrics
    for figures in every:
        assert {"teacher", "student_before", "student_after", "prompt_tokens"} <= set(figures)
        # The teacher's prompt is the long one (a self-distilling operation, as in addition-keep, has equal ones).
        assert figures["prompt_tokens"]["ratio"] >= 1
    evaluated = sum(len(stage["operations"]) for stage in metrics["stages"].values()) if metrics.get("combined") else 1
    assert len((run_dir / "samples.jsonl").read_text().splitlines()) == 4 * evaluated  # eval.count per operation


@pytest.mark.parametrize("policy", ["on", "mixed"])
@pytest.mark.parametrize("project_dir", SAMPLE_PROJECTS, ids=lambda path: path.name)
def test_sample_project_runs_on_policy(project_dir, policy, tmp_path):
    """Issue 21: on- and mixed-policy distillation run on every project the toy models run (scratch-pad teachers,
    invented inputs, ensembles, operations and stages), and every training step is of that policy."""
    copy, document = tiny_copy(project_dir, tmp_path)
    document["distill"]["policy"] = policy
    if "baselines" in document:
        document["baselines"]["methods"] = []  # trained off-policy by definition: covered by the test above
    (copy / "project.toml").write_text(tomlkit.dumps(document))

    assert main(["run", str(copy), "--quiet"]) == 0

    (run_dir,) = (copy / "runs").iterdir()
    steps = [event for event in read_events(run_dir / "events.jsonl") if event["type"] == "train"]
    assert steps and all(event["policy"] == policy and event["score_s"] > 0 for event in steps)
