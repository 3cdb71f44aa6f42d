"""The in-context toy model `toy-icl`: prompt formats, its window, and a quick skill check (seconds)."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from engine.toy import TOY_BASE_DIR, TOY_ICL_DIR, build_char_tokenizer, resolve_toy_model, tasks

trained = pytest.mark.skipif(not (TOY_ICL_DIR / "model.safetensors").exists(), reason="toy-icl not trained yet")


def test_fewshot_prompt_format():
    examples = [{"input": "cab", "label": "bac"}, {"input": "fig", "label": "gif"}]
    assert tasks.fewshot_prompt(examples, "xy") == (
        "Input: cab\nOutput: bac\n\nInput: fig\nOutput: gif\n\nInput: xy\nOutput: ")
    # No examples: exactly the bare student prompt of the instructions project.
    assert tasks.fewshot_prompt([], "xy") == tasks.bare_prompt("xy")


def test_substitution_key_and_answer():
    rng = random.Random(0)
    key = tasks.random_key(rng)
    assert sorted(key) == list(tasks.SUBSTITUTION_ALPHABET)
    assert len(set(key.values())) == len(key) and set(key.values()) <= set(tasks.SUBSTITUTES)
    assert key == tasks.random_key(random.Random(0))  # seeded
    assert tasks.substitute({"c": "q", "a": "x", "b": "y"}, "CAB") == "cq ax by"
    assert tasks.key_pairs({"b": "y", "a": "x"}) == "ax by"
    for _ in range(100):
        ex = tasks.substitution_example(rng, key)
        word = ex["input"]
        # The input in capitals: a lower-case key letter appears only where a pair starts.
        assert 3 <= len(word) <= 4 and len(set(word)) == len(word) and set(word) <= set(tasks.SUBSTITUTION_ALPHABET.upper())
        assert ex["label"] == " ".join(c + key[c] for c in word.lower())
    assert tasks.letters_correct("cq az by\n\nInput", "cq ax by") == pytest.approx(2 / 3)


def test_icl_mixture_trains_every_token_of_fewshot_sequences():
    from engine.toy.pretrain import ICL_MIXTURE, MIXTURE, sample_example

    assert set(MIXTURE) < set(ICL_MIXTURE)
    rng = random.Random(0)
    for family in ("instruction", "substitution"):
        prompt, text = sample_example(rng, ("fewshot", family))
        assert prompt == "" and text.startswith("Input: ") and text.endswith("\n")
    # A component may set its number of worked examples: 8-14 makes 8-14 blocks.
    for _ in range(20):
        _, text = sample_example(rng, ("fewshot", "substitution", 8, 14))
        assert 8 <= text.count("Input: ") <= 14


def test_window_fits_eight_examples():
    # The longest 8-example prompts plus answer: 8-letter words doubled, 4-letter substitutions.
    tok = build_char_tokenizer()
    longest = {"double": ("abcdefgh", "aabbccddeeffgghh"), "subst": ("ABCD", "ak bl cm dn")}
    for x, y in longest.values():
        text = tasks.fewshot_prompt([{"input": x, "label": y}] * 8, x) + y + "\n"
        assert len(tok(text, add_special_tokens=False).input_ids) <= tok.model_max_length
        if (TOY_ICL_DIR / "config.json").exists():  # + 1 for the EOS
            assert len(text) + 1 <= AutoConfig.from_pretrained(TOY_ICL_DIR).max_position_embeddings


@trained
def test_toy_icl_loads_by_name_and_both_models_fit_the_size_cap():
    assert resolve_toy_model("toy-icl") == TOY_ICL_DIR
    size = sum(f.stat().st_size for d in (TOY_BASE_DIR, TOY_ICL_DIR) for f in d.iterdir() if f.is_file())
    assert size <= 20 * 1024 * 1024
    assert (TOY_ICL_DIR / "model.safetensors").exists() and not list(TOY_ICL_DIR.glob("*.bin"))


@trained
def test_toy_icl_looks_up_the_substitution_key_in_its_prompt():
    from engine.toy.pretrain import generate

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(TOY_ICL_DIR)
    model = AutoModelForCausalLM.from_pretrained(TOY_ICL_DIR)
    rng = random.Random(1)
    scores = {}
    for shots in (0, 8):
        rows = []
        for _ in range(20):
            key = tasks.random_key(rng)
            rows.append([tasks.substitution_example(rng, key) for _ in range(shots + 1)])
        outs = generate(model, tokenizer, [tasks.fewshot_prompt(r[:-1], r[-1]["input"]) for r in rows], 20)
        scores[shots] = sum(tasks.letters_correct(o, r[-1]["label"]) for o, r in zip(outs, rows)) / 20
    # toy-icl/TRAINING.md (200 prompts): 0.06 with no example, 0.47 with 8. Chance is about 1/16.
    assert scores[0] <= 0.15
    assert scores[8] >= 0.3
