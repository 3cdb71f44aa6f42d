"""Batched generation: left padding must not change an output, stops cut it, logits line up."""

from __future__ import annotations

import pytest
import torch

from engine.project.schema import ModelConfig
from engine.teacher.generation import check_fits, cut_output, generate_batch
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


# --- cutting in linear time -----------------------------------------------------

def cut_by_prefix_scan(tokenizer, ids, eos_ids, stops):
    """The definition: the first prefix whose decode holds a stop string (quadratic)."""
    for i, token in enumerate(ids):
        if token in eos_ids:
            ids = ids[: i + 1]
            break
    for i in range(len(ids)):
        if any(stop and stop in tokenizer.decode(ids[: i + 1], skip_special_tokens=True) for stop in stops):
            return ids[: i + 1]
    return ids


@pytest.mark.parametrize("text", ["ab\ncd", "x 日本\n\ny", "café é. done", "🙂 end 🙂🙂", "a  b\t\tc\n", "no stop"])
@pytest.mark.parametrize("stops", [["\n"], ["本"], ["é."], ["🙂🙂", "\t"], ["  b", "cd"], []])
def test_cut_output_equals_the_prefix_scan(text, stops, bpe_tokenizer):
    eos = bpe_tokenizer.eos_token_id
    from test_alignment import one_token_per_byte

    for ids in (bpe_tokenizer(text).input_ids + [eos] + bpe_tokenizer("zz\n").input_ids,
                one_token_per_byte(bpe_tokenizer, text)):
        assert cut_output(bpe_tokenizer, ids, {eos}, stops) == cut_by_prefix_scan(bpe_tokenizer, ids, {eos}, stops)


# --- labels step by step (issue 9, item 3; a batch per step since issue 17) ----------

@pytest.mark.parametrize("kind", ["sampled", "topk"])
def test_labels_taken_step_by_step_equal_labels_from_kept_logits(model_and_tokenizer, kind):
    """Each output draws its `sampled` labels from its own generator, so its labels do not depend
    on which rows share its batch or how long they run."""
    from engine.teacher.labels import BatchLabels, sampled_labels, topk_labels, uniforms

    model, tokenizer = model_and_tokenizer
    prompt_ids = [tokenizer(prompt).input_ids for prompt in PROMPTS]
    options = dict(max_new_tokens=6, temperature=1.0, stops=["\n"])
    seeds = [100 + row for row in range(len(prompt_ids))]
    torch.manual_seed(5)
    with_logits = generate_batch(model, tokenizer, prompt_ids, keep_logits=True, **options)
    torch.manual_seed(5)
    recorder = BatchLabels(kind, 16, 3, [torch.Generator().manual_seed(seed) for seed in seeds], 6)
    stepwise = generate_batch(model, tokenizer, prompt_ids, on_step=recorder, **options)
    for seed, kept, streamed in zip(seeds, with_logits, stepwise):
        assert streamed.output_ids == kept.output_ids and streamed.logits is None  # same tokens, no dense logits
        probs = torch.softmax(kept.logits.float(), -1)
        if kind == "sampled":
            expected = sampled_labels(probs, uniforms([torch.Generator().manual_seed(seed)], 6, 16)[0][: len(probs)])
        else:
            expected = topk_labels(probs, 3)
        offsets, ids, label_probs = streamed.recorded
        assert offsets.tolist() == expected[0].tolist() and ids.tolist() == expected[1].tolist()
        torch.testing.assert_close(label_probs, expected[2], rtol=0, atol=0)


class KeepLogits:
    """A step recorder that keeps every step's logits (to compare with `keep_logits`)."""

    def __init__(self):
        self.steps = []

    def __call__(self, logits):
        self.steps.append(logits.clone())

    def rows(self, kept):
        return [torch.stack([step[row] for step in self.steps])[:length] for row, length in enumerate(kept)]


def test_step_function_sees_the_raw_logits_keep_logits_keeps(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompt_ids = [tokenizer(prompt).input_ids for prompt in PROMPTS]
    (kept, _) = generate_batch(model, tokenizer, prompt_ids, max_new_tokens=4, keep_logits=True)
    (streamed, _) = generate_batch(model, tokenizer, prompt_ids, max_new_tokens=4, on_step=KeepLogits())
    assert torch.equal(streamed.recorded, kept.logits)


class RowIndices:
    def __init__(self, indices):
        self.indices = indices

    def __call__(self, logits):
        pass

    def rows(self, kept):
        return [[index] * length for index, length in zip(self.indices, kept)]


def test_generate_all_tells_the_recorder_which_inputs_the_rows_are(model_and_tokenizer):
    from engine.teacher.generation import generate_all

    model, tokenizer = model_and_tokenizer
    prompts = ["Input: abcdefgh\nOutput: ", "Input: a\nOutput: ", "Input: abc\nOutput: "]  # sorted by length: 1, 2, 0
    outputs = generate_all(model, tokenizer, prompts, batch_size=2, max_new_tokens=3,
                           recorder_for=RowIndices)
    for index, output in enumerate(outputs):
        assert output.recorded == [index] * len(output.output_ids)


# --- the model's own generation settings stay out (issue 26, item 1) ------------------

def test_the_models_own_sampling_settings_do_not_reach_the_teacher(model_and_tokenizer):
    """A generation_config.json with a repetition penalty or a top-k changes the distribution the tokens
    are drawn from, while the labels come from the raw one: generation must ignore them."""
    from engine.teacher.generation import models_own_sampling

    model, tokenizer = model_and_tokenizer
    prompt_ids = [tokenizer(prompt).input_ids for prompt in PROMPTS]
    options = dict(max_new_tokens=8, temperature=1.0)
    torch.manual_seed(11)
    plain = generate_batch(model, tokenizer, prompt_ids, **options)
    model.generation_config.repetition_penalty = 50.0
    model.generation_config.top_k = 1
    try:
        assert models_own_sampling(model) == {"repetition_penalty": 50.0, "top_k": 1}
        torch.manual_seed(11)
        with_own = generate_batch(model, tokenizer, prompt_ids, **options)
    finally:
        model.generation_config.repetition_penalty, model.generation_config.top_k = 1.0, 50
    assert [g.output_ids for g in with_own] == [g.output_ids for g in plain]
    assert model.generation_config.repetition_penalty == 1.0  # the model's config is given back
