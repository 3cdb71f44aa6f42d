"""Raw task inputs: random lowercase words, labelled with the task's answer.

`ctxdistill` calls `words(rng, n, **options)` with a seeded `random.Random`;
return `n` dicts. `input` is what the templates show; `label` (optional) is
what answers are scored against.
"""

import string

TASKS = {
    "reverse": lambda word: word[::-1],
    "sort": lambda word: "".join(sorted(word)),
    "upper": lambda word: word.upper(),
}


def words(rng, n, task="reverse"):
    rows = []
    for _ in range(n):
        word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 8)))
        rows.append({"input": word, "label": TASKS[task](word)})
    return rows
