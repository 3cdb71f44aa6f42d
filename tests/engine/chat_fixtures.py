"""Chat tokenizers built locally (no download): the character tokenizer plus the special tokens
and the chat template of a real chat model family, so tests see what Qwen and Llama 3 do.

- ChatML (Qwen 2.5): `<|im_start|>role\\n...<|im_end|>\\n`, a default system message, no BOS;
  the tokenizer's EOS is `<|endoftext|>` (as in Qwen's base models), not the end of turn.
  On a Qwen2 model the tokenizer is a real `Qwen2Tokenizer` (a byte-level BPE trained on the fly):
  transformers 5 loads the tokenizer of a `qwen2` folder as that class, whatever was saved.
- Llama 3: `<|begin_of_text|>` written by the template *and* added by the tokenizer's
  post-processor (the real one does both), `<|eot_id|>` ends a turn, EOS is `<|end_of_text|>`.
"""

from __future__ import annotations

from pathlib import Path

# Qwen2.5-Instruct's template, tools branches left out.
CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if message.role != 'system' %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Meta-Llama-3-8B-Instruct's template.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

STYLES = ("chatml", "llama3")


def build_qwen2_tokenizer():
    """A `Qwen2Tokenizer` with ChatML tokens and template, from a byte-level BPE trained on the test corpus."""
    import json

    from transformers import AddedToken, Qwen2Tokenizer

    from engine_fixtures import build_bpe_tokenizer

    state = json.loads(build_bpe_tokenizer().backend_tokenizer.to_str())
    tokenizer = Qwen2Tokenizer(vocab=state["model"]["vocab"], merges=[tuple(m) for m in state["model"]["merges"]],
                               unk_token=None, bos_token=None, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": [AddedToken(t, special=True)
                                                                for t in ("<|im_start|>", "<|im_end|>")]})
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.model_max_length = 32768
    return tokenizer


def build_chat_tokenizer(style: str):
    from tokenizers import processors
    from transformers import AddedToken

    from engine.toy.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    if style == "chatml":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tokenizer.add_special_tokens({"additional_special_tokens": [AddedToken(t, special=True) for t in specials]})
        tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token = "<|endoftext|>", "<|endoftext|>", None
        tokenizer.chat_template = CHATML_TEMPLATE
    else:
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        tokenizer.add_special_tokens({"additional_special_tokens": [AddedToken(t, special=True) for t in specials]})
        tokenizer.bos_token, tokenizer.eos_token = "<|begin_of_text|>", "<|end_of_text|>"
        bos = tokenizer.convert_tokens_to_ids("<|begin_of_text|>")
        tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", bos)])
        tokenizer.chat_template = LLAMA3_TEMPLATE
    return tokenizer


def build_chat_model_dir(folder: Path, style: str, *, architecture: str = "llama", seed: int = 0,
                         max_positions: int = 512) -> Path:
    """A random tiny chat model (`llama`: the toy Llama; `qwen2`: Qwen2ForCausalLM) saved with its tokenizer."""
    import torch

    from transformers import AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = build_qwen2_tokenizer() if architecture == "qwen2" else build_chat_tokenizer(style)
    if architecture == "qwen2":
        from transformers import Qwen2Config, Qwen2ForCausalLM

        config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                             tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
        model = Qwen2ForCausalLM(config)
    else:
        from engine.toy.model import build_toy_model

        model = build_toy_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, max_position_embeddings=max_positions)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    text = "Input: abc def\n<|im_end|>\n"
    assert AutoTokenizer.from_pretrained(folder)(text).input_ids == tokenizer(text).input_ids, "the tokenizer round-trips"
    return folder


def run_on_tiny_model(project: Path, folder: Path, model_dir: Path, max_new_tokens: int = 6, **distill) -> Path:
    """Copy a hub-model sample project, point it at a local tiny model with 6 inputs, 2 held
    out, 2 steps and short outputs, run it, and return its run folder. `distill` sets more
    [distill] keys."""
    import shutil

    import tomlkit

    from engine.cli import main

    copy = folder / project.name
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("runs", "__pycache__"))
    document = tomlkit.parse((copy / "project.toml").read_text())
    document["model"]["name"] = str(model_dir)  # the one change of substance: the model
    document["model"]["device"] = "cpu"
    document["inputs"]["count"] = 6
    document["eval"]["count"] = 2
    document["generate"]["max_new_tokens"] = max_new_tokens
    if "max_new_tokens" in document["eval"]:
        document["eval"]["max_new_tokens"] = max_new_tokens
    document["distill"].update({"max_steps": 2, "num_samples": 10, **distill})
    (copy / "project.toml").write_text(tomlkit.dumps(document))
    assert main(["run", str(copy), "--quiet"]) == 0
    (run_dir,) = (copy / "runs").iterdir()
    return run_dir
