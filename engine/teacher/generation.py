"""Batched generation that returns each output's own token ids, cut where it ended.

`generate` pads finished rows and may run past a stop string inside a batch, so
every output is cut at its end-of-sequence token or just after its first stop
string; whatever is kept per position (logits, or what a step recorder made of
them) lines up with the kept ids, position by position.

Two costs are kept off the long teacher prompts (issue 9):
- labels are taken step by step (a `StepRecorder`), so no batch holds (tokens x vocab) logits;
- the prompts' longest common token prefix is encoded once (no LM head over it) and its
  KV cache reused for every batch (`reuse_prefix`), instead of re-encoding it per batch.

Batches are sized in tokens as well as rows (`max_batch_tokens`): inputs sorted by length
fill a batch until its rows, padded to the longest, would pass the budget, so a batch that
fits at 200 tokens a row does not run out of memory at 4,000.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch

from engine.errors import EngineError
from engine.teacher.extractors import token_char_bounds
from engine.teacher.shared_prefix import attending_to_shared_prefix, can_share, shared_cache
from engine.models import context_window


class StepRecorder(Protocol):
    """Keeps what it needs of each generation step of one batch (the teacher's labels)."""

    def __call__(self, logits: torch.Tensor) -> None:
        """One step's raw (temperature 1) next-token logits, (batch, vocab) float32, every row
        of the batch, finished rows included, on the model's device."""

    def rows(self, kept: list[int]) -> list:
        """One value per row for its first `kept[row]` steps (the positions of its kept output)."""


@dataclass
class Generated:
    prompt_ids: list[int]
    output_ids: list[int]  # the model's tokens, up to and including EOS or the stop string
    text: str  # decoded output (special tokens skipped)
    logits: torch.Tensor | None = None  # (len(output_ids), vocab), raw (temperature 1) teacher logits
    recorded: Any = None  # the step recorder's value for this row, over output_ids' positions


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
    # Only the cache is wanted: the LM head over every prefix position would cost as much as
    # the rest of the pass at a 128k vocabulary (and a (length x vocab) temporary).
    head = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    output = model(input_ids=torch.tensor([ids], device=model.device), use_cache=True, **head)
    return SharedPrefix(ids, output[cache_keyword(model)], model.config)


def cache_keyword(model) -> str:
    """transformers 5 renamed `past_key_values` to `cache` (in outputs and in `generate`) during 5.x."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def prefix_cache_for_batch(prefix: SharedPrefix, batch_size: int, max_length: int, model=None):
    """A fresh cache for one batch holding the prefix (generation appends to the cache it is given).

    Given the `model`, where its attention allows: the prefix stays one copy for every row
    (engine/teacher/shared_prefix.py) and each row holds only its own tokens; otherwise
    each row holds a copy of the prefix.

    Preallocated to `max_length` positions where the prefix cache is a plain dynamic one: a
    dynamic cache grows by copying itself at every step, which after a long prefix is most of
    a decoding step's time (issue 9: a static cache took 0.59x the time, same tokens).
    """
    if not all(type(layer).__name__ == "DynamicLayer" for layer in getattr(prefix.cache, "layers", [None])):
        return copied_cache(prefix, batch_size)
    if model is not None and can_share(model):
        return shared_cache(prefix.cache, max_length - len(prefix.ids))
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


# Settings of a model's own generation_config.json that change the distribution tokens are drawn from.
SAMPLING_FIELDS = ("do_sample", "temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
                   "repetition_penalty", "encoder_repetition_penalty", "no_repeat_ngram_size", "bad_words_ids",
                   "suppress_tokens", "begin_suppress_tokens", "sequence_bias", "min_length", "min_new_tokens",
                   "forced_bos_token_id", "forced_eos_token_id", "renormalize_logits")
TOKEN_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


def models_own_sampling(model) -> dict:
    """What the model's generation_config.json would change in sampling (e.g. Qwen's repetition_penalty 1.05)."""
    own = getattr(model, "generation_config", None)
    return {key: value for key, value in (own.to_diff_dict() if own is not None else {}).items() if key in SAMPLING_FIELDS}


@contextmanager
def only_the_projects_settings(model):
    """Generate with the project's settings alone: the model's own processors (repetition penalty,
    top-k, ...) are off, because the labels come from the raw softmax and a token sampled from
    another distribution than the one labelled would make the two disagree (issue 26). `generate`
    fills every setting it is not given from the model's config, so the config itself is swapped
    for one that keeps only the special token ids."""
    from transformers import GenerationConfig

    own = model.generation_config
    ids = {key: getattr(own, key, None) for key in TOKEN_FIELDS}
    model.generation_config = GenerationConfig(**{key: value for key, value in ids.items() if value is not None})
    try:
        yield
    finally:
        model.generation_config = own


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
                   stops: list[str] = (), keep_logits: bool = False, on_step: StepRecorder | None = None,
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
        options.update(temperature=temperature, top_p=top_p, top_k=top_k)  # 0 is off; None would become 50
    else:
        options.update(temperature=None, top_p=None, top_k=None)
    if stops:
        options.update(stop_strings=list(stops), tokenizer=tokenizer)
    attending = contextlib.nullcontext()
    if prefix is not None:
        cache = prefix_cache_for_batch(prefix, len(prompt_ids), input_ids.shape[1] + max_new_tokens, model)
        options[cache_keyword(model)] = cache
        options["disable_compile"] = True  # a fixed-size cache would make generate compile the model on a GPU
        if getattr(cache, "shares_prefix", False):
            attending = attending_to_shared_prefix(model, cache)

    row_logits: list[list[torch.Tensor]] = [[] for _ in prompt_ids]

    def collect(logits: torch.Tensor) -> None:
        if keep_logits:
            for row, values in enumerate(logits.cpu()):
                row_logits[row].append(values)
        if on_step is not None:
            on_step(logits)

    with calling_each_step(model, collect if keep_logits or on_step is not None else None):
        with only_the_projects_settings(model), attending:
            result = model.generate(input_ids=input_ids, attention_mask=attention_mask, **options)
    new_tokens = result.sequences[:, input_ids.shape[1]:].tolist()
    eos_ids = _eos_ids(model, tokenizer)
    kept = [cut_output(tokenizer, ids, eos_ids, stops) for ids in new_tokens]
    recorded = on_step.rows([len(ids) for ids in kept]) if on_step is not None else [None] * len(kept)
    return [Generated(prompt_ids[row], ids, tokenizer.decode(ids, skip_special_tokens=True),
                      torch.stack(row_logits[row][: len(ids)]) if keep_logits else None, recorded[row])
            for row, ids in enumerate(kept)]


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


def token_batches(prompt_ids: list[list[int]], max_new_tokens: int, batch_size: int, max_batch_tokens: int = 0,
                  which: str = "teacher") -> list[list[int]]:
    """Input indices in batches: sorted by prompt length (rows of a batch pad little), at most
    `batch_size` rows, and at most `max_batch_tokens` tokens once every row is padded to the
    longest and given `max_new_tokens` (0 = no token budget). Inputs keep their own index."""
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    batches: list[list[int]] = []
    for index in order:
        row_tokens = len(prompt_ids[index]) + max_new_tokens  # the longest row so far: the order is ascending
        if max_batch_tokens and row_tokens > max_batch_tokens:
            raise EngineError(
                f"the {which} prompt of input #{index} is {len(prompt_ids[index])} tokens; with generate.max_new_tokens "
                f"= {max_new_tokens} one row is {row_tokens} tokens, over generate.max_batch_tokens = {max_batch_tokens}. "
                "Raise generate.max_batch_tokens or shorten the prompt.")
        batch = batches[-1] if batches else None
        if batch is None or len(batch) == batch_size or (max_batch_tokens and (len(batch) + 1) * row_tokens > max_batch_tokens):
            batches.append([index])
        else:
            batch.append(index)
    return batches


def deal_batches(costs: list[int], processes: int) -> list[int]:
    """The process each batch goes to: the costliest first, each to the least loaded process so far
    (ties to the lower batch number and rank), so the processes' token totals are close (issue 19).
    `costs[n]`: batch n's tokens, rows x (its longest prompt + max_new_tokens)."""
    owners, loads = [0] * len(costs), [0] * processes
    for number in sorted(range(len(costs)), key=lambda n: (-costs[n], n)):
        rank = min(range(processes), key=lambda r: (loads[r], r))
        owners[number] = rank
        loads[rank] += costs[number]
    return owners


