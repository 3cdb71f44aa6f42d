"""The sparse soft-label loss against a dense reference, and the sparse labels themselves."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.training.losses import SparseTargets, dense_kl, pad_labels, soft_cross_entropy
from engine.teacher.labels import hard_labels, sampled_labels, topk_labels, uniforms

VOCAB = 11


def dense_targets(targets: SparseTargets, vocab: int) -> torch.Tensor:
    """(P, vocab) dense teacher distribution built from the sparse one (the reference)."""
    dense = torch.zeros(len(targets.label_ids), vocab)
    dense.scatter_add_(1, targets.label_ids, targets.label_probs)
    return dense


def reference_ce_kl(logits: torch.Tensor, targets: SparseTargets) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense CE (explicit sum) and KL (F.kl_div), both averaged over answer positions."""
    rows, columns = targets.positions.unbind(-1)
    student_logprobs = F.log_softmax(logits[rows, columns].double(), dim=-1)
    teacher_probs = dense_targets(targets, logits.shape[-1]).double()
    cross_entropy = -(teacher_probs * student_logprobs).sum(-1).mean()
    kl = F.kl_div(student_logprobs, teacher_probs, reduction="none").sum(-1).mean()
    return cross_entropy, kl


def labels_from_teacher(kind: str, teacher_logits: torch.Tensor, generated: list[int]) -> SparseTargets:
    offsets, ids, probs = labels_of(kind, teacher_logits, generated, num_samples=20, top_k=4)
    per_position = [(ids[offsets[j]: offsets[j + 1]], probs[offsets[j]: offsets[j + 1]]) for j in range(len(generated))]
    label_ids, label_probs = pad_labels(per_position)
    # Answer positions scattered over a (2, 5) batch, one row longer than the other.
    positions = torch.tensor([[0, 1], [0, 2], [0, 3], [1, 0], [1, 4]][: len(generated)])
    return SparseTargets(positions, label_ids, label_probs)


@pytest.mark.parametrize("kind", ["sampled", "topk", "hard"])
def test_sparse_loss_equals_dense_reference(kind):
    torch.manual_seed(1)
    teacher_logits = torch.randn(5, VOCAB) * 2
    generated = teacher_logits.argmax(-1).tolist()
    targets = labels_from_teacher(kind, teacher_logits, generated)
    if kind != "hard":
        assert targets.label_ids.shape[1] > 1  # padded rows: K > 1 and some zero-probability padding
    student_logits = torch.randn(2, 5, VOCAB, requires_grad=True)
    reference_logits = student_logits.detach().clone().requires_grad_(True)

    cross_entropy, kl = soft_cross_entropy(student_logits, targets)
    reference_cross_entropy, reference_kl = reference_ce_kl(reference_logits, targets)
    torch.testing.assert_close(cross_entropy.double(), reference_cross_entropy, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kl.double(), reference_kl, rtol=1e-5, atol=1e-5)
    assert kl.item() > 0.01  # a random student is far from the teacher: the comparison is not 0 == 0

    cross_entropy.backward()
    reference_cross_entropy.backward()
    torch.testing.assert_close(student_logits.grad, reference_logits.grad.float(), rtol=1e-5, atol=1e-6)
    # Only answer positions get gradient.
    touched = student_logits.grad.abs().sum(-1) > 0
    expected = torch.zeros(2, 5, dtype=torch.bool)
    expected[targets.positions[:, 0], targets.positions[:, 1]] = True
    assert torch.equal(touched, expected)


def test_kl_gradient_equals_cross_entropy_gradient():
    torch.manual_seed(2)
    targets = labels_from_teacher("topk", torch.randn(3, VOCAB), [0, 1, 2])
    logits = torch.randn(2, 5, VOCAB, requires_grad=True)
    cross_entropy, _ = soft_cross_entropy(logits, targets)
    (gradient_ce,) = torch.autograd.grad(cross_entropy, logits)
    logits_for_kl = logits.detach().clone().requires_grad_(True)
    _, reference_kl = reference_ce_kl(logits_for_kl, targets)
    (gradient_kl,) = torch.autograd.grad(reference_kl, logits_for_kl)
    torch.testing.assert_close(gradient_ce, gradient_kl.float(), rtol=1e-5, atol=1e-6)


