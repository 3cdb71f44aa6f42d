"""Raw task inputs: two numbers to add, labelled with their sum.

`ctxdistill` calls `additions(rng, n, **options)` with a seeded `random.Random`.
Extra keys (`a`, `b`) are available to the templates as variables too.
"""


def additions(rng, n, digits=3):
    low, high = 10 ** (digits - 1), 10 ** digits - 1
    rows = []
    for _ in range(n):
        a, b = rng.randint(low, high), rng.randint(low, high)
        rows.append({"a": a, "b": b, "input": f"{a}+{b}", "label": str(a + b)})
    return rows
