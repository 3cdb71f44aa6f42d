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
    """

    positions: torch.Tensor
    label_ids: torch.Tensor
    label_probs: torch.Tensor

    def to(self, device) -> "SparseTargets":
        return SparseTargets(self.positions.to(device), self.label_ids.to(device), self.label_probs.to(device))


def pad_labels(per_position: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """[(ids, probs) per position] -> padded (P, K) ids and probs."""
    width = max((len(ids) for ids, _ in per_position), default=1)
    label_ids = torch.zeros(len(per_position), width, dtype=torch.long)
    label_probs = torch.zeros(len(per_position), width)
    for row, (ids, probs) in enumerate(per_position):
        label_ids[row, : len(ids)] = ids
        label_probs[row, : len(probs)] = probs
    return label_ids, label_probs


def soft_cross_entropy(logits: torch.Tensor, targets: SparseTargets) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, mean KL) over answer positions.

    logits: (batch, seq, vocab) student logits.
    CE = -sum_i p_i log q_i; KL = CE - H(p). Their gradients are equal (H(p) is a
    constant), so we optimize CE and report KL, which is 0 when the student matches.
    """
    rows, columns = targets.positions.unbind(-1)
    student_logprobs = torch.log_softmax(logits[rows, columns].float(), dim=-1)  # (P, vocab)
    picked = student_logprobs.gather(-1, targets.label_ids)  # (P, K)
    cross_entropy = -(targets.label_probs * picked).sum(-1)
    safe_probs = targets.label_probs.clamp_min(1e-12)
    entropy = -(targets.label_probs * safe_probs.log()).sum(-1)
    return cross_entropy.mean(), (cross_entropy - entropy).mean()


def dense_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Per-position KL(teacher || student) from full logits: (P, vocab), (P, vocab) -> (P,)."""
    teacher_logprobs = torch.log_softmax(teacher_logits.float(), dim=-1)
    student_logprobs = torch.log_softmax(student_logits.float(), dim=-1)
    return (teacher_logprobs.exp() * (teacher_logprobs - student_logprobs)).sum(-1)
