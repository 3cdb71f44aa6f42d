"""Synthetic tasks the toy models are pretrained on and the sample projects use.

The text formats here are a contract: the sample projects' templates render
exactly these prompts, so change them only together.

Two families:

* Instruction tasks over a random lowercase word: the prompt names the task
  ("Reverse the letters.") and the model must apply it. Context distillation
  removes the instruction: the student sees only "Input: x\\nOutput: ". That
  instruction-less prompt is NEVER generated for pretraining, so before
  distillation the student cannot know which task is meant.
* Addition with a scratch pad (Snell et al. 2022, section 3.3): the teacher is
  asked "Add with steps:" and writes one line per digit before the answer; the
  student is asked to answer directly. Pretraining shows the direct form only
  for 1-2 digit numbers, so direct 4-digit addition is unknown before
  distillation.
"""

from __future__ import annotations

import random
import string
from typing import Callable


def _shift(word: str) -> str:
    # Next letter in the alphabet, wrapping z -> a.
    return "".join(chr((ord(c) - ord("a") + 1) % 26 + ord("a")) for c in word)


# task name -> (instruction line, function from input word to answer)
INSTRUCTION_TASKS: dict[str, tuple[str, Callable[[str], str]]] = {
    "reverse": ("Reverse the letters.", lambda x: x[::-1]),
    "sort": ("Sort the letters.", lambda x: "".join(sorted(x))),
    "upper": ("Write the letters in capitals.", lambda x: x.upper()),
    "shift": ("Replace each letter with the next one in the alphabet.", _shift),
    "double": ("Double each letter.", lambda x: "".join(c * 2 for c in x)),
    "count": ("Count the letters.", lambda x: str(len(x))),
}


def random_word(rng: random.Random, min_len: int = 3, max_len: int = 8) -> str:
    """Random lowercase letters (not a dictionary word: nothing to memorise)."""
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(min_len, max_len)))


def instruction_example(rng: random.Random, task: str) -> dict[str, str]:
    """One input word and its correct answer for `task`."""
    x = random_word(rng)
    return {"input": x, "label": INSTRUCTION_TASKS[task][1](x)}


def instruction_prompt(task: str, x: str) -> str:
    """Teacher-style prompt: the instruction line, then the input."""
    return f"{INSTRUCTION_TASKS[task][0]}\nInput: {x}\nOutput: "


def bare_prompt(x: str) -> str:
    """Student-style prompt with the instruction removed (never pretrained on)."""
    return f"Input: {x}\nOutput: "


def instruction_completion(task: str, x: str) -> str:
    return f"{INSTRUCTION_TASKS[task][1](x)}\n"


def random_number(rng: random.Random, digits: int) -> int:
    """A number with exactly `digits` digits (no leading zero)."""
    low = 10 ** (digits - 1) if digits > 1 else 0
    return rng.randint(low, 10**digits - 1)


def addition_inputs(rng: random.Random, digits: int) -> dict:
    """Two `digits`-digit numbers, the rendered input "a+b" and the sum as label."""
    a, b = random_number(rng, digits), random_number(rng, digits)
    return {"a": a, "b": b, "input": f"{a}+{b}", "label": str(a + b)}


def scratchpad_prompt(a: int, b: int) -> str:
    return f"Add with steps: {a}+{b}\n"


def scratchpad_completion(a: int, b: int) -> str:
    """One line per digit from the least significant: "da+db+carry_in=sum c<carry_out>".

    The numbers are padded with zeros to the same length; then "Answer: a+b".
    E.g. 58+67 -> "8+7+0=15 c1\\n5+6+1=12 c1\\nAnswer: 125\\n".
    """
    sa, sb = str(a), str(b)
    width = max(len(sa), len(sb))
    sa, sb = sa.zfill(width), sb.zfill(width)
    lines, carry = [], 0
    for da, db in zip(map(int, reversed(sa)), map(int, reversed(sb))):
        s = da + db + carry
        lines.append(f"{da}+{db}+{carry}={s} c{s // 10}\n")
        carry = s // 10
    return "".join(lines) + f"Answer: {a + b}\n"


