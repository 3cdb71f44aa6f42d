"""The paper's supervised baselines for scratch-pad distillation (section 3.3, Table 3).

Both use the same distillation inputs and labels, with hard targets:

- `scdir`  (transfer): fine-tune on scratch-pads, then on direct answers.
- `sc+dir` (multi-task): fine-tune on scratch-pads and direct answers at once.

The scratch-pads are the teacher's own outputs whose extracted answer equals the
label (the paper used gold scratch-pads; ours need no task-specific generator).
Each phase trains as many steps as the distillation does, so every baseline sees
each input as often as the student does.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from engine.data import DistillExample
from engine.extractors import Extractor
from engine.teacher import TeacherRecord, student_prompt


def hard_example(prompt_ids: list[int], target_ids: list[int]) -> DistillExample:
    """Plain supervised fine-tuning expressed as one-hot soft labels."""
    return DistillExample(prompt_ids + target_ids, len(prompt_ids),
                          [torch.tensor([token]) for token in target_ids], [torch.ones(1) for _ in target_ids])


def scratchpad_examples(tokenizer, records: list[TeacherRecord], extractor: Extractor) -> list[DistillExample]:
    examples = []
    for record in records:
        answer = extractor.find(record.text)
        label = record.input.get("label")
        if answer is not None and label is not None and answer.text == label.strip():
            examples.append(hard_example(tokenizer(record.prompt).input_ids, list(record.output_ids)))
    return examples


def direct_examples(project, tokenizer, records: list[TeacherRecord]) -> list[DistillExample]:
    examples = []
    for record in records:
        if record.input.get("label") is None:
            continue
        target = tokenizer(record.input["label"].strip() + "\n", add_special_tokens=False).input_ids
        examples.append(hard_example(tokenizer(student_prompt(project, tokenizer, record.input)).input_ids,
                                     target + [tokenizer.eos_token_id]))
    return examples


def train_baselines(project, run_dir, tokenizer, records, extractor, events) -> dict[str, str]:
    """Train each configured baseline; returns {name: saved model folder}."""
    from engine.train import train

    scratch = scratchpad_examples(tokenizer, records, extractor)
    direct = direct_examples(project, tokenizer, records)
    if not scratch or not direct:
        events.emit("status", stage="train", message="baselines skipped: they need labelled inputs and correct teacher scratch-pads")
        return {}
    steps = project.distill.max_steps or None
    saved = {}
    for method in project.baselines.methods:
        events.emit("status", stage="train", message=f"baseline {method}: {len(scratch)} scratch-pads, {len(direct)} direct answers")
        folder = f"baselines/{method}"
        if method == "scdir":
            first = train(project, run_dir, scratch, events, output_name=folder + "-scratch")
            saved[method] = str(train(project, run_dir, direct, events, init_from=str(first), output_name=folder))
        else:
            mixed = replace(project, distill=replace(project.distill, max_steps=2 * steps)) if steps else project
            saved[method] = str(train(mixed, run_dir, scratch + direct, events, output_name=folder))
    return saved
