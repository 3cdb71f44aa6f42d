"""The student's forward pass for the distillation loss, at answer positions only (issue 9, item 4).

The loss reads the student's logits only where an answer token is predicted, but a
plain forward applies the LM head at every position: (batch, seq, vocab) floats, half
a gigabyte at 8 x 128 x 128k. Here the head runs on the gathered answer rows only.

The model is still called as a whole (so wrappers such as DDP, PEFT or autocast, and
whatever a model does after its head, such as logit soft-capping, still apply): a
forward pre-hook on the LM head swaps its (batch, seq, hidden) input for the
(1, P, hidden) answer rows.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.utils.checkpoint import checkpoint

from engine.training.losses import SparseTargets, over_positions, soft_cross_entropy


def output_head(model) -> torch.nn.Module:
    """The LM head of a model, through DDP-style wrappers (`.module`); PEFT forwards the lookup itself."""
    while hasattr(model, "module") and not hasattr(model, "get_output_embeddings"):
        model = model.module
    return model.get_output_embeddings()


@contextmanager
def head_on_rows(model, positions: torch.Tensor, keep_hidden: list | None = None):
    """While active, the LM head sees only the hidden states at `positions` (P, 2) (row, column).

    With `keep_hidden`, the gathered (P, hidden) rows are appended there and the head gets
    none of them (the caller applies the head itself, chunk by chunk).
    """
    def gather(module, args):
        hidden = args[0]
        rows, columns = positions.to(hidden.device).unbind(-1)
        picked = hidden[rows, columns]  # (P, hidden)
        if keep_hidden is not None:
            keep_hidden.append(picked)
            return (picked[None, :0], *args[1:])
        return (picked[None], *args[1:])

    handle = output_head(model).register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


AUTO_VOCAB_CHUNK = 32768


def vocab_chunk_for(model, answer_rows: int, setting: int) -> int | None:
    """The vocabulary chunk of a step: `setting` when > 0, none when 0; -1 (auto) chunks only where it
    saves memory.

    Chunking saves the (answer rows x vocab) logits and their gradient, but each chunk's gradient
    of the LM head weight is a (vocab x hidden) buffer of its own: with a trained head that costs
    more than it saves until the answer rows are far above the hidden size (measured in bench/:
    1.35x the time and more memory at hidden 512, vocab 128k). A frozen head (LoRA) has no such
    buffer, so there it always pays at a large vocabulary.
    """
    if setting >= 0:
        return setting or None
    head = output_head(model)
    vocab, hidden = head.weight.shape
    if vocab <= AUTO_VOCAB_CHUNK or getattr(getattr(model, "config", None), "final_logit_softcapping", None):
        return None
    if not head.weight.requires_grad or answer_rows > 4 * hidden:
        return AUTO_VOCAB_CHUNK
    return None


def answer_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(P, vocab) student logits at `positions` (P, 2); input_ids, attention_mask: (batch, seq).

    Equal to `model(input_ids, attention_mask).logits[rows, columns]` without the other rows.
    """
    with head_on_rows(model, positions):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[0]


def answer_cross_entropy(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: SparseTargets,
                         weights: torch.Tensor | None = None,
                         vocab_chunk: int | None = None,
                         counts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy, KL) as `losses.soft_cross_entropy(logits, targets, weights, counts)` gives from the full logits.

    With `vocab_chunk`, the head runs over that many vocabulary rows at a time and each slice is
    recomputed in the backward pass: peak memory P x vocab_chunk instead of P x vocab. Not for
    models that change logits after their head (soft-capping): there it is an error.
    """
    if vocab_chunk is None:
        logits = answer_logits(model, input_ids, attention_mask, targets.positions)
        count = len(logits)
        rows_only = SparseTargets(torch.stack([torch.zeros(count, dtype=torch.long, device=logits.device),
                                               torch.arange(count, device=logits.device)], -1),
                                  targets.label_ids, targets.label_probs, targets.operations)
        return soft_cross_entropy(logits[None], rows_only, weights, counts)
    config = getattr(model, "config", None)
    if getattr(config, "final_logit_softcapping", None):
        raise ValueError("vocab_chunk cannot be used with a model that soft-caps its logits")
    kept: list[torch.Tensor] = []
    with head_on_rows(model, targets.positions, keep_hidden=kept):
        model(input_ids=input_ids, attention_mask=attention_mask)
    head = output_head(model)
    log_normalizer, label_logits = chunked_logsumexp_and_pick(kept[0], head.weight, head.bias, targets.label_ids, vocab_chunk)
    probs = targets.label_probs
    cross_entropy = (probs * (log_normalizer[:, None] - label_logits)).sum(-1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
    return over_positions(cross_entropy, targets.operations, weights, counts), \
        over_positions(cross_entropy - entropy, targets.operations, weights, counts)


def chunked_logsumexp_and_pick(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                               label_ids: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden (P, H), weight (V, H), label_ids (P, K) -> (logsumexp of the logits (P,), logits at label_ids (P, K)),
    both float32, never holding more than (P, chunk) logits (each slice is recomputed for backward)."""
    normalizers, picked = [], torch.zeros(label_ids.shape, dtype=torch.float32, device=hidden.device)
    for start in range(0, weight.shape[0], chunk):
        end = min(start + chunk, weight.shape[0])
        slice_bias = bias[start:end] if bias is not None else None
        normalizer, slice_picked = checkpoint(_slice_logsumexp_and_pick, hidden, weight[start:end], slice_bias,
                                              label_ids, start, use_reentrant=False)
        normalizers.append(normalizer)
        picked = picked + slice_picked
    return torch.logsumexp(torch.stack(normalizers, -1), -1), picked


def _slice_logsumexp_and_pick(hidden, weight_slice, bias_slice, label_ids, start: int):
    logits = torch.nn.functional.linear(hidden, weight_slice, bias_slice).float()  # (P, chunk)
    in_slice = (label_ids >= start) & (label_ids < start + len(weight_slice))
    local = (label_ids - start).clamp(0, len(weight_slice) - 1)
    return torch.logsumexp(logits, -1), logits.gather(-1, local) * in_slice
