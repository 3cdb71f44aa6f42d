"""Labels for every string transformation (`label_<reorder>_<rewrite>`) and the letters-right metric.

project.toml names the label function of its task; over_tasks.py switches it per task.
"""

from engine.toy.over_tasks import labellers
from engine.toy.transform_project import letters_right  # noqa: F401 (named in project.toml)

globals().update(labellers())