def direct_addition_prompt(a: int, b: int) -> str:
    return f"Add: {a}+{b}\nAnswer: "


def direct_addition_completion(a: int, b: int) -> str:
    return f"{a + b}\n"


def scratchpad_answer(text: str) -> str | None:
    """The number after "Answer: " in a generated scratch pad, if any."""
    for line in text.splitlines():
        if line.startswith("Answer: "):
            return line[len("Answer: "):].strip()
    return None


# --- in-context learning (the `toy-icl` model) ----------------------------------
#
# Few-shot prompts are worked examples in the bare format, one blank line apart,
# then the query in the same format (no instruction anywhere):
#
#     Input: cab\nOutput: bac\n\nInput: fig\nOutput: gif\n\nInput: x\nOutput: 
#
# With zero examples this is exactly `bare_prompt`. Two families use it:
#
# * an instruction task (any of INSTRUCTION_TASKS) that the model must infer from
#   the examples; one or two examples usually settle which task is meant;
# * a letter substitution whose key (letters a-j -> distinct letters of k-z) is
#   new in every prompt: the input is a word in capitals (CAB) and the answer
#   pairs each of its letters, in lower case, with its substitute ("cq ax by"),
#   so each example reveals a few pairs of the key; the more examples, the more
#   of the key is known, and a letter no example revealed can only be guessed.
#
# Why this shape: to say what follows "c", the model needs only the classic
# induction circuit (find an earlier "c", copy the token after it). That circuit
# works only if every earlier "c" is followed by its substitute, so the input
# is in capitals and "Input"/"Output" hold no letter of a-j: a lower-case key
# letter appears nowhere but at the start of a pair. With lower-case inputs
# ("Input: cab"), half the earlier "c"s were followed by another input letter,
# and five CPU pretraining runs never found the lookup (engine/toy/TRAINING.md).

SUBSTITUTION_ALPHABET = "abcdefghij"


def example_block(x: str, y: str) -> str:
    """One worked example of a few-shot prompt, with the blank line that ends it."""
    return f"Input: {x}\nOutput: {y}\n\n"


def fewshot_prompt(examples: list[dict[str, str]], x: str) -> str:
    """Worked examples (dicts with "input" and "label"), then the query `x`."""
    return "".join(example_block(e["input"], e["label"]) for e in examples) + bare_prompt(x)


# Substitutes come from the other letters, so a key letter never appears as a
# substitute: the lookup "which letter follows `c`" is never confused with the
# word being encoded (disjoint keys and values make associative recall easier).
SUBSTITUTES = "klmnopqrstuvwxyz"


def random_key(rng: random.Random) -> dict[str, str]:
    """A substitution key: each letter of SUBSTITUTION_ALPHABET -> a distinct letter of SUBSTITUTES."""
    return dict(zip(SUBSTITUTION_ALPHABET, rng.sample(SUBSTITUTES, len(SUBSTITUTION_ALPHABET))))


def key_pairs(key: dict[str, str]) -> str:
    """The whole key in the answer's notation, e.g. "aq bx ... jm"."""
    return " ".join(c + key[c] for c in sorted(key))


def substitution_word(rng: random.Random, min_len: int = 3, max_len: int = 4) -> str:
    """3-4 distinct letters of A-J: each example reveals that many pairs of the key."""
    return "".join(rng.sample(SUBSTITUTION_ALPHABET, rng.randint(min_len, max_len))).upper()


def substitute(key: dict[str, str], word: str) -> str:
    """The answer: each letter, in lower case, followed by its substitute: "CAB" -> "cq ax by"."""
    return " ".join(c + key[c] for c in word.lower())


def substitution_example(rng: random.Random, key: dict[str, str]) -> dict[str, str]:
    """One input word and its substitution under `key`."""
    x = substitution_word(rng)
    return {"input": x, "label": substitute(key, x)}


def letters_correct(output: str, label: str) -> float:
    """Fraction of the label's pairs ("cq") that the output's first line has at the same place."""
    want, got = label.split(" "), output.split("\n")[0].split(" ")
    return sum(w == g for w, g in zip(want, got)) / len(want)