def test_kl_is_zero_when_student_matches_teacher():
    torch.manual_seed(3)
    teacher_logits = torch.randn(3, VOCAB)
    targets = labels_from_teacher("topk", teacher_logits, [0, 1, 2])
    # A student whose distribution is exactly the (renormalized) top-k teacher.
    dense = dense_targets(targets, VOCAB)
    student = torch.full((2, 5, VOCAB), -1e4)
    rows, columns = targets.positions.unbind(-1)
    student[rows, columns] = torch.where(dense > 0, dense.clamp_min(1e-30).log(), torch.tensor(-1e4))
    cross_entropy, kl = soft_cross_entropy(student, targets)
    assert abs(kl.item()) < 1e-5
    assert cross_entropy.item() > 0.1  # CE = the teacher's entropy, not 0


def test_dense_kl_matches_kl_div():
    torch.manual_seed(4)
    teacher_logits, student_logits = torch.randn(6, VOCAB), torch.randn(6, VOCAB)
    expected = F.kl_div(F.log_softmax(student_logits, -1), F.log_softmax(teacher_logits, -1),
                        reduction="none", log_target=True).sum(-1)
    torch.testing.assert_close(dense_kl(teacher_logits, student_logits), expected, rtol=1e-5, atol=1e-6)
    assert torch.all(dense_kl(teacher_logits, teacher_logits).abs() < 1e-6)


# --- the labels of engine.teacher.labels, kind by kind ------------------------------------

def labels_of(kind: str, logits: torch.Tensor, generated: list[int], num_samples: int = 0, top_k: int = 0, seed: int = 0):
    probs = torch.softmax(logits.float(), -1)
    if kind == "hard":
        return hard_labels(generated)
    if kind == "topk":
        return topk_labels(probs, top_k)
    return sampled_labels(probs, uniforms([torch.Generator().manual_seed(seed)], len(probs), num_samples)[0])


def split(offsets, ids, probs):
    return [(ids[offsets[j]: offsets[j + 1]], probs[offsets[j]: offsets[j + 1]]) for j in range(len(offsets) - 1)]


def test_sampled_labels_are_counts_that_sum_to_one():
    torch.manual_seed(5)
    logits = torch.randn(7, VOCAB) * 3
    offsets, ids, probs = labels_of("sampled", logits, [0] * 7, num_samples=50)
    assert offsets.tolist()[0] == 0 and len(offsets) == 8 and offsets[-1] == len(ids) == len(probs)
    assert ids.dtype == torch.long and probs.dtype == torch.float32
    for position_ids, position_probs in split(offsets, ids, probs):
        assert torch.all((position_ids >= 0) & (position_ids < VOCAB))
        assert len(set(position_ids.tolist())) == len(position_ids)  # unique ids
        assert abs(position_probs.sum().item() - 1) < 1e-6
        counts = position_probs * 50
        torch.testing.assert_close(counts, counts.round())  # empirical distribution of 50 samples


def test_sampled_labels_follow_the_teacher_and_the_seed():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1, 0.0]]))
    offsets, ids, probs = labels_of("sampled", logits, [0], num_samples=4000)
    estimate = dict(zip(ids.tolist(), probs.tolist()))
    assert 3 not in estimate  # zero probability is never sampled
    assert abs(estimate[0] - 0.7) < 0.03 and abs(estimate[1] - 0.2) < 0.03 and abs(estimate[2] - 0.1) < 0.03
    again = labels_of("sampled", logits, [0], num_samples=4000)
    assert torch.equal(again[1], ids) and torch.equal(again[2], probs)


def test_topk_labels_are_the_top_ids_renormalized():
    torch.manual_seed(6)
    logits = torch.randn(4, VOCAB)
    offsets, ids, probs = labels_of("topk", logits, [0] * 4, top_k=3)
    softmax = torch.softmax(logits, -1)
    for row, (position_ids, position_probs) in enumerate(split(offsets, ids, probs)):
        assert len(position_ids) == 3
        assert set(position_ids.tolist()) == set(softmax[row].topk(3).indices.tolist())
        expected = softmax[row, position_ids] / softmax[row, position_ids].sum()
        torch.testing.assert_close(position_probs, expected)
        assert abs(position_probs.sum().item() - 1) < 1e-6
    # top_k larger than the vocabulary keeps the whole distribution.
    offsets, ids, probs = labels_of("topk", logits, [0] * 4, top_k=1000)
    assert offsets[-1] == 4 * VOCAB


def test_hard_labels_are_the_generated_ids():
    generated = [4, 9, 2]
    offsets, ids, probs = labels_of("hard", torch.randn(3, VOCAB), generated)
    assert offsets.tolist() == [0, 1, 2, 3]
    assert ids.tolist() == generated
    assert probs.tolist() == [1.0, 1.0, 1.0]
