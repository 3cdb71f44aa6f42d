"""Batched generation that returns each output's own token ids, cut where it ended.

`generate` pads finished rows and may run past a stop string inside a batch, so
every output is cut at its end-of-sequence token or just after its first stop
string; whatever is kept per position (logits, or what `on_step` made of them)
lines up with the kept ids, position by position.

Two costs are kept off the long teacher prompts (issue 9):
- labels are taken step by step (`on_step`), so no batch holds (tokens x vocab) logits;
- the prompts' longest common token prefix is encoded once and its KV cache reused
  for every batch (`reuse_prefix`), instead of re-encoding it per batch.
"""

from __future__ import annotations

import copy
import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

import torch

from engine.errors import EngineError
from engine.teacher.extractors import token_char_bounds
from engine.models import context_window

# on_step(logits) -> one value per row: logits are one step's raw (temperature 1) next-token
# logits, (batch, vocab) float32, for every row of the batch, finished rows included.
StepFunction = Callable[[torch.Tensor], list]


@dataclass
class Generated:
    prompt_ids: list[int]
    output_ids: list[int]  # the model's tokens, up to and including EOS or the stop string
    text: str  # decoded output (special tokens skipped)
    logits: torch.Tensor | None = None  # (len(output_ids), vocab), raw (temperature 1) teacher logits
    steps: list | None = None  # on_step's value for this row at each of output_ids' positions


@dataclass
class SharedPrefix:
    """The tokens every prompt starts with, and the model's KV cache for them (batch 1, never changed)."""

    ids: list[int]
    cache: Any
    cache_config: Any = None  # the model's config, to build a preallocated cache of the same shape


def encode_prompts(tokenizer, prompts: list[str]) -> list[list[int]]:
    return [tokenizer(prompt).input_ids for prompt in prompts]


def check_fits(model, prompt_ids: list[list[int]], max_new_tokens: int, which: str) -> None:
    """A prompt longer than the context window is an error naming the input, not a crash."""
    found = context_window(model)
    if found is None:
        return
    window, named = found
    for index, ids in enumerate(prompt_ids):
        if len(ids) + max_new_tokens > window:
            raise EngineError(
                f"the {which} prompt of input #{index} is {len(ids)} tokens; with generate.max_new_tokens = "
                f"{max_new_tokens} it exceeds {named}. "
                f"Shorten the {which} template or lower generate.max_new_tokens.")


# --- the shared prefix -----------------------------------------------------------

def common_prefix_length(prompt_ids: list[list[int]]) -> int:
    """Tokens all prompts share at the start, leaving each prompt at least one token of its own
    (generation must run the model on something to predict the first new token)."""
    shortest = min(len(ids) for ids in prompt_ids)
    length = 0
    while length < shortest - 1 and all(ids[length] == prompt_ids[0][length] for ids in prompt_ids):
        length += 1
    return length


def can_reuse_prefix(model) -> bool:
    """Reuse needs positions taken from the attention mask (padding sits between prefix and rest)
    and a cache that keeps every position (a sliding window would count the padding)."""
    return "position_ids" in inspect.signature(model.forward).parameters and not model.config.is_encoder_decoder \
        and not getattr(model.config, "sliding_window", None)


@torch.no_grad()
def encode_shared_prefix(model, prompt_ids: list[list[int]]) -> SharedPrefix | None:
    """Run the model once over the prompts' common prefix; None when there is none to share."""
    length = common_prefix_length(prompt_ids)
    if length == 0 or not can_reuse_prefix(model):
        return None
    ids = prompt_ids[0][:length]
    output = model(input_ids=torch.tensor([ids], device=model.device), use_cache=True)
    return SharedPrefix(ids, output[cache_keyword(model)], model.config)


