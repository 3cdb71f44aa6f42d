def make_inputs(rng, n):
    return [{"input": "a"} for _ in range(n)


def last_word(text):
    return text
