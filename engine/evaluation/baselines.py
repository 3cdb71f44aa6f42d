"""The paper's supervised baselines, trained with hard targets beside the distillation.

For scratch-pad distillation (section 3.3, Table 3), on the same inputs and labels:

- `scdir`  (transfer): fine-tune on scratch-pads, then on direct answers.
- `sc+dir` (multi-task): fine-tune on scratch-pads and direct answers at once.

For few-shot examples (section 3.2, hypothesis 4):

- `examples`: plain gradient descent on the teacher's worked examples
  (`teacher.vars.examples`), each under the student template, in one batch, keeping
  the best epoch on the held-out inputs (appendix B.5; engine/evaluation/examples_baseline.py).

The scratch-pads are the teacher's own outputs whose extracted answer equals the
label (the paper used gold scratch-pads; ours need no task-specific generator).
Budgets (`baselines.budget`): "paper" trains every phase for the distillation's
full step budget (appendix B.6: scdir trains twice as long in all) and `examples`
25 epochs at lr 1e-5 (B.5); "equal-compute" gives scdir's two phases half each, the
distillation's compute, and `examples` the distillation's steps at the best of a few
learning rates.

With a chat model (`model.chat_template`) every target ends with the template's
end-of-turn token, as the distilled student's do (engine/training/data.py), so a baseline
learns to close its turn too and the comparison stays fair.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from engine.training.data import DistillExample, chat_end_of_turn
from engine.teacher.extractors import Extractor
from engine.teacher.teacher_pass import TeacherRecord, student_prompt


def hard_example(prompt_ids: list[int], target_ids: list[int]) -> DistillExample:
    """Plain supervised fine-tuning expressed as one-hot soft labels."""
    return DistillExample(prompt_ids + target_ids, len(prompt_ids),
                          [torch.tensor([token]) for token in target_ids], [torch.ones(1) for _ in target_ids])


def scratchpad_examples(project, tokenizer, records: list[TeacherRecord], extractor: Extractor) -> list[DistillExample]:
    end_of_turn = chat_end_of_turn(project, tokenizer)
    examples = []
    for record in records:
        answer = extractor.find(record.text)
        label = record.input.get("label")
        if answer is not None and label is not None and answer.text == label.strip():
            target = list(record.output_ids)
            if end_of_turn is not None and (not target or target[-1] not in (end_of_turn, tokenizer.eos_token_id)):
                target.append(end_of_turn)  # the teacher was cut off or went on: the turn still ends here
            examples.append(hard_example(tokenizer(record.prompt).input_ids, target))
    return examples


def direct_examples(project, tokenizer, records: list[TeacherRecord]) -> list[DistillExample]:
    return [hard_example(tokenizer(student_prompt(project, tokenizer, record.input)).input_ids,
                         answer_target(project, tokenizer, record.input["label"]))
            for record in records if record.input.get("label") is not None]


def answer_target(project, tokenizer, answer: str) -> list[int]:
    """A hard target: the answer, then the end of the turn (chat) or a newline and EOS."""
    end_of_turn = chat_end_of_turn(project, tokenizer)
    if end_of_turn is not None:
        return tokenizer(answer.strip(), add_special_tokens=False).input_ids + [end_of_turn]
    return tokenizer(answer.strip() + "\n", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]


def worked_examples(project, tokenizer) -> list[DistillExample]:
    """`teacher.vars.examples` (dicts with `input` and `label` or `output`) as the student would see them."""
    return [hard_example(tokenizer(student_prompt(project, tokenizer, row)).input_ids,
                         answer_target(project, tokenizer, str(row.get("label", row.get("output", "")))))
            for row in project.teacher.vars.get("examples", [])]


def train_baselines(project, run_dir, tokenizer, records, extractor, events,
                    held_out: list[dict] | None = None) -> dict[str, str]:
    """Train each configured baseline; returns {name: saved model folder}.

    `held_out`: the eval inputs, on which the `examples` baseline picks its best epoch (B.5)."""
    from engine.training.train import total_steps_for, train

    def train_into(settings, examples, folder: str, init_from: Path | None = None) -> Path:
        # Baselines keep their checkpoints apart, so a resume never loads them into the student;
        # they are the paper's methods, trained off-policy whatever the stage's policy.
        settings = replace(settings, distill=replace(settings.distill, policy="off"))
        return train(settings, examples, events, run_dir=run_dir, output_dir=run_dir / folder,
                     checkpoints_dir=run_dir / f"{folder}-checkpoints", init_from=str(init_from) if init_from else None,
                     phase=folder)

    saved = {}
    if "examples" in project.baselines.methods:
        from accelerate import PartialState

        from engine.evaluation.examples_baseline import train_examples_baseline

        # One batch of K examples, the best epoch on the held-out inputs (B.5): one process trains it.
        state, folder = PartialState(), run_dir / "baselines/examples"
        if state.is_main_process:
            train_examples_baseline(project, worked_examples(project, tokenizer), held_out or [], folder, events,
                                    distill_steps=total_steps_for(project, len(records)))
        state.wait_for_everyone()
        saved["examples"] = str(folder)
    scratchpad_methods = [method for method in project.baselines.methods if method != "examples"]
    if not scratchpad_methods:
        return saved
    scratch = scratchpad_examples(project, tokenizer, records, extractor)
    direct = direct_examples(project, tokenizer, records)
    if not scratch or not direct:
        events.emit("status", stage="train", message="baselines skipped: they need labelled inputs and correct teacher scratch-pads")
        return saved

    steps = total_steps_for(project, len(direct))
    phase = steps if project.baselines.budget == "paper" else max(1, steps // 2)
    per_phase = replace(project, distill=replace(project.distill, epochs=0, max_steps=phase))
    full = replace(project, distill=replace(project.distill, epochs=0, max_steps=steps))
    for method in scratchpad_methods:
        events.emit("status", stage="train", message=f"baseline {method}: {len(scratch)} scratch-pads, {len(direct)} direct "
                    f"answers, {2 * phase if method == 'scdir' else steps} steps ({project.baselines.budget} budget)")
        folder = f"baselines/{method}"
        if method == "scdir":
            first = train_into(per_phase, scratch, folder + "-scratch")
            saved[method] = str(train_into(per_phase, direct, folder, init_from=first))
        else:
            saved[method] = str(train_into(full, scratch + direct, folder))
    return saved
