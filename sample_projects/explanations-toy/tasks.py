"""Inputs (random words), labels for every string transformation (`label_<reorder>_<rewrite>`), letters right."""

import string

from engine.toy.over_tasks import labellers
from engine.toy.transform_project import letters_right  # noqa: F401 (named in project.toml)

globals().update(labellers())


def words(rng, n):
    """n words of 3-5 random lowercase letters (the length the transformations are pretrained on)."""
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 5))) for _ in range(n)]
