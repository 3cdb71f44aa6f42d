"""Batched generation: left padding must not change an output, stops cut it, logits line up."""

from __future__ import annotations

import pytest
import torch

from engine.config import ModelConfig
from engine.generation import check_fits, cut_output, generate_batch
from engine.errors import EngineError
from engine.models import load_model

PROMPTS = ["Input: ab\nOutput: ", "Reverse the letters.\nInput: abcdefgh\nOutput: "]


@pytest.fixture(params=["char", "bpe"])
def model_and_tokenizer(request):
    folder = request.getfixturevalue(f"{request.param}_model_dir")
    return load_model(ModelConfig(name=str(folder), dtype="float32", device="cpu"))


def test_batched_outputs_and_logits_equal_unbatched(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompt_ids = [tokenizer(prompt).input_ids for prompt in PROMPTS]
    batched = generate_batch(model, tokenizer, prompt_ids, max_new_tokens=5, keep_logits=True)
    for ids, together in zip(prompt_ids, batched):
        (alone,) = generate_batch(model, tokenizer, [ids], max_new_tokens=5, keep_logits=True)
        assert together.output_ids == alone.output_ids
        assert together.logits.shape == (len(together.output_ids), len(tokenizer))
        torch.testing.assert_close(together.logits, alone.logits, rtol=1e-4, atol=1e-4)
        # The logits at output position j are the model's prediction of output token j (greedy: its argmax).
        assert together.logits.argmax(-1).tolist() == together.output_ids
        # And they are the ones a plain forward pass over prompt + output gives.
        with torch.no_grad():
            forward = model(torch.tensor([ids + together.output_ids])).logits[0, len(ids) - 1: -1]
        torch.testing.assert_close(together.logits, forward, rtol=1e-4, atol=1e-4)


def test_cut_output_at_eos_and_first_stop(char_tokenizer):
    eos = char_tokenizer.eos_token_id
    ids = char_tokenizer("ab\ncd").input_ids + [eos] + char_tokenizer("zz").input_ids
    assert cut_output(char_tokenizer, ids, {eos}, []) == char_tokenizer("ab\ncd").input_ids + [eos]
    assert cut_output(char_tokenizer, ids, {eos}, ["\n"]) == char_tokenizer("ab\n").input_ids
    assert cut_output(char_tokenizer, ids, {eos}, ["cd"]) == char_tokenizer("ab\ncd").input_ids


def test_check_fits_names_the_input_and_the_window(char_model_dir):
    model, tokenizer = load_model(ModelConfig(name=str(char_model_dir), dtype="float32", device="cpu"))
    check_fits(model, [[1] * 100], 28, "teacher")  # exactly the 128-token window
    with pytest.raises(EngineError) as raised:
        check_fits(model, [[1] * 10, [1] * 100], 29, "student")
    message = str(raised.value)
    assert "the student prompt of input #1 is 100 tokens" in message
    assert "generate.max_new_tokens = 29" in message and "context window of 128 tokens" in message