def generate_all(model, tokenizer, prompts: list[str], *, batch_size: int, max_batch_tokens: int = 0, on_batch=None,
                 on_output=None, recorder_for=None, reuse_prefix: bool = True, seed: int | None = None,
                 finished_batch=None, on_batch_done=None, shard: tuple[int, int] = (0, 1), **options) -> list:
    """Generate for every prompt, in batches sorted by length (`token_batches`); results in input order.

    `on_output(index, generated)` replaces each output as soon as its batch is done.
    `recorder_for(indices)` makes a `StepRecorder` for the batch of those inputs (their indices
    in `prompts`, so each input can draw from its own generator); its value for each row is kept
    in `Generated.recorded`. The teacher makes its sparse labels there, so dense logits never
    pile up. `reuse_prefix` encodes the prompts' common token prefix once for all batches.

    Resumable teacher passes: with `seed`, sampling is reseeded before every batch, so a batch
    samples the same tokens whether or not the batches before it ran in this process;
    `finished_batch(number, indices)` may return a batch's results kept from an earlier,
    interrupted pass (that batch is then not generated again), and `on_batch_done(number,
    indices, results)` sees each batch's results as soon as they exist (to keep them).

    `shard = (rank, processes)`: this process takes its batches of the one global order, dealt
    by tokens (`deal_batches`), and the other results stay None. A batch is the unit because its
    number seeds it and its rows pad each other: any split of the batches samples what one
    process would, byte for byte, while splitting a batch would not.
    """
    which = options.pop("which", "teacher")
    prompt_ids = encode_prompts(tokenizer, prompts)
    check_fits(model, prompt_ids, options["max_new_tokens"], which)
    batches = token_batches(prompt_ids, options["max_new_tokens"], batch_size, max_batch_tokens, which)
    prefix = encode_shared_prefix(model, prompt_ids) if reuse_prefix and prompt_ids else None
    results: list[Generated | None] = [None] * len(prompts)
    owners = deal_batches([len(chunk) * (max(len(prompt_ids[i]) for i in chunk) + options["max_new_tokens"])
                           for chunk in batches], shard[1])
    done = 0
    for number, chunk in enumerate(batches):
        done += len(chunk)
        if owners[number] != shard[0]:
            continue
        kept = finished_batch(number, chunk) if finished_batch is not None else None
        if kept is not None:
            for index, result in zip(chunk, kept):
                results[index] = result
        else:
            if seed is not None:
                torch.manual_seed(seed * 1_000_003 + number)
            batch = generate_batch(model, tokenizer, [prompt_ids[i] for i in chunk], prefix=prefix,
                                   on_step=recorder_for(chunk) if recorder_for is not None else None, **options)
            for index, generated in zip(chunk, batch):
                results[index] = on_output(index, generated) if on_output is not None else generated
            if on_batch_done is not None:
                on_batch_done(number, chunk, [results[index] for index in chunk])
        if on_batch is not None:
            on_batch(done, len(prompts))
    return results
