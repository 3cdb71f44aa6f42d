"""Fast checks of the embedded toy model family (no training, seconds)."""

from __future__ import annotations

import random
import string

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.toy import TOY_BASE_DIR, build_char_tokenizer, build_toy_model, resolve_toy_model
from engine.toy import tasks

PRINTABLE = "".join(c for c in string.printable if c not in "\x0b\x0c")


def test_tokenizer_round_trips_one_token_per_character():
    tok = build_char_tokenizer()
    texts = [PRINTABLE, "Reverse the letters.\nInput: abc\nOutput: cba\n", "  two  spaces\t\ttab\n\n",
             tasks.scratchpad_prompt(58, 67) + tasks.scratchpad_completion(58, 67)]
    for text in texts:
        ids = tok(text, add_special_tokens=False).input_ids
        assert len(ids) == len(text)
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text


def test_tokenizer_special_tokens_and_no_bos_by_default():
    tok = build_char_tokenizer()
    assert (tok.pad_token, tok.bos_token, tok.eos_token, tok.unk_token) == ("<pad>", "<bos>", "<eos>", "<unk>")
    assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id}) == 4
    assert tok("ab").input_ids == tok("ab", add_special_tokens=False).input_ids
    assert tok.decode(tok("ab").input_ids + [tok.eos_token_id], skip_special_tokens=True) == "ab"


def test_tiny_model_saves_and_loads_through_auto_classes(tmp_path):
    tok = build_char_tokenizer()
    model = build_toy_model(tok, hidden_size=32, num_layers=2, num_heads=2)
    assert model.config.eos_token_id == tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").exists()
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    text = "Input: xyz\nOutput: "
    assert tok2(text, add_special_tokens=False).input_ids == tok(text, add_special_tokens=False).input_ids
    ids = torch.tensor([tok(text, add_special_tokens=False).input_ids])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, model2(ids).logits, atol=1e-5)


def test_instruction_tasks():
    fns = {name: fn for name, (_, fn) in tasks.INSTRUCTION_TASKS.items()}
    assert fns["reverse"]("abc") == "cba"
    assert fns["sort"]("cab") == "abc"
    assert fns["upper"]("abc") == "ABC"
    assert fns["shift"]("abz") == "bca"
    assert fns["double"]("ab") == "aabb"
    assert fns["count"]("abcd") == "4"
    assert tasks.instruction_prompt("reverse", "abc") == "Reverse the letters.\nInput: abc\nOutput: "
    assert tasks.instruction_completion("reverse", "abc") == "cba\n"
    assert tasks.bare_prompt("abc") == "Input: abc\nOutput: "
    rng = random.Random(0)
    for _ in range(100):
        ex = tasks.instruction_example(rng, "sort")
        assert 3 <= len(ex["input"]) <= 8 and ex["input"].islower()
        assert ex["label"] == "".join(sorted(ex["input"]))


def test_instruction_examples_are_seeded():
    a = [tasks.instruction_example(random.Random(7), "shift") for _ in range(3)]
    b = [tasks.instruction_example(random.Random(7), "shift") for _ in range(3)]
    assert a == b


def test_scratchpad_addition_format():
    assert tasks.scratchpad_prompt(58, 67) == "Add with steps: 58+67\n"
    assert tasks.scratchpad_completion(58, 67) == "8+7+0=15 c1\n5+6+1=12 c1\nAnswer: 125\n"
    assert tasks.direct_addition_prompt(58, 67) == "Add: 58+67\nAnswer: "
    assert tasks.direct_addition_completion(58, 67) == "125\n"
    assert tasks.scratchpad_answer(tasks.scratchpad_completion(9999, 1000)) == "10999"


def test_addition_inputs_have_exact_digit_count():
    rng = random.Random(0)
    for _ in range(200):
        ex = tasks.addition_inputs(rng, 4)
        assert 1000 <= ex["a"] <= 9999 and 1000 <= ex["b"] <= 9999
        assert ex["input"] == f"{ex['a']}+{ex['b']}" and ex["label"] == str(ex["a"] + ex["b"])


def test_pretraining_mixture_never_shows_the_bare_prompt_or_long_direct_sums():
    from engine.toy.pretrain import MIXTURE, make_batch, sample_example

    rng = random.Random(0)
    for kind in MIXTURE:
        for _ in range(20):
            prompt, _ = sample_example(rng, kind)
            assert not prompt.startswith("Input: ")
            if prompt.startswith("Add: "):
                a, b = prompt[len("Add: "):].split("\n")[0].split("+")
                assert len(a) <= 2 and len(b) <= 2
    batch = make_batch(rng, build_char_tokenizer(), 8)
    # Loss only on completion tokens: every row has some masked prompt and some targets.
    assert ((batch["labels"] == -100).any(1)).all() and ((batch["labels"] != -100).any(1)).all()


def test_resolve_toy_model():
    assert resolve_toy_model("toy-base") == TOY_BASE_DIR
    assert resolve_toy_model("gpt2") is None


@pytest.mark.skipif(not (TOY_BASE_DIR / "model.safetensors").exists(), reason="toy-base not trained yet")
def test_shipped_toy_base_loads_and_is_small():
    size = sum(f.stat().st_size for f in TOY_BASE_DIR.iterdir() if f.is_file())
    assert size <= 20 * 1024 * 1024
    tok = AutoTokenizer.from_pretrained(TOY_BASE_DIR)
    model = AutoModelForCausalLM.from_pretrained(TOY_BASE_DIR)
    assert model.config.eos_token_id == tok.eos_token_id
    ids = tok("Reverse the letters.\nInput: abc\nOutput: ", return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids.input_ids.shape[1]
