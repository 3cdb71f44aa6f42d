"""Distillation works: the student without the context moves toward the teacher with it."""

from __future__ import annotations

import json

from engine_fixtures import CONTEXT, write_project

from engine.cli import main


def test_answer_kl_falls_by_half_on_held_out_inputs(tmp_path, context_model_dir):
    project = write_project(
        tmp_path / "distill", context_model_dir, count=16, eval_count=8, max_steps=30, labels="hard",
        learning_rate=3e-3, teacher=CONTEXT + "\nInput: {{ input }}\nOutput: ", metrics='["answer_kl"]')
    assert main(["run", str(project), "--quiet"]) == 0
    (run_dir,) = (project / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    kl = metrics["answer_kl"]
    # Before: the teacher says zzzz where the bare student says yyyy, so the KL is large.
    assert kl["before"] > 1.0, kl
    assert kl["after"] <= 0.5 * kl["before"], kl
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 8
    # Held out: no eval input was distilled on, and the teacher answers from its context.
    assert all(sample["teacher"]["answer"] == "zzzz" for sample in samples)
    assert sum(sample["student_after"]["answer"] == "zzzz" for sample in samples) > \
        sum(sample["student_before"]["answer"] == "zzzz" for sample in samples)
