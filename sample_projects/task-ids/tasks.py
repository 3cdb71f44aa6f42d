"""Raw task inputs for the task-id experiment: see engine/toy/task_ids.py."""

from engine.toy.task_ids import mixed_inputs, other_inputs, own_inputs  # noqa: F401 (named in project.toml)
