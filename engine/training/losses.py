"""Sparse soft-label cross-entropy and KL at answer positions (paper section 2.4).

Targets stay sparse: a padded (positions, K) matrix of label ids and probabilities,
K = the most label ids at any position in the batch. No dense (batch, seq, vocab)
target is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SparseTargets:
    """Soft labels for the answer positions of one batch.

    positions: (P, 2) long, (row, column) of the logits that predict each answer token
    label_ids: (P, K) long, padded with 0
    label_probs: (P, K) float, padded with 0; each row sums to 1
    operations: (P,) long, which operation each position belongs to (simultaneous distillation)
    """

    positions: torch.Tensor
    label_ids: torch.Tensor
    label_probs: torch.Tensor
    operations: torch.Tensor | None = None

    def to(self, device) -> "SparseTargets":
        operations = self.operations.to(device) if self.operations is not None else None
        return SparseTargets(self.positions.to(device), self.label_ids.to(device), self.label_probs.to(device), operations)


def pad_labels(per_position: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """[(ids, probs) per position] -> padded (P, K) ids and probs."""
    width = max((len(ids) for ids, _ in per_position), default=1)
    label_ids = torch.zeros(len(per_position), width, dtype=torch.long)
    label_probs = torch.zeros(len(per_position), width)
    for row, (ids, probs) in enumerate(per_position):
        label_ids[row, : len(ids)] = ids
        label_probs[row, : len(probs)] = probs
    return label_ids, label_probs


def soft_cross_entropy(logits: torch.Tensor, targets: SparseTargets, weights: torch.Tensor | None = None,
                       counts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy, KL) over answer positions: their mean, or with `weights` the weighted sum of each operation's mean.

    logits: (batch, seq, vocab) student logits. `counts`: see `over_positions`.
    CE = -sum_i p_i log q_i; KL = CE - H(p). Their gradients are equal (H(p) is a
    constant), so we optimize CE and report KL, which is 0 when the student matches.
    """
    rows, columns = targets.positions.unbind(-1)
    student_logprobs = torch.log_softmax(logits[rows, columns].float(), dim=-1)  # (P, vocab)
    picked = student_logprobs.gather(-1, targets.label_ids)  # (P, K)
    cross_entropy = -(targets.label_probs * picked).sum(-1)
    safe_probs = targets.label_probs.clamp_min(1e-12)
    entropy = -(targets.label_probs * safe_probs.log()).sum(-1)
    return over_positions(cross_entropy, targets.operations, weights, counts), \
        over_positions(cross_entropy - entropy, targets.operations, weights, counts)


def over_positions(values: torch.Tensor, operations: torch.Tensor | None, weights: torch.Tensor | None,
                   counts: torch.Tensor | None = None) -> torch.Tensor:
    """values: (P,) per answer position -> the loss: their mean, or with `weights` `weighted_by_operation`.

    `counts`: (operations,) answer positions of the whole micro-batch, on every process. Each mean
    is then this process's sum over those counts, so the processes' losses add up to the loss one
    process gets on the whole micro-batch (issue 19: a mean per process, then averaged, is not it
    when the processes hold different numbers of answer tokens).
    """
    if weights is None or operations is None:
        return values.mean() if counts is None else values.sum() / counts.sum().to(values.device, values.dtype)
    return weighted_by_operation(values, operations, weights, counts)


def weighted_by_operation(values: torch.Tensor, operations: torch.Tensor, weights: torch.Tensor,
                          counts: torch.Tensor | None = None) -> torch.Tensor:
    """sum_o w_o * mean(values of operation o) / sum of w_o over the operations present (paper eq. 2).

    Weights are normalized to sum to one, so one operation's loss is its plain mean;
    an operation with no positions in this batch drops out instead of counting as zero.
    `counts`: the micro-batch's positions per operation on every process (`over_positions`).
    """
    weights = weights.to(values.device, values.dtype)
    if counts is None:
        count = torch.zeros_like(weights).index_add_(0, operations, torch.ones_like(values))
    else:
        count = counts.to(values.device, values.dtype)
    total = torch.zeros_like(weights).index_add_(0, operations, values)
    # Masks, not boolean indexing: that would be a nonzero(), a device sync in every step.
    present = (count > 0).to(values.dtype)
    means = total / count.clamp_min(1)
    return (weights * present * means).sum() / (weights * present).sum()


def dense_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Per-position KL(teacher || student) from full logits: (P, vocab), (P, vocab) -> (P,)."""
    teacher_logprobs = torch.log_softmax(teacher_logits.float(), dim=-1)
    student_logprobs = torch.log_softmax(student_logits.float(), dim=-1)
    return (teacher_logprobs.exp() * (teacher_logprobs - student_logprobs)).sum(-1)
