"""Shared-prefix KV reuse (issue 9, item 2): the prompts' common prefix is encoded once and its
cache reused for every batch, with the same outputs as encoding every prompt whole."""

from __future__ import annotations

import pytest
import torch

from engine.project.schema import ModelConfig
from engine.teacher.generation import generate_batch
from engine.models import load_model


@pytest.fixture(params=["char", "bpe"])
def model_and_tokenizer(request):
    folder = request.getfixturevalue(f"{request.param}_model_dir")
    return load_model(ModelConfig(name=str(folder), dtype="float32", device="cpu"))


SHARED = "Reverse the letters.\nExample: abc -> cba\nExample: hgf -> fgh\n"
INPUTS = ["ab", "abcdefgh", "h", "cab", "ddd", "efgha"]


def test_common_prefix_leaves_every_prompt_a_token():
    from engine.teacher.generation import common_prefix_length

    assert common_prefix_length([[1, 2, 3], [1, 2, 4, 5]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert common_prefix_length([[7], [7, 8]]) == 0
    assert common_prefix_length([[1, 2], [3, 2]]) == 0


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_reusing_the_shared_prefix_gives_the_same_outputs(model_and_tokenizer, temperature):
    from engine.teacher.generation import encode_prompts, encode_shared_prefix, generate_all

    model, tokenizer = model_and_tokenizer
    prompts = [f"{SHARED}Input: {word}\nOutput: " for word in INPUTS]
    assert len(encode_shared_prefix(model, encode_prompts(tokenizer, prompts)).ids) > 20
    runs = []
    for reuse_prefix in (False, True):
        torch.manual_seed(3)
        runs.append(generate_all(model, tokenizer, prompts, batch_size=4, reuse_prefix=reuse_prefix, max_new_tokens=6,
                                 temperature=temperature, stops=["\n"], keep_logits=True))
    for plain, reused in zip(*runs):
        assert reused.output_ids == plain.output_ids and reused.text == plain.text
        torch.testing.assert_close(reused.logits, plain.logits, rtol=1e-4, atol=1e-4)


def test_the_prefix_cache_is_not_changed_by_generating(model_and_tokenizer):
    from engine.teacher.generation import encode_prompts, encode_shared_prefix

    model, tokenizer = model_and_tokenizer
    prompt_ids = encode_prompts(tokenizer, [f"{SHARED}Input: {word}\nOutput: " for word in INPUTS[:2]])
    prefix = encode_shared_prefix(model, prompt_ids)
    before = prefix.cache.get_seq_length()
    first = generate_batch(model, tokenizer, prompt_ids, max_new_tokens=4, prefix=prefix)
    assert prefix.cache.get_seq_length() == before
    assert [g.output_ids for g in generate_batch(model, tokenizer, prompt_ids, max_new_tokens=4, prefix=prefix)] \
        == [g.output_ids for g in first]


def test_the_preallocated_and_the_copied_prefix_cache_give_the_same_outputs(model_and_tokenizer, monkeypatch):
    import engine.teacher.generation as generation

    model, tokenizer = model_and_tokenizer
    prompt_ids = generation.encode_prompts(tokenizer, [f"{SHARED}Input: {word}\nOutput: " for word in INPUTS[:3]])
    prefix = generation.encode_shared_prefix(model, prompt_ids)
    runs = []
    for preallocated in (True, False):
        if not preallocated:
            monkeypatch.setattr(generation, "preallocated_cache", lambda prefix, size, length: generation.copied_cache(prefix, size))
        torch.manual_seed(7)
        runs.append(generate_batch(model, tokenizer, prompt_ids, max_new_tokens=5, temperature=1.0, prefix=prefix,
                                   keep_logits=True))
    for static, copied in zip(*runs):
        assert static.output_ids == copied.output_ids
        torch.testing.assert_close(static.logits, copied.logits, rtol=1e-4, atol=1e-4)


def test_a_batch_holds_the_shared_prefix_once_not_per_row(model_and_tokenizer):
    """Issue 17, item 4: the rows' caches hold their own tokens; the prefix is one copy for all rows,
    with the same outputs and logits as a per-row copy of it."""
    from engine.teacher import generation
    from engine.teacher.generation import encode_prompts, encode_shared_prefix, prefix_cache_for_batch

    model, tokenizer = model_and_tokenizer
    prompt_ids = encode_prompts(tokenizer, [f"{SHARED}Input: {word}\nOutput: " for word in INPUTS])
    prefix = encode_shared_prefix(model, prompt_ids)
    width = max(len(ids) for ids in prompt_ids) + 6
    shared = prefix_cache_for_batch(prefix, len(prompt_ids), width, model)
    copied = prefix_cache_for_batch(prefix, len(prompt_ids), width)
    assert getattr(shared, "shares_prefix", False) and not getattr(copied, "shares_prefix", False)
    for layer, prefix_layer in zip(shared.layers, prefix.cache.layers):
        assert layer.prefix_keys is prefix_layer.keys and layer.prefix_keys.shape[0] == 1  # the one copy
        assert layer.max_cache_len == width - len(prefix.ids)  # rows: room for their own tokens only

    outputs = {}
    for name, share in (("shared", model), ("copied", None)):
        original = generation.prefix_cache_for_batch
        generation.prefix_cache_for_batch = lambda p, rows, length, m=None, share=share: original(p, rows, length, share)
        try:
            torch.manual_seed(4)
            outputs[name] = generate_batch(model, tokenizer, prompt_ids, max_new_tokens=6, temperature=1.0,
                                           keep_logits=True, prefix=prefix)
        finally:
            generation.prefix_cache_for_batch = original
    for shared_row, copied_row in zip(outputs["shared"], outputs["copied"]):
        assert shared_row.output_ids == copied_row.output_ids
        torch.testing.assert_close(shared_row.logits, copied_row.logits, rtol=1e-4, atol=1e-4)
    assert model.config._attn_implementation != "shared_prefix"  # switched back after generating
