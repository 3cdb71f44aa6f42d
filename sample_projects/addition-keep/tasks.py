"""Raw task inputs for the addition project: random N-digit additions, labelled with the sum."""

from engine.toy.tasks import addition_inputs


def additions(rng, n, digits=4):
    """`n` additions of two `digits`-digit numbers; input "a+b", label the sum."""
    return [addition_inputs(rng, digits) for _ in range(n)]
