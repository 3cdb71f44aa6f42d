"""Fixtures for the engine tests: tiny random models saved to folders (session-scoped).

Two tokenization styles (design.md, "Tests"): the character tokenizer with a
Llama-style model, and a byte-level BPE trained on the fly with a GPT-2 model.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from engine_fixtures import CONTEXT, LETTERS, build_bpe_tokenizer  # noqa: E402

# The test machines have two cores and often another job on them: two torch
# threads fighting that job make tiny-model steps ~20x slower than one thread.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def char_model_dir(tmp_path_factory) -> Path:
    """A random 2-layer Llama with the character tokenizer, saved with save_pretrained."""
    from engine.toy.model import build_toy_model
    from engine.toy.tokenizer import build_char_tokenizer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("char-llama")
    tokenizer = build_char_tokenizer()
    model = build_toy_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, max_position_embeddings=128)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def context_model_dir(tmp_path_factory) -> Path:
    """A char Llama briefly trained so the teacher's context matters (for the distillation test).

    With the line `Always answer zzzz.` before the input it answers `zzzz`; without
    it, `yyyy`. Distilling that context must move the student's answer distribution
    from yyyy to zzzz, which the engine's own answer-token KL measures.
    """
    from engine.toy.model import build_toy_model
    from engine.toy.tokenizer import build_char_tokenizer

    torch.manual_seed(0)
    rng = random.Random(0)
    tokenizer = build_char_tokenizer()
    model = build_toy_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, max_position_embeddings=128)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def text(with_context: bool) -> str:
        word = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6)))
        if with_context:
            return f"{CONTEXT}\nInput: {word}\nOutput: zzzz\n"
        return f"Input: {word}\nOutput: yyyy\n"

    model.train()
    for _step in range(80):
        encoded = tokenizer([text(i % 2 == 0) for i in range(32)], padding=True, return_tensors="pt")
        labels = encoded.input_ids.masked_fill(encoded.attention_mask == 0, -100)
        loss = model(**encoded, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.6, f"the context model did not learn its two answers (loss {loss.item():.3f})"
    folder = tmp_path_factory.mktemp("context-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def bpe_tokenizer():
    return build_bpe_tokenizer()


@pytest.fixture(scope="session")
def bpe_model_dir(tmp_path_factory, bpe_tokenizer) -> Path:
    """A random 2-layer GPT-2 with a byte-level BPE trained on the fly."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("bpe-gpt2")
    eos = bpe_tokenizer.eos_token_id
    config = GPT2Config(vocab_size=len(bpe_tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    GPT2LMHeadModel(config).save_pretrained(folder)
    bpe_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def char_tokenizer():
    from engine.toy.tokenizer import build_char_tokenizer

    return build_char_tokenizer()
