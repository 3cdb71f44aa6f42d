"""Inputs for the task-id experiment (paper section 3.1, hypothesis 3, Table 1).

Four instructed tasks, each with its own input distribution (its own six
letters), so a student can tell the task from the input alone. That is the trap
the paper measures: after the task ids are shuffled and distilled again, does
the student follow the id, or still the input's look?

Every input carries the instruction of the task its label answers (`instruction`,
for the teacher template) and the task its letters come from (`native`).
"""

from __future__ import annotations

import random

from engine.toy.tasks import INSTRUCTION_TASKS

ALPHABETS = {"reverse": "abcdef", "sort": "ghijkl", "upper": "mnopqr", "shift": "stuvwx"}


def _words(rng: random.Random, n: int, natives: list[str], task: str | None) -> list[dict]:
    rows = []
    for _ in range(n):
        native = rng.choice(natives)
        word = "".join(rng.choice(ALPHABETS[native]) for _ in range(rng.randint(3, 8)))
        answered = task or native
        rows.append({"input": word, "label": INSTRUCTION_TASKS[answered][1](word), "native": native,
                     "instruction": INSTRUCTION_TASKS[answered][0]})
    return rows


def _salted(rng: random.Random, task: str) -> random.Random:
    # Operations share the project's seed; the task's name keeps their inputs apart.
    return random.Random(f"{rng.random()}-{task}")


def own_inputs(rng, n, task):
    """Words from `task`'s own letters, answered by `task` (the paper's "naive" distribution)."""
    return _words(_salted(rng, task), n, [task], task)


def mixed_inputs(rng, n, task):
    """Words from every task's letters, all answered by `task` (the paper's "mixed" distribution)."""
    return _words(_salted(rng, task), n, list(ALPHABETS), task)


def other_inputs(rng, n, task):
    """Words from the other tasks' letters, labelled with the answer of the task they come from.

    Prompted with `task`'s id, a student that still does the input's own task scores
    here: this is the paper's "wrong association" (lower is better). The teacher is
    told `task`'s instruction, so its score shows how rarely a prompted model does that.
    """
    rows = _words(_salted(rng, "other-" + task), n, [t for t in ALPHABETS if t != task], None)
    for row in rows:
        row["instruction"] = INSTRUCTION_TASKS[task][0]
    return rows
