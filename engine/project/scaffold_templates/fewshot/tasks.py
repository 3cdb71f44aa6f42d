"""Raw task inputs with their own few-shot examples.

`ctxdistill` calls `with_examples(rng, n, **options)` with a seeded
`random.Random`. Every key of a row is a template variable: the teacher
template loops over `examples` and shows `instruction`.
"""

import string

TASKS = {
    "reverse": ("Reverse the letters.", lambda word: word[::-1]),
    "sort": ("Sort the letters.", lambda word: "".join(sorted(word))),
    "upper": ("Write the letters in capitals.", lambda word: word.upper()),
}


def _word(rng):
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 8)))


def with_examples(rng, n, task="reverse", shots=3):
    instruction, answer = TASKS[task]
    rows = []
    for _ in range(n):
        examples = [{"input": word, "label": answer(word)} for word in (_word(rng) for _ in range(shots))]
        word = _word(rng)
        rows.append({"input": word, "label": answer(word), "instruction": instruction, "examples": examples})
    return rows