def cache_keyword(model) -> str:
    """transformers 5 renamed `past_key_values` to `cache` (in outputs and in `generate`) during 5.x."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def prefix_cache_for_batch(prefix: SharedPrefix, batch_size: int, max_length: int):
    """A fresh cache for one batch holding the prefix (generation appends to the cache it is given).

    Preallocated to `max_length` positions where the prefix cache is a plain dynamic one: a
    dynamic cache grows by copying itself at every step, which after a long prefix is most of
    a decoding step's time (issue 9: a static cache took 0.59x the time, same tokens).
    """
    if not all(type(layer).__name__ == "DynamicLayer" for layer in getattr(prefix.cache, "layers", [None])):
        return copied_cache(prefix, batch_size)
    return preallocated_cache(prefix, batch_size, max_length)


def copied_cache(prefix: SharedPrefix, batch_size: int):
    """The prefix cache itself, copied and repeated over the batch (any cache type)."""
    cache = copy.deepcopy(prefix.cache)
    cache.batch_repeat_interleave(batch_size)
    return cache


def preallocated_cache(prefix: SharedPrefix, batch_size: int, max_length: int):
    """A transformers StaticCache of `max_length` positions with the prefix's keys and values in front."""
    from transformers import StaticCache

    cache = StaticCache(config=prefix.cache_config, max_cache_len=max_length)
    for layer, prefix_layer in zip(cache.layers, prefix.cache.layers):
        keys = prefix_layer.keys.expand(batch_size, -1, -1, -1)
        values = prefix_layer.values.expand(batch_size, -1, -1, -1)
        layer.lazy_initialization(keys, values)
        layer.keys[:, :, : keys.shape[2]] = keys
        layer.values[:, :, : values.shape[2]] = values
        layer.cumulative_length.fill_(keys.shape[2])
    return cache


# --- one batch -----------------------------------------------------------------

