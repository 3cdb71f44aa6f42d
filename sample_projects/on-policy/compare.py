"""Off-, on- and mixed-policy distillation side by side (issue 21), at several step budgets.

    python sample_projects/on-policy/compare.py                   # this project (the student's layout differs)
    python sample_projects/on-policy/compare.py sample_projects/instructions --steps 30,120

Each (policy, steps) pair is one ordinary run of the project with `distill.policy` and
`distill.max_steps` replaced; the teacher pass is cached after the first, so off-policy
runs pay it once. Prints, per run: exact match after, the tokens the teacher ran over
(the teacher pass for the off-policy share, the scoring of the student's answers for the
on-policy share) and the wall time; writes the table to RESULTS.md beside the project.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.project.loader import load_project  # noqa: E402
from engine.run import new_run_dir, run  # noqa: E402
from engine.runs.events import read_events  # noqa: E402

POLICIES = ("off", "on", "mixed")


def with_policy(project, policy: str, steps: int):
    distill = dataclasses.replace(project.distill, policy=policy, max_steps=steps, epochs=0)
    # Only the distillation is compared: a project's supervised baselines (addition's scdir, sc+dir) are left out.
    baselines = dataclasses.replace(project.baselines, methods=[])
    return dataclasses.replace(project, distill=distill, baselines=baselines,
                               stages=tuple(dataclasses.replace(stage, distill=distill) for stage in project.stages))


def teacher_pass_tokens(run_dir: Path, fraction: float) -> int:
    """Tokens of the teacher pass (prompt + output, every distillation input), times the share trained on it."""
    rows = [json.loads(line) for line in (run_dir / "teacher" / "outputs.jsonl").read_text().splitlines()]
    per_input = json.loads((run_dir / "metrics.json").read_text())["inference_tokens"]["teacher"]  # held-out mean
    return round(len(rows) * per_input * fraction)


def one_run(project, policy: str, steps: int) -> dict:
    variant = with_policy(project, policy, steps)
    run_dir = new_run_dir(variant)
    started = time.perf_counter()
    metrics = run(variant, run_dir)
    seconds = time.perf_counter() - started
    trains = [event for event in read_events(run_dir / "events.jsonl") if event["type"] == "train"]
    scored = trains[-1].get("teacher_tokens", 0) if trains else 0
    off_share = {"off": 1.0, "on": 0.0, "mixed": 1 - project.distill.on_policy_fraction}[policy]
    return {"policy": policy, "steps": steps, "exact_match": metrics["student_after"]["exact_match"],
            "teacher": metrics["teacher"]["exact_match"], "before": metrics["student_before"]["exact_match"],
            "teacher_tokens": teacher_pass_tokens(run_dir, off_share) + scored, "seconds": round(seconds, 1),
            "run_dir": str(run_dir)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", nargs="?", default=str(Path(__file__).parent), help="the project folder")
    parser.add_argument("--steps", default="30,60,120", help="step budgets, comma-separated")
    parser.add_argument("--policies", default=",".join(POLICIES), help="policies, comma-separated")
    args = parser.parse_args(argv)
    project = load_project(args.project)
    rows = [one_run(project, policy, int(steps)) for policy in args.policies.split(",") for steps in args.steps.split(",")]
    lines = ["| policy | steps | exact match after | teacher tokens | wall time |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['policy']} | {r['steps']} | {r['exact_match']:.3f} | {r['teacher_tokens']:,} | {r['seconds']:.0f} s |"
              for r in rows]
    table = "\n".join([f"{project.name}: teacher {rows[0]['teacher']:.3f}, student before {rows[0]['before']:.3f}", ""] + lines)
    print(table)
    (Path(args.project) / "RESULTS.md").write_text(f"`python {' '.join(sys.argv)}`\n\n{table}\n")


if __name__ == "__main__":
    main()
