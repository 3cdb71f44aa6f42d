"""One copy of a shared prompt prefix's keys and values for every row of a batch.

Every teacher prompt of a project starts with the same tokens (instructions,
worked examples, a system prompt). Their KV cache is computed once, and until
now was copied into each row of every batch: for a Llama-3-8B shape, 128 KiB per
prefix token per row, 4.2 GB for a 2,000-token prefix at batch 16, re-read at
every decoding step. The rows need no copy of it: attention over the prefix is
the same keys and values for every query.

So a batch's cache holds the prefix once, (1, heads, prefix, dim), and only the
rows' own tokens per row. The attention function registered here ("shared_prefix")
scores every row's queries against the one prefix copy in a single matmul, the
rows' own keys as usual, and takes one softmax over both (the same numbers as
attention over the concatenation, without building it). Masks are the eager ones,
over prefix + own positions; the prefix part is always visible.

The model's attention implementation is switched to it only while generating
(`attending_to_shared_prefix`), and only for models whose attention goes through
transformers' attention interface with a `layer_idx` (Llama, Qwen2, Mistral, ...).
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

import torch

NAME = "shared_prefix"
_PREFIX: contextvars.ContextVar[list | None] = contextvars.ContextVar("shared_prefix", default=None)


def shared_prefix_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                            **kwargs) -> tuple[torch.Tensor, None]:
    """query (B, Hq, q, D); key/value (B, Hkv, L, D): the rows' own tokens; the prefix (1, Hkv, P, D) from the cache.

    Returns (B, q, Hq, D), as transformers' attention functions do.
    """
    prefix_keys, prefix_values = _PREFIX.get()[module.layer_idx]
    rows, query_heads, length, dim = query.shape
    kv_heads, prefix = key.shape[1], prefix_keys.shape[2]
    groups = query_heads // kv_heads
    scaling = dim ** -0.5 if scaling is None else scaling
    grouped = query.reshape(rows, kv_heads, groups * length, dim)  # query head h reads kv head h // groups
    # Every row's queries against the one prefix copy: (1, Hkv, rows * groups * q, P), then back per row.
    on_prefix = torch.matmul(grouped.transpose(0, 1).reshape(1, kv_heads, -1, dim), prefix_keys.transpose(-1, -2))
    on_prefix = on_prefix.reshape(kv_heads, rows, groups * length, prefix).transpose(0, 1)
    on_own = torch.matmul(grouped, key.transpose(-1, -2))  # (rows, Hkv, groups * q, L)
    scores = torch.cat([on_prefix, on_own], dim=-1).float() * scaling
    if attention_mask is not None:
        mask = attention_mask[..., : prefix + key.shape[2]]  # (rows, 1, q, P + L), additive
        scores = scores + mask[:, :, None].expand(-1, -1, groups, -1, -1).reshape(rows, 1, groups * length, -1)
    weights = torch.softmax(scores, dim=-1).to(value.dtype)
    if dropout and module.training:
        weights = torch.nn.functional.dropout(weights, p=dropout)
    from_prefix = torch.matmul(weights[..., :prefix].transpose(0, 1).reshape(1, kv_heads, -1, prefix), prefix_values)
    from_prefix = from_prefix.reshape(kv_heads, rows, groups * length, dim).transpose(0, 1)
    output = from_prefix + torch.matmul(weights[..., prefix:], value)  # (rows, Hkv, groups * q, D)
    return output.reshape(rows, query_heads, length, dim).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    AttentionInterface.register(NAME, shared_prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, eager_mask)  # additive float masks, always materialized


def shared_cache(prefix_cache, max_own_length: int):
    """A cache for one batch: the prefix's layers as they are (batch 1, shared), and room for
    `max_own_length` of each row's own tokens (prompt rest + new tokens), preallocated."""
    from transformers.cache_utils import Cache, StaticLayer

    class SharedPrefixLayer(StaticLayer):
        """The rows' own keys and values; the prefix's are counted in its length, never stored per row."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor):
            super().__init__(max_cache_len=max_own_length)
            self.prefix_keys, self.prefix_values = keys, values
            self.prefix_length = keys.shape[2]

        def update(self, key_states, value_states, *args, **kwargs):
            super().update(key_states, value_states, *args, **kwargs)
            # The rows' tokens so far (the rest are zeros the mask hides beyond the prefix + own length).
            return self.keys, self.values

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.prefix_length + self.max_cache_len, 0

        def get_seq_length(self) -> int:
            return self.prefix_length + (self.cumulative_length if self.is_initialized else 0)

        def get_max_length(self) -> int:
            return self.prefix_length + self.max_cache_len

    cache = Cache(layers=[SharedPrefixLayer(layer.keys, layer.values) for layer in prefix_cache.layers])
    cache.shares_prefix = True
    return cache


def can_share(model) -> bool:
    """Models whose attention layers go through transformers' attention interface, with a layer index."""
    attention = [module for module in model.modules() if hasattr(module, "layer_idx") and hasattr(module, "config")]
    return bool(attention) and hasattr(model.config, "_attn_implementation")


@contextmanager
def attending_to_shared_prefix(model, cache):
    """While active, `model` attends to `cache`'s one prefix copy through `shared_prefix_attention`."""
    _register()
    token = _PREFIX.set([(layer.prefix_keys, layer.prefix_values) for layer in cache.layers])
    before = model.config._attn_implementation
    model.config._attn_implementation = NAME
    try:
        yield
    finally:
        model.config._attn_implementation = before
        _PREFIX.reset(token)
