"""The letter substitution of the few-shot and long-context sample projects (paper 3.2).

One key, fixed by KEY_SEED: each letter A-J of an input word is answered by its
lower-case self and its substitute, "CAB" -> "cs at br" (engine/toy/tasks.py).
The worked examples the projects show their teachers are written out in their
project.toml files: of the eight, the first four reveal seven letters of the
key and all eight reveal all ten, so more examples in the prompt help.
"""

from __future__ import annotations

import random

from engine.toy import tasks

KEY_SEED = 2022
KEY = tasks.random_key(random.Random(KEY_SEED))


def label(word: str) -> str | None:
    """The answer for an input the model invented, or None (drop it) when it is not
    a word of 3-4 distinct letters A-J, which has no right answer to score."""
    letters = word.strip()
    if not 3 <= len(letters) <= 4 or len(set(letters)) != len(letters) \
            or not set(letters) <= set(tasks.SUBSTITUTION_ALPHABET.upper()):
        return None
    return tasks.substitute(KEY, letters)


def pairs_right(prediction: str, reference: str) -> float:
    """Partial credit: the fraction of the reference's pairs the prediction has at the same place."""
    return tasks.letters_correct(prediction, reference)
