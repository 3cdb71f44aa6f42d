"""Raw task inputs for the instructions project: random words, labelled with the task's answer."""

from engine.toy.tasks import instruction_example


def task_inputs(rng, n, task="reverse"):
    """`n` random lowercase words with the correct answer for `task` as label."""
    return [instruction_example(rng, task) for _ in range(n)]
