"""Functions the bad-input cases point at: good ones, and each way a project's own code can go wrong."""

LETTERS = "abcdefgh"


def make_inputs(rng, n):
    words = ["".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6))) for _ in range(n)]
    return [{"input": word, "label": word[::-1]} for word in words]


def unlabelled(rng, n):
    return [{"input": row["input"]} for row in make_inputs(rng, n)]


def raises(rng, n):
    table = {}
    return [table["missing"] for _ in range(n)]


def returns_none(rng, n):
    rows = make_inputs(rng, n)
    rows.sort(key=len)  # forgot to return


def returns_ints(rng, n):
    return list(range(n))


def no_input_key(rng, n):
    return [{"text": row["input"]} for row in make_inputs(rng, n)]


def one_argument(rng):
    return make_inputs(rng, 10)


def generator_raises(rng, n):
    for index in range(n):
        if index == 3:
            raise RuntimeError("the generator broke at item 3")
        yield {"input": f"w{index}"}


def few_unique(rng, n):
    return [{"input": rng.choice(["same", "other"])} for _ in range(n)]


def ten_values(rng, n):
    return [{"input": str(rng.randrange(10))} for _ in range(n)]


def exits(rng, n):
    import sys

    sys.exit("no more inputs")


def last_word(text):
    words = text.split()
    return words[-1] if words else None


def extractor_raises(text):
    return text.split("=")[1]


def extractor_bad_return(text):
    return 42.5


def extractor_two_arguments(text, marker):
    return None


def match(prediction, reference):
    return float(prediction == reference)


def metric_raises(prediction, reference):
    return len(prediction) / (len(reference) - len(reference))


def metric_string(prediction, reference):
    return "yes" if prediction == reference else "no"


def metric_nan(prediction, reference):
    return float("nan")


def metric_one_argument(prediction):
    return 1.0


def metric_raises_on_wrong(prediction, reference):
    if prediction != reference:
        raise ValueError(f"cannot score {prediction!r}")
    return 1.0
