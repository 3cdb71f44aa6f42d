"""String transformations the `toy-learner` model learns to infer from worked examples.

A task is a pair (reorder, rewrite): first the letters of a lowercase word are
reordered, then each kept letter is rewritten.

    reorder: keep (as is), reverse, rotate by 1 or 2 (the first letters move to
             the end), every 2nd letter (the 1st, 3rd, 5th, ...)
    rewrite: keep (as is), capitals, shift by 1 or 2 (a -> c for 2, wrapping
             z -> b), double each letter

    ("reverse", "shift2"):  cabin -> pkdce      ("rotate1", "upper"): cabin -> ABINC

Which task it is, and its parameters, show only in the examples (or in a rule
line, the "explanation" of hypothesis 2): the same input has 24 different
answers, so a model that does not read its prompt is right 1 time in 24 at
best. The held-out tasks are compositions never shown in pretraining, each of
whose parts is shown in other compositions: the model can answer them only by
combining what the examples say about the reorder and about the rewrite.

Prompts use the few-shot format of `tasks.fewshot_prompt` (`Input: x\\nOutput: y`,
one blank line between examples), optionally after a rule line such as
"Rule: reverse the letters, then shift each letter by 2.\\n\\n".
"""

from __future__ import annotations

import random
import string
from typing import Callable

from engine.toy import tasks


def _rotate(k: int) -> Callable[[str], str]:
    return lambda w: w[k:] + w[:k]


def _shift(k: int) -> Callable[[str], str]:
    return lambda w: "".join(chr((ord(c) - ord("a") + k) % 26 + ord("a")) for c in w)


# name -> (function, the words a rule line uses for it)
REORDERS: dict[str, tuple[Callable[[str], str], str]] = {
    "keep": (lambda w: w, "keep the order"),
    "reverse": (lambda w: w[::-1], "reverse the letters"),
    "rotate1": (_rotate(1), "move the first letter to the end"),
    "every2": (lambda w: w[::2], "keep every second letter"),
}
REWRITES: dict[str, tuple[Callable[[str], str], str]] = {
    "keep": (lambda w: w, "leave each letter as it is"),
    "upper": (str.upper, "write each letter in capitals"),
    "shift1": (_shift(1), "shift each letter by 1"),
    "shift2": (_shift(2), "shift each letter by 2"),
}

Task = tuple[str, str]

# Copying the input is not a task (it would be what a model does by default).
ALL_TASKS: list[Task] = [(r, w) for r in REORDERS for w in REWRITES if (r, w) != ("keep", "keep")]
# Never shown in pretraining; every part of each appears in other compositions.
HELD_OUT: list[Task] = [("reverse", "shift2"), ("rotate1", "upper"), ("every2", "shift1")]
HELD_IN: list[Task] = [t for t in ALL_TASKS if t not in HELD_OUT]


def task_name(task: Task) -> str:
    return "+".join(task)


def parse_task(name: str) -> Task:
    reorder, rewrite = name.split("+")
    if reorder not in REORDERS or rewrite not in REWRITES:
        raise ValueError(f"unknown task {name!r}: a reorder of {sorted(REORDERS)} '+' a rewrite of {sorted(REWRITES)}")
    return reorder, rewrite


def apply(task: Task, word: str) -> str:
    reorder, rewrite = task
    return REWRITES[rewrite][0](REORDERS[reorder][0](word))


def rule_line(task: Task) -> str:
    """The task in words: the explanation a teacher prompt may carry."""
    reorder, rewrite = task
    return f"Rule: {REORDERS[reorder][1]}, then {REWRITES[rewrite][1]}.\n\n"


def random_word(rng: random.Random) -> str:
    """3-5 random lowercase letters (long enough that every reorder differs from the others)."""
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 5)))


def example(rng: random.Random, task: Task) -> dict[str, str]:
    x = random_word(rng)
    return {"input": x, "label": apply(task, x)}


def prompt(task: Task, examples: list[dict[str, str]], x: str, with_rule: bool = False) -> str:
    """K worked examples then the query, after the rule line if `with_rule`."""
    return (rule_line(task) if with_rule else "") + tasks.fewshot_prompt(examples, x)


def episode(rng: random.Random, task: Task, n_examples: int, with_rule: bool) -> list[tuple[str, bool]]:
    """A pretraining sequence as (text, trained on?) pieces. Trained on: every answer
    (given the examples before it) and the first input, so the model learns to invent
    inputs (the `fewshot` input source relies on it). The other inputs are random
    letters with nothing to learn, and the rule line, if any, is given."""
    rows = [example(rng, task) for _ in range(n_examples)]
    pieces = [(rule_line(task), False)] if with_rule else []
    for i, row in enumerate(rows):
        pieces += [("Input: ", True), (row["input"], i == 0), ("\nOutput: ", True), (row["label"] + "\n\n", True)]
    return pieces
