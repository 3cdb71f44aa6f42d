"""Raw task inputs: replace `inputs` with your own.

`ctxdistill` calls `inputs(rng, n, **options)` with a seeded `random.Random`
and expects `n` dicts: `input` is shown by the templates, `label` (optional)
is what answers are scored against; any other key is a template variable too.
"""

import string


def inputs(rng, n):
    rows = []
    for _ in range(n):
        word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 6)))
        rows.append({"input": word, "label": word})
    return rows
