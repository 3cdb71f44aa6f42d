"""Run one `toy-learner` project once per string transformation and average the figures.

The paper averages hypothesis 4 over text-to-SQL databases and shows hypothesis 2
as a scatter over Natural-Instructions tasks; our toy stand-in for "another
database" or "another task" is another transformation (engine/toy/transforms.py).
A variant of the project is the project with, for task number i:

- its worked examples (`teacher.vars.examples`, and the two in `inputs.fewshot_prompt`
  from which the model invents its inputs) drawn afresh for the task with seed i,
- `teacher.vars.task` (the rule line's task, for projects whose template shows it),
- `inputs.label_function` = `tasks:label_<reorder>_<rewrite>` (tasks.py defines one per task),
- `inputs.seed` and `distill.seed` = i.

Each variant is an ordinary run in the project's runs/ folder; `run_variant` returns
its metrics.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

from engine.project.schema import Project
from engine.toy import tasks, transforms


def label_function_name(task: transforms.Task) -> str:
    return "label_" + "_".join(task)


def labellers() -> dict[str, object]:
    """`label_<reorder>_<rewrite>` for every task: what a project's tasks.py exports."""
    from engine.toy.transform_project import labeller

    return {label_function_name(task): labeller(transforms.task_name(task)) for task in transforms.ALL_TASKS}


def worked_examples(task: transforms.Task, count: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [transforms.example(rng, task) for _ in range(count)]


def for_task(project: Project, task: transforms.Task, seed: int, **distill_changes) -> Project:
    """The project for `task`, with its own examples and seeds (see the module docstring)."""
    examples = worked_examples(task, len(project.teacher.vars.get("examples", [])) or 4, seed)
    teacher = dataclasses.replace(project.teacher, vars={**project.teacher.vars, "examples": examples,
                                                         "task": transforms.rule_line(task).strip()})
    inputs = dataclasses.replace(project.inputs, seed=seed, label_function=f"tasks:{label_function_name(task)}")
    if inputs.source == "fewshot":
        inputs = dataclasses.replace(inputs, fewshot_prompt="".join(tasks.example_block(e["input"], e["label"])
                                                                    for e in examples[:2]) + "Input: ")
    distill = dataclasses.replace(project.distill, seed=seed, **distill_changes)
    return dataclasses.replace(project, name=f"{project.name}-{transforms.task_name(task)}", teacher=teacher,
                               inputs=inputs, distill=distill,
                               stages=tuple(dataclasses.replace(stage, distill=distill) for stage in project.stages))


def run_variant(variant: Project) -> tuple[dict, float, Path]:
    """(metrics, wall seconds, run folder) of one ordinary run of `variant`."""
    from engine.run import new_run_dir, run

    run_dir = new_run_dir(variant)
    started = time.perf_counter()
    metrics = run(variant, run_dir)
    return metrics, time.perf_counter() - started, run_dir


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's r, or None when either side does not vary."""
    mx, my = mean(xs), mean(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return None if sxx == 0 or syy == 0 else sxy / (sxx * syy) ** 0.5
