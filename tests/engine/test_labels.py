"""Sampled labels drawn a batch at a time on the device (issue 17, item 3).

Checked against a slow row-by-row reference of the same draw (equal labels), for
unbiasedness (the counts' mean is the teacher's distribution), and for not depending
on which rows share a batch.
"""

from __future__ import annotations

import pytest
import torch

from engine.errors import EngineError
from engine.teacher.generation import token_batches
from engine.teacher.labels import BatchLabels, counted, inverse_cdf_draws, seeded_generators, uniforms


def reference_draws(probs: torch.Tensor, uniform: torch.Tensor) -> list[dict[int, int]]:
    """Row by row, sample by sample: token i is the first whose cumulative mass exceeds u * total."""
    rows = []
    for row_probs, row_uniform in zip(probs, uniform):
        cdf = row_probs.float().cumsum(-1)
        counts: dict[int, int] = {}
        for u in row_uniform:
            target = u * cdf[-1]
            token = next((i for i in range(len(cdf)) if cdf[i] > target), len(cdf) - 1)
            counts[token] = counts.get(token, 0) + 1
        rows.append(dict(sorted(counts.items())))
    return rows


def test_batched_draws_equal_the_row_by_row_reference():
    torch.manual_seed(0)
    logits = torch.randn(4, 3, 40) * 2  # 4 steps of a batch of 3 rows
    recorder = BatchLabels("sampled", 25, 0, seeded_generators(7, 3), max_steps=4)
    for step in logits:
        recorder(step)
    kept = [4, 2, 3]  # rows end at different steps
    rows = recorder.rows(kept)
    expected_uniforms = uniforms(seeded_generators(7, 3), 4, 25)
    for row, (offsets, ids, probs) in enumerate(rows):
        assert len(offsets) == kept[row] + 1
        for step in range(kept[row]):
            reference = reference_draws(torch.softmax(logits[step, row: row + 1], -1), expected_uniforms[row, step: step + 1])[0]
            begin, end = offsets[step].item(), offsets[step + 1].item()
            assert dict(zip(ids[begin:end].tolist(), (probs[begin:end] * 25).round().int().tolist())) == reference


def test_the_counts_mean_is_the_teachers_distribution():
    probs = torch.tensor([[0.5, 0.25, 0.125, 0.125, 0.0]]).expand(2000, -1)
    draws = inverse_cdf_draws(probs, torch.rand(2000, 20, generator=torch.Generator().manual_seed(1)))
    frequencies = torch.bincount(draws.flatten(), minlength=5).float() / draws.numel()
    torch.testing.assert_close(frequencies, probs[0], atol=0.01, rtol=0)
    assert frequencies[4] == 0  # a token of probability 0 is never drawn


def test_counted_takes_runs_of_sorted_draws_without_a_loop():
    draws = torch.tensor([[[1, 1, 3, 3, 3], [0, 2, 2, 4, 4]]])
    ids, counts, lengths = counted(draws)
    assert ids.tolist() == [1, 3, 0, 2, 4] and counts.tolist() == [2, 3, 1, 2, 2] and lengths.tolist() == [[2, 3]]


def test_an_inputs_labels_do_not_depend_on_its_batch():
    torch.manual_seed(3)
    logits = torch.randn(5, 4, 30)
    generators = seeded_generators(0, 4)
    together = BatchLabels("sampled", 16, 0, generators, 5)
    for step in logits:
        together(step)
    alone = BatchLabels("sampled", 16, 0, seeded_generators(0, 4)[2:3], 5)
    for step in logits:
        alone(step[2:3])
    for got, expected in zip(together.rows([5] * 4)[2], alone.rows([5])[0]):
        assert torch.equal(got, expected)


def test_token_batches_fill_a_token_budget_in_length_order():
    prompts = [[0] * length for length in (30, 5, 12, 7, 30, 6)]
    batches = token_batches(prompts, max_new_tokens=10, batch_size=3, max_batch_tokens=80)
    # Lengths 5 6 7 | 12 30 | 30: 3 rows x 17 (batch_size); 2 x 40 = 80 fits, a third row would be 120.
    assert batches == [[1, 5, 3], [2, 0], [4]]
    assert sorted(index for batch in batches for index in batch) == list(range(6))
    assert token_batches(prompts, 10, 32, 0) == [[1, 5, 3, 2, 0, 4]]  # rows only


def test_a_prompt_over_the_token_budget_names_its_input():
    with pytest.raises(EngineError, match=r"input #1 is 50 tokens.*over generate.max_batch_tokens = 40"):
        token_batches([[0] * 5, [0] * 50], max_new_tokens=8, batch_size=4, max_batch_tokens=40)


def test_everything_that_changes_the_teachers_outputs_is_in_the_cache_key(tmp_path, char_model_dir):
    """Batching changes the padding, so the numerics (issue 26, item 2); so do device, dtype, attention kernel."""
    import dataclasses
    from types import SimpleNamespace

    from engine.project.loader import load_project
    from engine.teacher.teacher_pass import cache_key
    from engine_fixtures import write_project

    project = load_project(write_project(tmp_path / "p", char_model_dir))
    inputs = [{"input": "ab"}]

    def generate(**changes):
        return dataclasses.replace(project, generate=dataclasses.replace(project.generate, **changes))

    def model(device="cpu", dtype=torch.float32, attention="sdpa"):
        weights = torch.zeros(1, dtype=dtype)
        return SimpleNamespace(device=torch.device(device), parameters=lambda: iter([weights]),
                               config=SimpleNamespace(_attn_implementation=attention))

    base = cache_key(project, inputs, model=model())
    assert cache_key(generate(batch_size=4), inputs, model=model()) != base
    assert cache_key(generate(max_batch_tokens=1000), inputs, model=model()) != base
    assert cache_key(project, inputs, model=model(device="meta")) != base
    assert cache_key(project, inputs, model=model(dtype=torch.bfloat16)) != base
    assert cache_key(project, inputs, model=model(attention="eager")) != base
    assert cache_key(project, inputs, model=model()) == base
