"""Hypothesis 4 averaged over string transformations, as the paper averages over databases.

    python sample_projects/few-shot/over_tasks.py                          # K = 4
    python sample_projects/few-shot/over_tasks.py sample_projects/few-shot-8

For each of five held-in transformations (task number i gets seed i: its worked
examples, its invented inputs, the distillation's seed; engine/toy/over_tasks.py),
two ordinary runs of the project: gradient descent on the K examples as appendix
B.5 ran it (`baselines.budget = "paper"`), then tuned at the distillation's budget
(`"equal-compute"`; its distillation is the same run again, and the teacher pass
comes from the cache). Prints one row per task and their mean, and writes the
table to RESULTS.md beside the project.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.toy import transforms  # noqa: E402
from engine.toy.over_tasks import command_line, edited, for_task, mean, run_variant  # noqa: E402

# Fixed before any of them was measured: one per reorder, rewrites spread over them.
TASKS = ("reverse+shift1", "rotate1+keep", "every2+shift2", "keep+shift1", "reverse+upper")
COLUMNS = ("teacher", "student_before", "student_after", "baseline_examples", "baseline_examples_tuned")


def measure(project, task_name: str, seed: int) -> dict:
    """The figures of one task: exact match and letters right per column, and what gradient descent chose."""
    variant = for_task(project, transforms.parse_task(task_name), seed)
    paper, paper_seconds, _ = run_variant(variant)
    tuned, tuned_seconds, _ = run_variant(edited(variant, {"baselines.budget": "equal-compute"}))
    figures = {column: paper[column] for column in COLUMNS[:-1]}
    figures["baseline_examples_tuned"] = tuned["baseline_examples"]
    chosen = tuned["baselines_selection"]["examples"]
    return {"task": task_name, "seed": seed, "figures": figures, "seconds": round(paper_seconds + tuned_seconds),
            "paper_epoch": paper["baselines_selection"]["examples"]["best_epoch"],
            "tuned_choice": f"lr {chosen['learning_rate']:g}, epoch {chosen['best_epoch']}"}


def table(rows: list[dict]) -> str:
    head = ("| task (seed) | teacher | student before | student after | GD, B.5 (best epoch) "
            "| GD, equal compute (lr, epoch) | wall time |\n| --- | --- | --- | --- | --- | --- | --- |")

    def cell(figures: dict) -> str:
        return f"{figures['exact_match']:.3f} ({figures['tasks:letters_right']:.2f})"
    lines = [head]
    for row in rows:
        f = row["figures"]
        lines.append(f"| {row['task']} ({row['seed']}) | {cell(f['teacher'])} | {cell(f['student_before'])} | "
                     f"{cell(f['student_after'])} | {cell(f['baseline_examples'])} ({row['paper_epoch']}) | "
                     f"{cell(f['baseline_examples_tuned'])} ({row['tuned_choice']}) | {row['seconds']} s |")
    averages = {column: {metric: mean([row["figures"][column][metric] for row in rows])
                         for metric in ("exact_match", "tasks:letters_right")} for column in COLUMNS}
    lines.append(f"| **mean of {len(rows)}** | {cell(averages['teacher'])} | {cell(averages['student_before'])} | "
                 f"**{cell(averages['student_after'])}** | {cell(averages['baseline_examples'])} | "
                 f"{cell(averages['baseline_examples_tuned'])} | {sum(row['seconds'] for row in rows)} s |")
    return "\n".join(lines)


def render(project, rows: list[dict]) -> str:
    k = len(project.teacher.vars["examples"])
    return (f"{project.name}, K = {k}: exact match (letters right) on {project.eval.count} held-out inputs per task\n\n"
            f"{table(rows)}\n")


def main(argv=None) -> None:
    command_line(__doc__.splitlines()[0], Path(__file__).parent, TASKS, measure, render, argv)


if __name__ == "__main__":
    main()
