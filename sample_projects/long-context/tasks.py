"""The substitution key, the labels and the pairs-right metric: see engine/toy/substitution_project.py."""

from engine.toy.substitution_project import label, pairs_right  # noqa: F401 (named in project.toml)
