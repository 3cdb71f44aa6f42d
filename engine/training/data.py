"""Teacher records -> student training examples, aligned token by token.

For answer token j (teacher output position `start + j`), the teacher's label
was read at prompt + scratch-pad + answer[:j]; the student predicts it from
student prompt + answer[:j], i.e. at student position `len(student_prompt) - 1 + j`
(design.md, "Token alignment").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.errors import EngineError, ExtractionError
from engine.teacher.extractors import Extractor, answer_token_span
from engine.training.losses import SparseTargets, pad_labels
from engine.teacher.teacher_pass import TeacherRecord, student_prompt, teacher_prompts


@dataclass
class DistillExample:
    input_ids: list[int]  # student prompt + teacher answer ids
    answer_start: int  # index in input_ids of the first answer token
    label_ids: list[torch.Tensor]  # per answer token
    label_probs: list[torch.Tensor]
    operation: int = 0  # index of its operation in the stage (simultaneous distillation)
    # On-policy only: each teacher rendering's prompt ids + its reasoning up to the answer (engine/training/on_policy.py).
    teacher_prefixes: list[list[int]] | None = None


def build_examples(project, tokenizer, records: list[TeacherRecord], extractor: Extractor,
                   max_seq_len: int, operation: int = 0) -> tuple[list[DistillExample], list[int]]:
    """(examples, indices of records whose answer the extractor could not find); `operation` tags them."""
    examples, missed = [], []
    end_of_turn = chat_end_of_turn(project, tokenizer)
    for index, record in enumerate(records):
        answer = extractor.find(record.text)
        if answer is None:
            missed.append(index)
            continue
        span = answer_token_span(tokenizer, record.output_ids, record.text, answer, project.generate.stop)
        prompt_ids = tokenizer(student_prompt(project, tokenizer, record.input)).input_ids
        answer_ids = record.output_ids[span.start: span.end]
        offsets = record.label_offsets
        label_ids = [record.label_ids[offsets[j]: offsets[j + 1]] for j in range(span.start, span.end)]
        label_probs = [record.label_probs[offsets[j]: offsets[j + 1]] for j in range(span.start, span.end)]
        if end_of_turn is not None and answer_ids[-1] not in (end_of_turn, tokenizer.eos_token_id):
            # A chat student closes its turn after the answer, as the chat model does; the teacher went
            # on (or was cut off) there, so this one label is hard. The teacher's own ids are kept as they are.
            answer_ids = answer_ids + [end_of_turn]
            label_ids.append(torch.tensor([end_of_turn]))
            label_probs.append(torch.ones(1))
        input_ids = prompt_ids + answer_ids
        if len(input_ids) > max_seq_len:
            raise EngineError(f"student sequence for input #{index} is {len(input_ids)} tokens "
                              f"(prompt {len(prompt_ids)} + answer {len(answer_ids)}), over distill.max_seq_len = "
                              f"{max_seq_len}; raise it or shorten the student template")
        prefixes = None
        if project.distill.policy != "off":  # the teacher scores the student's answer after its own reasoning
            reasoning = record.output_ids[: span.start]
            prefixes = [tokenizer(prompt).input_ids + reasoning for prompt in teacher_prompts(project, tokenizer, record.input)]
        examples.append(DistillExample(input_ids, len(prompt_ids), label_ids, label_probs, operation, prefixes))
    if not examples:
        first = records[0].text if records else ""
        raise ExtractionError(
            f"the `{project.extract.kind}` extractor found no answer in any of the {len(records)} teacher outputs; "
            f"first output was {first!r}. Check [extract] against what the teacher writes (`ctxdistill preview`).")
    return examples, missed


def chat_end_of_turn(project, tokenizer) -> int | None:
    """The chat template's end-of-turn token id (`model.chat_template`), else None."""
    if not project.model.chat_template:
        return None
    from engine.project.templates import end_of_turn_id

    return end_of_turn_id(tokenizer)


def collate(examples: list[DistillExample], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, SparseTargets]:
    """Right-padded (batch, seq) ids and mask, and the sparse targets at answer positions."""
    width = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    positions, per_position, operations = [], [], []
    for row, example in enumerate(examples):
        input_ids[row, : len(example.input_ids)] = torch.tensor(example.input_ids)
        attention_mask[row, : len(example.input_ids)] = 1
        for j, (ids, probs) in enumerate(zip(example.label_ids, example.label_probs)):
            # The logits at position t predict token t + 1.
            positions.append((row, example.answer_start - 1 + j))
            per_position.append((ids, probs))
            operations.append(example.operation)
    label_ids, label_probs = pad_labels(per_position)
    return input_ids, attention_mask, SparseTargets(torch.tensor(positions, dtype=torch.long), label_ids, label_probs,
                                                    torch.tensor(operations, dtype=torch.long))
