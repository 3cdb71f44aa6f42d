"""Hypothesis 2 at toy scale: does the explanation help the student where it helps the teacher?

    python sample_projects/explanations-toy/correlate.py

For each of eight transformations (task number i gets seed i: its worked example,
its inputs, the distillation's seed; engine/toy/over_tasks.py), two ordinary runs
of the project: the teacher with the rule line (`teacher.vars.explain = true`) and
without it. The teacher's in-context gain is its exact match with the rule minus
without; the student's distillation gain is the distilled student's exact match
with the rule in its teacher's prompt minus without. The paper's Figure 5 plots one
against the other over tasks; here they are a table and Pearson's r. Writes
RESULTS.md beside the project.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.toy import transforms  # noqa: E402
from engine.toy.over_tasks import command_line, edited, for_task, mean, pearson, permutation_p_value, run_variant  # noqa: E402

# Fixed before any of them was measured: the three held-out compositions (the rule
# line names parts the model knows, combined as pretraining never showed) and five
# held-in ones, one or two per reorder.
TASKS = ("reverse+shift2", "rotate1+upper", "every2+shift1", "keep+shift2", "reverse+keep", "rotate1+shift1",
         "every2+upper", "keep+upper")


def measure(project, task_name: str, seed: int) -> dict:
    variant = for_task(project, transforms.parse_task(task_name), seed)
    row = {"task": task_name, "seed": seed, "seconds": 0.0}
    for explain in (True, False):
        metrics, seconds, _ = run_variant(edited(variant, {"teacher.vars.explain": explain}))
        side = "with" if explain else "without"
        row[f"teacher_{side}"] = metrics["teacher"]["exact_match"]
        row[f"after_{side}"] = metrics["student_after"]["exact_match"]
        row["before"] = metrics["student_before"]["exact_match"]
        row["seconds"] += seconds
    row["teacher_gain"] = row["teacher_with"] - row["teacher_without"]
    row["student_gain"] = row["after_with"] - row["after_without"]
    return row


def table(rows: list[dict]) -> str:
    lines = ["| task (seed) | held out of pretraining | teacher without / with the rule | **teacher's gain** "
             "| student after, distilled without / with | **student's gain** | student before | wall time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        held_out = "yes" if transforms.parse_task(row["task"]) in transforms.HELD_OUT else "no"
        lines.append(f"| {row['task']} ({row['seed']}) | {held_out} | {row['teacher_without']:.3f} / "
                     f"{row['teacher_with']:.3f} | **{row['teacher_gain']:+.3f}** | {row['after_without']:.3f} / "
                     f"{row['after_with']:.3f} | **{row['student_gain']:+.3f}** | {row['before']:.3f} | "
                     f"{row['seconds']:.0f} s |")
    teacher_gains, student_gains = [row["teacher_gain"] for row in rows], [row["student_gain"] for row in rows]
    r = pearson(teacher_gains, student_gains)
    p = permutation_p_value(teacher_gains, student_gains)
    lines += ["", f"Pearson's r between the teacher's gain and the student's gain over {len(rows)} tasks: "
              + ("undefined (one side does not vary)" if r is None else
                 f"**{r:+.3f}** (two-sided p = {p:.2g} by exact permutation)"),
              f"Mean gain: teacher {mean([row['teacher_gain'] for row in rows]):+.3f}, "
              f"student {mean([row['student_gain'] for row in rows]):+.3f}; "
              f"wall time {sum(row['seconds'] for row in rows) / 60:.1f} min in all."]
    return "\n".join(lines)


def render(project, rows: list[dict]) -> str:
    return f"{project.name}: exact match on {project.eval.count} held-out inputs per task\n\n{table(rows)}\n"


def main(argv=None) -> None:
    command_line(__doc__.splitlines()[0], Path(__file__).parent, TASKS, measure, render, argv)


if __name__ == "__main__":
    main()
