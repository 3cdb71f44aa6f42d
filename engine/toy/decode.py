"""Greedy or sampled decoding of toy-model prompts, and exact match of first lines (the pretraining evaluations)."""

from __future__ import annotations

import torch


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int,
             temperature: float = 0.0, batch_size: int = 100) -> list[str]:
    """Decode completions (greedy when temperature == 0), cut at EOS."""
    tokenizer.padding_side = "left"
    outs = []
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(model.device)
        kwargs = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} \
            if temperature > 0 else {"do_sample": False}
        gen = model.generate(**enc, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, **kwargs)
        outs += tokenizer.batch_decode(gen[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
    return outs


def exact(outs: list[str], targets: list[str]) -> float:
    # Generation may stop at EOS right after the final newline or run on; compare the first line.
    return sum(o.split("\n")[0] == t.split("\n")[0] for o, t in zip(outs, targets)) / len(targets)
