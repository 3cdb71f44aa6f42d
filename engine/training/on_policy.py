"""On-policy context distillation: the student writes, the teacher with its context grades every token.

The paper's method is off-policy: the teacher writes the answers (the cache) and
the student learns to reproduce them. On-policy (GKD, Agarwal et al. 2024) turns
it around, so the student learns where it actually goes wrong:

1. the student (current weights, student prompt) samples an answer;
2. the teacher (frozen weights, teacher prompt) scores those same tokens: after
   its own reasoning where the extractor cut a scratch-pad away (the teacher's
   cached output up to the answer's start), so its context is what it had when
   it answered;
3. the loss is a divergence between the two distributions over the whole
   vocabulary at the student's answer positions: reverse KL(student || teacher)
   by default, forward KL, or the generalized Jensen-Shannon divergence (beta).

Alignment is the off-policy one (engine/training/data.py): answer token j is
predicted at student position len(student prompt) - 1 + j and at teacher
position len(teacher prefix) - 1 + j, on the same token ids. The LM head runs at
the answer rows only on both sides.

Sampling is reseeded from (seed, step, micro-batch, process) before every draw,
so a resumed run samples what the uninterrupted one did without keeping any
generator state in the checkpoint.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from engine.teacher.generation import generate_batch
from engine.training.data import DistillExample
from engine.training.losses import weighted_by_operation
from engine.training.student_forward import answer_logits

DIVERGENCES = ("reverse_kl", "forward_kl", "jsd")


@dataclass
class Scored:
    """One micro-batch's on-policy part, ready for the student's forward pass."""

    input_ids: torch.Tensor  # (rows, seq): student prompt + the student's own answer, right-padded
    attention_mask: torch.Tensor
    positions: torch.Tensor  # (P, 2): where the student predicts each answer token
    teacher_logprobs: torch.Tensor  # (P, vocab): the teacher's log-distribution at the same tokens
    operations: torch.Tensor  # (P,)
    sample_s: float
    score_s: float
    teacher_tokens: int  # tokens the teacher ran over to score them (every rendering of an ensemble)


def divergence(student_logits: torch.Tensor, teacher_logprobs: torch.Tensor, kind: str = "reverse_kl",
               beta: float = 0.5) -> torch.Tensor:
    """(P, vocab) student logits and teacher log-probabilities -> (P,) divergence per answer token.

    reverse_kl: KL(student || teacher), mode-seeking (GKD's default for on-policy);
    forward_kl: KL(teacher || student), the off-policy objective on the student's tokens;
    jsd: beta KL(teacher || m) + (1 - beta) KL(student || m), m = beta teacher + (1 - beta) student.
    """
    student = torch.log_softmax(student_logits.float(), dim=-1)
    teacher = teacher_logprobs.float()
    if kind == "reverse_kl":
        return (student.exp() * (student - teacher)).sum(-1)
    if kind == "forward_kl":
        return (teacher.exp() * (teacher - student)).sum(-1)
    if not 0 < beta < 1:  # the ends of the family are the two KLs
        return divergence(student_logits, teacher_logprobs, "forward_kl" if beta == 0 else "reverse_kl")
    mixture = torch.logsumexp(torch.stack([teacher + torch.log(torch.tensor(beta)),
                                           student + torch.log(torch.tensor(1 - beta))]), dim=0)
    return beta * (teacher.exp() * (teacher - mixture)).sum(-1) + \
        (1 - beta) * (student.exp() * (student - mixture)).sum(-1)


@torch.no_grad()
def sample_answers(student, tokenizer, examples: list[DistillExample], *, temperature: float, max_new_tokens: int,
                   stops: list[str], seed: int) -> list[list[int]]:
    """The student's own answer to each example's student prompt (its ids up to EOS or the first stop)."""
    was_training = student.training
    student.eval()  # no dropout while it writes
    try:
        torch.manual_seed(seed)
        generated = generate_batch(student, tokenizer, [example.input_ids[: example.answer_start] for example in examples],
                                   max_new_tokens=max_new_tokens, temperature=temperature, stops=stops)
    finally:
        student.train(was_training)
    return [output.output_ids for output in generated]


def right_padded(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    return input_ids.to(device), attention_mask.to(device)


def answer_positions(prefix_lengths: list[int], answer_lengths: list[int]) -> torch.Tensor:
    """(P, 2): row, and the position predicting answer token j (the logits at t predict token t + 1)."""
    return torch.tensor([(row, prefix - 1 + j) for row, (prefix, length) in enumerate(zip(prefix_lengths, answer_lengths))
                         for j in range(length)], dtype=torch.long)


@torch.no_grad()
def teacher_logprobs(teacher, examples: list[DistillExample], answers: list[list[int]], pad_id: int) -> torch.Tensor:
    """(P, vocab) log of the teacher's distribution at every answer token, averaged over an ensemble's renderings."""
    renderings = len(examples[0].teacher_prefixes)
    total = None
    for rendering in range(renderings):
        prefixes = [example.teacher_prefixes[rendering] for example in examples]
        input_ids, attention_mask = right_padded([prefix + answer for prefix, answer in zip(prefixes, answers)], pad_id,
                                                 teacher.device)
        positions = answer_positions([len(prefix) for prefix in prefixes], [len(answer) for answer in answers])
        probs = torch.softmax(answer_logits(teacher, input_ids, attention_mask, positions).float(), dim=-1)
        total = probs if total is None else total + probs
    return (total / renderings).clamp_min(1e-30).log()  # a token the teacher gives 0 costs a large, finite penalty


def score_on_policy(student, teacher, tokenizer, examples: list[DistillExample], *, temperature: float,
                    max_new_tokens: int, stops: list[str], seed: int) -> Scored:
    """Steps 1 and 2: the student samples, the teacher scores. Nothing here keeps a gradient."""
    started = time.perf_counter()
    answers = sample_answers(student, tokenizer, examples, temperature=temperature, max_new_tokens=max_new_tokens,
                             stops=stops, seed=seed)
    sampled = time.perf_counter()
    logprobs = teacher_logprobs(teacher, examples, answers, tokenizer.pad_token_id)
    scored = time.perf_counter()
    prompts = [example.input_ids[: example.answer_start] for example in examples]
    input_ids, attention_mask = right_padded([prompt + answer for prompt, answer in zip(prompts, answers)],
                                             tokenizer.pad_token_id, student.device)
    operations = torch.tensor([example.operation for example, answer in zip(examples, answers) for _ in answer])
    teacher_tokens = sum(len(prefix) + len(answer) for example, answer in zip(examples, answers)
                         for prefix in example.teacher_prefixes)
    return Scored(input_ids, attention_mask, answer_positions([len(p) for p in prompts], [len(a) for a in answers]),
                  logprobs, operations, sampled - started, scored - sampled, teacher_tokens)


def on_policy_loss(model, scored: Scored, weights: torch.Tensor | None, kind: str, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 3: (loss, per-token values) of the student's forward pass with gradient; the loss is the
    per-token divergence, averaged per operation and weighted as the off-policy loss is."""
    device = scored.input_ids.device
    student_logits = answer_logits(model, scored.input_ids, scored.attention_mask, scored.positions)
    values = divergence(student_logits, scored.teacher_logprobs.to(device), kind, beta)
    if weights is None:
        return values.mean(), values.detach()
    return weighted_by_operation(values, scored.operations.to(device), weights), values.detach()


@contextmanager
def adapter_off(model):
    """A LoRA student's base weights, frozen, as its own teacher: one copy of the model in memory."""
    with model.disable_adapter():
        yield model


def on_policy_rows(count: int, fraction: float) -> int:
    """How many of a micro-batch's `count` examples are sampled on-policy (`mixed`: the first ones)."""
    return min(count, max(0, round(count * fraction)))
