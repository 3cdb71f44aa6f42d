"""Helpers for the engine tests: tiny project folders and the on-the-fly BPE tokenizer.

Imported by `conftest.py` and by tests (`from engine_fixtures import write_project`).
"""

from __future__ import annotations

import random
from pathlib import Path

LETTERS = "abcdefgh"

TASKS_PY = '''
def reverse_inputs(rng, n):
    letters = "abcdefgh"
    rows = []
    for _ in range(n):
        word = "".join(rng.choice(letters) for _ in range(rng.randint(3, 6)))
        rows.append({"input": word, "label": word[::-1]})
    return rows


def few_inputs(rng, n):
    return [{"input": "same"}] * n + [{"input": "other"}]


def last_word(text):
    words = text.split()
    return words[-1] if words else None
'''

PROJECT_TOML = '''\
name = "{name}"

[model]
name = "{model}"
dtype = "float32"
device = "cpu"

[inputs]
source = "python"
function = "tasks:reverse_inputs"
count = {count}
seed = 0

[teacher]
template = """{teacher}"""

[student]
template = """Input: {{{{ input }}}}
Output: """

[extract]
{extract}

[generate]
max_new_tokens = {max_new_tokens}
temperature = 1.0
stop = ["\\n"]
batch_size = 16

[distill]
labels = "{labels}"
num_samples = 8
max_steps = {max_steps}
batch_size = 4
learning_rate = {learning_rate}
seed = 0

[eval]
count = {eval_count}
metrics = {metrics}
reference = "label"
batch_size = 16
'''

DEFAULTS = dict(
    name="tiny", count=8, eval_count=3, max_steps=4, labels="hard", learning_rate=1e-3, max_new_tokens=6,
    teacher="Reverse the letters.\nInput: {{ input }}\nOutput: ", extract='kind = "identity"',
    metrics='["exact_match", "rouge_l", "answer_kl"]',
)


def write_project(folder: Path, model: Path | str, **overrides) -> Path:
    """A project folder (project.toml + tasks.py) on `model`; keyword arguments fill PROJECT_TOML."""
    values = {**DEFAULTS, **overrides, "model": str(model)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "project.toml").write_text(PROJECT_TOML.format(**values), encoding="utf-8")
    (folder / "tasks.py").write_text(TASKS_PY, encoding="utf-8")
    return folder


def bpe_corpus() -> list[str]:
    """Texts like the ones the tasks render, so the BPE learns merges over them."""
    rng = random.Random(0)
    lines = []
    for _ in range(400):
        word = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6)))
        number = rng.randint(0, 999)
        lines.append(f"Reverse the letters.\nInput: {word}\nOutput: {word[::-1]}\n")
        lines.append(f"Step: carry the one\nAnswer: {number}\n")
        lines.append(f"Input: {word}\nOutput: {word[::-1]}\n")
    return lines


def build_bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(bpe_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                   clean_up_tokenization_spaces=False, model_max_length=128)




CONTEXT = "Always answer zzzz."