def batch_inputs(prompt_ids: list[list[int]], pad: int, prefix_length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask): left padding, placed after the shared prefix so the prefix sits
    at the same cache positions in every row; positions come from the mask, so padding costs nothing."""
    width = max(len(ids) for ids in prompt_ids)
    rows, masks = [], []
    for ids in prompt_ids:
        gap = width - len(ids)
        rows.append(ids[:prefix_length] + [pad] * gap + ids[prefix_length:])
        masks.append([1] * prefix_length + [0] * gap + [1] * (len(ids) - prefix_length))
    return torch.tensor(rows, device=device), torch.tensor(masks, device=device)


@contextmanager
def calling_each_step(model, on_step: Callable[[torch.Tensor], None] | None):
    """Hand each forward pass's last-position logits, as float32, to `on_step` while generating.

    A forward hook, not a LogitsProcessor: processors run after those a model's generation
    config adds (repetition penalty, ...), and labels must come from the raw logits.
    """
    if on_step is None:
        yield
        return
    handle = model.register_forward_hook(lambda module, args, output: on_step(output.logits[:, -1].float()))
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def generate_batch(model, tokenizer, prompt_ids: list[list[int]], *, max_new_tokens: int,
                   temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                   stops: list[str] = (), keep_logits: bool = False, on_step: StepFunction | None = None,
                   prefix: SharedPrefix | None = None) -> list[Generated]:
    """Generate for one batch of tokenized prompts (left-padded, KV cache on).

    `prefix`, when given, is a shared prefix of every prompt, already encoded: only the rest runs.
    """
    pad = tokenizer.pad_token_id
    prefix_length = len(prefix.ids) if prefix is not None else 0
    input_ids, attention_mask = batch_inputs(prompt_ids, pad, prefix_length, model.device)
    sampling = temperature > 0
    options = dict(do_sample=sampling, max_new_tokens=max_new_tokens, pad_token_id=pad,
                   return_dict_in_generate=True, use_cache=True)
    if sampling:
        options.update(temperature=temperature, top_p=top_p, top_k=top_k or None)
    else:
        options.update(temperature=None, top_p=None, top_k=None)
    if stops:
        options.update(stop_strings=list(stops), tokenizer=tokenizer)
    if prefix is not None:
        options[cache_keyword(model)] = prefix_cache_for_batch(prefix, len(prompt_ids), input_ids.shape[1] + max_new_tokens)
        options["disable_compile"] = True  # a fixed-size cache would make generate compile the model on a GPU

    per_row: list[list] = [[] for _ in prompt_ids]
    row_logits: list[list[torch.Tensor]] = [[] for _ in prompt_ids]

    def collect(logits: torch.Tensor) -> None:
        if keep_logits:
            for row, values in enumerate(logits.cpu()):
                row_logits[row].append(values)
        if on_step is not None:
            for row, value in enumerate(on_step(logits)):
                per_row[row].append(value)

    with calling_each_step(model, collect if keep_logits or on_step is not None else None):
        result = model.generate(input_ids=input_ids, attention_mask=attention_mask, **options)
    new_tokens = result.sequences[:, input_ids.shape[1]:].tolist()
    eos_ids = _eos_ids(model, tokenizer)
    outputs = []
    for row, ids in enumerate(new_tokens):
        kept = cut_output(tokenizer, ids, eos_ids, stops)
        outputs.append(Generated(prompt_ids[row], kept, tokenizer.decode(kept, skip_special_tokens=True),
                                 torch.stack(row_logits[row][: len(kept)]) if keep_logits else None,
                                 per_row[row][: len(kept)] if on_step is not None else None))
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
    text = tokenizer.decode(ids, skip_special_tokens=True) if stops else ""
    # The shortest decoded prefix holding a stop string ends where the earliest-ending stop does.
    stop_ends = [text.find(stop) + len(stop) for stop in stops if stop and stop in text]
    if not stop_ends:
        return ids
    whole = token_char_bounds(tokenizer, ids).whole
    first_end = min(stop_ends)
    return ids[: next(i for i in range(len(ids)) if whole[i + 1] >= first_end) + 1]


def generate_all(model, tokenizer, prompts: list[str], *, batch_size: int, on_batch=None, on_output=None,
                 reuse_prefix: bool = True, seed: int | None = None, finished_batch=None, on_batch_done=None,
                 shard: tuple[int, int] = (0, 1), **options) -> list:
    """Generate for every prompt, in batches sorted by length (less padding).

    `on_output(index, generated)` replaces each output as soon as its batch is done.
    `on_step(logits, indices)` turns each step's (batch, vocab) logits into one value per row,
    kept in `Generated.steps`; `indices` are the rows' indices in `prompts` (so each input can
    draw from its own generator). The teacher makes its sparse labels there, so dense logits
    never pile up. `reuse_prefix` encodes the prompts' common token prefix once for all batches.

    Resumable teacher passes: with `seed`, sampling is reseeded before every batch, so a batch
    samples the same tokens whether or not the batches before it ran in this process;
    `finished_batch(number, indices)` may return a batch's results kept from an earlier,
    interrupted pass (that batch is then not generated again), and `on_batch_done(number,
    indices, results)` sees each batch's results as soon as they exist (to keep them).

    `shard = (rank, processes)`: this process takes batches rank, rank + processes, ... of the
    one global order, and the other results stay None. A batch is the unit because its number
    seeds it: any split of the batches samples what one process would.
    """
    on_step = options.pop("on_step", None)
    prompt_ids = encode_prompts(tokenizer, prompts)
    check_fits(model, prompt_ids, options["max_new_tokens"], options.pop("which", "teacher"))
    prefix = encode_shared_prefix(model, prompt_ids) if reuse_prefix and prompt_ids else None
    order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]))
    results: list[Generated | None] = [None] * len(prompts)
    for number, first in enumerate(range(0, len(order), batch_size)):
        if number % shard[1] != shard[0]:
            continue
        chunk = order[first: first + batch_size]
        kept = finished_batch(number, chunk) if finished_batch is not None else None
        if kept is not None:
            for index, result in zip(chunk, kept):
                results[index] = result
        else:
            if seed is not None:
                torch.manual_seed(seed * 1_000_003 + number)
            batch_on_step = (lambda logits, chunk=chunk: on_step(logits, chunk)) if on_step is not None else None
            batch = generate_batch(model, tokenizer, [prompt_ids[i] for i in chunk], prefix=prefix,
                                   on_step=batch_on_step, **options)
            for index, generated in zip(chunk, batch):
                results[index] = on_output(index, generated) if on_output is not None else generated
            if on_batch_done is not None:
                on_batch_done(number, chunk, [results[index] for index in chunk])
        if on_batch is not None:
            on_batch(min(first + batch_size, len(order)), len(order))
    return results
