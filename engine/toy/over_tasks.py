"""Run one `toy-learner` project once per string transformation and average the figures.

The paper averages hypothesis 4 over text-to-SQL databases and shows hypothesis 2
as a scatter over Natural-Instructions tasks; our toy stand-in for "another
database" or "another task" is another transformation (engine/toy/transforms.py).
A variant of the project is the project with, for task number i:

- its worked examples (`teacher.vars.examples`) drawn afresh for the task with seed i,
- `teacher.vars.task` (the rule line's task, for projects whose template shows it),
- `inputs.label_function` = `tasks:label_<reorder>_<rewrite>` (tasks.py defines one per task),
- `inputs.seed` and `distill.seed` = i.

Each variant is an ordinary run in the project's runs/ folder; `run_variant` returns
its metrics.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from pathlib import Path

import tomlkit

from engine.project.loader import load_project, project_from_toml_text
from engine.project.schema import Project
from engine.project.writer import project_to_toml
from engine.toy import transforms


def label_function_name(task: transforms.Task) -> str:
    return "label_" + "_".join(task)


def labellers() -> dict[str, object]:
    """`label_<reorder>_<rewrite>` for every task: what a project's tasks.py exports."""
    from engine.toy.transform_project import labeller

    return {label_function_name(task): labeller(transforms.task_name(task)) for task in transforms.ALL_TASKS}


def worked_examples(task: transforms.Task, count: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [transforms.example(rng, task) for _ in range(count)]


def edited(project: Project, changes: dict[str, object]) -> Project:
    """The project with these dotted keys set (`"teacher.vars.explain": False`), loaded again from its TOML.

    Through the TOML and the loader rather than `dataclasses.replace`: a project's
    operation holds its own copy of the top-level tables, and the loader is what
    keeps the two in step (and checks the result)."""
    if project.combined:
        raise ValueError(f"{project.name}: a project with [[operations]] or [[stages]] has no single task to vary")
    document = tomlkit.parse(project_to_toml(project))
    for dotted, value in changes.items():
        *tables, key = dotted.split(".")
        table = document
        for name in tables:
            table = table.setdefault(name, tomlkit.table())
        table[key] = value
    return project_from_toml_text(project.dir, tomlkit.dumps(document))


def for_task(project: Project, task: transforms.Task, seed: int) -> Project:
    """The project for `task`, with its own examples and seeds (see the module docstring)."""
    examples = worked_examples(task, len(project.teacher.vars.get("examples", [])) or 4, seed)
    changes = {"name": f"{project.name}-{task[0]}-{task[1]}", "teacher.vars.examples": examples,
               "teacher.vars.task": transforms.rule_line(task).strip(),
               "inputs.label_function": f"tasks:{label_function_name(task)}", "inputs.seed": seed,
               "distill.seed": seed}
    return edited(project, changes)


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


def permutation_p_value(xs: list[float], ys: list[float]) -> float | None:
    """Two-sided p-value of Pearson's r by exact permutation: the share of the pairings of
    `ys` with `xs` whose |r| is at least the observed one (8 tasks: 40,320 pairings)."""
    observed = pearson(xs, ys)
    if observed is None:
        return None
    rs = [pearson(xs, list(order)) for order in itertools.permutations(ys)]
    return sum(abs(r) >= abs(observed) - 1e-12 for r in rs) / len(rs)


def command_line(description: str, default_project: Path, default_tasks: tuple[str, ...], measure, render,
                 argv=None) -> None:
    """The command line both sample-project scripts share: `[PROJECT] [--tasks a,b,...]`.

    `measure(project, task_name, seed)` gives one row per task (seed = the task's place in
    the list), printed as it comes; `render(project, rows)` is the text printed at the end
    and written to PROJECT/RESULTS.md under the command that made it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("project", nargs="?", default=str(default_project), help="the project folder")
    parser.add_argument("--tasks", default=",".join(default_tasks), help="transformations, comma-separated")
    args = parser.parse_args(argv)
    project = load_project(args.project)
    rows = []
    for seed, task_name in enumerate(args.tasks.split(",")):
        rows.append(measure(project, task_name, seed))
        print(rows[-1], flush=True)
    text = render(project, rows)
    print(text)
    (Path(args.project) / "RESULTS.md").write_text(f"`python {' '.join(sys.argv)}`\n\n{text}")
