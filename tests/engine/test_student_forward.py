"""Answer-only logits (issue 9, item 4): the same loss and gradients as the full-logits path."""

from __future__ import annotations

import pytest
import torch

from engine.project.schema import ModelConfig
from engine.training.losses import SparseTargets, pad_labels, soft_cross_entropy
from engine.models import load_model
from engine.training.student_forward import answer_cross_entropy, answer_logits


@pytest.fixture(params=["char", "bpe"])
def model(request):
    folder = request.getfixturevalue(f"{request.param}_model_dir")
    model, _ = load_model(ModelConfig(name=str(folder), dtype="float32", device="cpu"))
    return model  # eval mode: no dropout, so two passes are comparable


def batch_and_targets(vocab: int, seed: int = 0):
    """Right-padded (3, 12) ids, and 2-4 label ids per answer position, answers at different columns per row."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(4, vocab, (3, 12), generator=generator)
    attention_mask = torch.ones(3, 12, dtype=torch.long)
    attention_mask[1, 9:] = 0
    attention_mask[2, 6:] = 0
    positions = [(0, column) for column in range(4, 11)] + [(1, 5), (1, 6), (1, 7)] + [(2, 2), (2, 3), (2, 4)]
    per_position = []
    for _ in positions:
        ids = torch.randperm(vocab, generator=generator)[: int(torch.randint(2, 5, (), generator=generator))]
        probs = torch.rand(len(ids), generator=generator) + 0.05
        per_position.append((ids, probs / probs.sum()))
    label_ids, label_probs = pad_labels(per_position)
    return input_ids, attention_mask, SparseTargets(torch.tensor(positions), label_ids, label_probs)


def losses_and_gradients(model, compute):
    model.zero_grad(set_to_none=True)
    loss, kl = compute()
    loss.backward()
    return loss.detach(), kl.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_answer_logits_equal_the_full_logits_at_those_positions(model):
    input_ids, attention_mask, targets = batch_and_targets(model.config.vocab_size)
    with torch.no_grad():
        full = model(input_ids=input_ids, attention_mask=attention_mask).logits
        rows, columns = targets.positions.unbind(-1)
        picked = answer_logits(model, input_ids, attention_mask, targets.positions)
    assert picked.shape == (len(targets.positions), model.config.vocab_size)
    torch.testing.assert_close(picked, full[rows, columns], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("vocab_chunk", [None, 7, 64])
@pytest.mark.parametrize("weighted", [False, True])
def test_same_loss_and_gradients_as_the_full_logits(model, vocab_chunk, weighted):
    input_ids, attention_mask, targets = batch_and_targets(model.config.vocab_size, seed=1)
    weights = None
    if weighted:  # simultaneous distillation: two operations, weighted 3:1
        targets = SparseTargets(targets.positions, targets.label_ids, targets.label_probs,
                                torch.tensor([0, 1] * 6 + [0]))
        weights = torch.tensor([3.0, 1.0])
    full = losses_and_gradients(model, lambda: soft_cross_entropy(
        model(input_ids=input_ids, attention_mask=attention_mask).logits, targets, weights))
    answer_only = losses_and_gradients(model, lambda: answer_cross_entropy(
        model, input_ids, attention_mask, targets, weights, vocab_chunk=vocab_chunk))
    torch.testing.assert_close(answer_only[0], full[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(answer_only[1], full[1], rtol=1e-5, atol=1e-6)
    assert answer_only[2].keys() == full[2].keys()
    for name, gradient in full[2].items():
        torch.testing.assert_close(answer_only[2][name], gradient, rtol=1e-4, atol=1e-6, msg=name)


def test_the_head_is_left_as_it_was(model):
    input_ids, attention_mask, targets = batch_and_targets(model.config.vocab_size)
    answer_logits(model, input_ids, attention_mask, targets.positions)
    with torch.no_grad():
        assert model(input_ids=input_ids).logits.shape == (3, 12, model.config.vocab_size)


# --- the training step's CPU threads (issue 9, item 6) --------------------------------

@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_thread_setting_is_applied_and_returned(restore_threads, monkeypatch):
    from engine.threads import configure_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    assert configure_threads(3) == 3 and torch.get_num_threads() == 3


def test_the_default_leaves_half_the_cpus_and_respects_omp_num_threads(restore_threads, monkeypatch):
    import engine.threads as threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for cpus, expected in [(1, 1), (2, 1), (4, 2), (16, 8), (64, 8)]:
        monkeypatch.setattr(threads, "usable_cpus", lambda cpus=cpus: cpus)
        assert threads.configure_threads(None) == expected == torch.get_num_threads()
        assert threads.configure_threads(0) == expected
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.configure_threads(None) == 3
    assert 1 <= threads.usable_cpus()


def test_vocab_chunk_auto_chunks_only_where_it_saves_memory():
    """Issue 17, item 6: a trained head pays a (vocab x hidden) gradient buffer per chunk."""
    from types import SimpleNamespace

    from engine.training.student_forward import AUTO_VOCAB_CHUNK, vocab_chunk_for

    class Head(torch.nn.Module):
        def __init__(self, vocab: int, hidden: int, softcap=None):
            super().__init__()
            self.head = torch.nn.Linear(hidden, vocab, bias=False)
            self.config = SimpleNamespace(final_logit_softcapping=softcap)

        def get_output_embeddings(self):
            return self.head

    big = Head(40_000, 16)
    assert vocab_chunk_for(big, answer_rows=32, setting=-1) is None  # trained head, few rows: chunking costs more
    assert vocab_chunk_for(big, answer_rows=65, setting=-1) == AUTO_VOCAB_CHUNK  # rows far above hidden 16
    big.head.weight.requires_grad_(False)  # LoRA: the head is frozen
    assert vocab_chunk_for(big, answer_rows=1, setting=-1) == AUTO_VOCAB_CHUNK
    assert vocab_chunk_for(Head(1000, 16).requires_grad_(False), answer_rows=1, setting=-1) is None  # small vocabulary
    assert vocab_chunk_for(Head(40_000, 16, softcap=30.0).requires_grad_(False), 1, -1) is None  # soft-capped logits
    assert vocab_chunk_for(big, 1, 0) is None and vocab_chunk_for(big, 1, 4096) == 4096  # set by the user
