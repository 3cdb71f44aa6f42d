"""Batched generation that returns each output's own token ids, cut where it ended.

`generate` pads finished rows and may run past a stop string inside a batch, so
every output is cut at its end-of-sequence token or just after its first stop
string; the logits returned line up with the kept ids, position by position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.errors import EngineError
from engine.models import context_window


@dataclass
class Generated:
    prompt_ids: list[int]
    output_ids: list[int]  # the model's tokens, up to and including EOS or the stop string
    text: str  # decoded output (special tokens skipped)
    logits: torch.Tensor | None = None  # (len(output_ids), vocab), raw (temperature 1) teacher logits


def encode_prompts(tokenizer, prompts: list[str]) -> list[list[int]]:
    return [tokenizer(prompt).input_ids for prompt in prompts]


def check_fits(model, prompt_ids: list[list[int]], max_new_tokens: int, which: str) -> None:
    """A prompt longer than the context window is an error naming the input, not a crash."""
    window = context_window(model)
    if window is None:
        return
    for index, ids in enumerate(prompt_ids):
        if len(ids) + max_new_tokens > window:
            raise EngineError(
                f"the {which} prompt of input #{index} is {len(ids)} tokens; with generate.max_new_tokens = "
                f"{max_new_tokens} it exceeds the model's context window of {window} tokens. "
                f"Shorten the {which} template or lower generate.max_new_tokens.")


@torch.no_grad()
def generate_batch(model, tokenizer, prompt_ids: list[list[int]], *, max_new_tokens: int,
                   temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                   stops: list[str] = (), keep_logits: bool = False) -> list[Generated]:
    """Generate for one batch of tokenized prompts (left-padded, KV cache on)."""
    width = max(len(ids) for ids in prompt_ids)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompt_ids], device=model.device)
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompt_ids], device=model.device)
    sampling = temperature > 0
    options = dict(do_sample=sampling, max_new_tokens=max_new_tokens, pad_token_id=pad,
                   return_dict_in_generate=True, output_logits=keep_logits, use_cache=True)
    if sampling:
        options.update(temperature=temperature, top_p=top_p, top_k=top_k or None)
    else:
        options.update(temperature=None, top_p=None, top_k=None)
    if stops:
        options.update(stop_strings=list(stops), tokenizer=tokenizer)
    result = model.generate(input_ids=input_ids, attention_mask=attention_mask, **options)
    new_tokens = result.sequences[:, width:].tolist()
    logits = torch.stack(result.logits, dim=1).float().cpu() if keep_logits else None
    eos_ids = _eos_ids(model, tokenizer)
    outputs = []
    for row, ids in enumerate(new_tokens):
        kept = cut_output(tokenizer, ids, eos_ids, stops)
        outputs.append(Generated(prompt_ids[row], kept, tokenizer.decode(kept, skip_special_tokens=True),
                                 logits[row, : len(kept)] if logits is not None else None))
    return outputs


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id if model.generation_config else None
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def cut_output(tokenizer, ids: list[int], eos_ids: set[int], stops: list[str]) -> list[int]:
    """Keep tokens up to and including the first EOS, or the token completing the first stop string."""
    for i, token in enumerate(ids):
        if token in eos_ids:
            ids = ids[: i + 1]
            break
    # Most outputs end with EOS and hold no stop string: one decode tells, before the prefix scan.
    full_text = tokenizer.decode(ids, skip_special_tokens=True) if stops else ""
    if any(stop and stop in full_text for stop in stops):
        for i in range(len(ids)):
            text = tokenizer.decode(ids[: i + 1], skip_special_tokens=True)
            if any(stop and stop in text for stop in stops):
                return ids[: i + 1]
    return ids


def generate_all(model, tokenizer, prompts: list[str], *, batch_size: int, on_batch=None, on_output=None,
                 **options) -> list:
    """Generate for every prompt, in batches sorted by length (less padding).

    `on_output(index, generated)` replaces each output as soon as its batch is done
    (the teacher turns logits into sparse labels there, so dense logits never pile up).
    """
    prompt_ids = encode_prompts(tokenizer, prompts)
    check_fits(model, prompt_ids, options["max_new_tokens"], options.pop("which", "teacher"))
    order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]))
    results: list[Generated | None] = [None] * len(prompts)
    for first in range(0, len(order), batch_size):
        chunk = order[first: first + batch_size]
        for index, generated in zip(chunk, generate_batch(model, tokenizer, [prompt_ids[i] for i in chunk], **options)):
            results[index] = on_output(index, generated) if on_output is not None else generated
        if on_batch is not None:
            on_batch(min(first + batch_size, len(order)), len(order))
    return results
