"""Labels for the sample projects built on `toy-learner` (engine/toy/transforms.py).

A project's tasks.py names its task and hands the engine this module's labeller:

    from engine.toy.transform_project import labeller
    TASK = "reverse+shift1"
    label = labeller(TASK)

`label(word)` is the task's answer for an input the model invented, or None (the
engine drops the input) when the word is not 3-5 lowercase letters, which the
task's examples never show and so has no answer to score.
"""

from __future__ import annotations

import string
from typing import Callable

from engine.toy import transforms


def is_word(text: str) -> bool:
    return 3 <= len(text) <= 5 and set(text) <= set(string.ascii_lowercase)


def labeller(task_name: str) -> Callable[[str], str | None]:
    task = transforms.parse_task(task_name)

    def label(word: str) -> str | None:
        word = word.strip()
        return transforms.apply(task, word) if is_word(word) else None
    return label


def letters_right(prediction: str, reference: str) -> float:
    """Partial credit: the fraction of the reference's letters the prediction has at the same place."""
    got = prediction.split("\n")[0]
    return sum(a == b for a, b in zip(got, reference)) / max(1, len(reference))
