"""Device correctness without a GPU (issue 17): the hot paths run on a stand-in accelerator.

Every tensor and generator a hot path makes must live on the device of the data it meets.
A CPU run cannot show a mistake there (everything is on the CPU), so these tests move the
model to the meta device and police every torch call (tests/engine/meta_device.py): the
teacher pass with each kind of label and an ensemble, the training step, evaluation.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from engine.evaluation.evaluate import answer_kl, decode
from engine.models import load_model
from engine.project.loader import load_project
from engine.teacher.extractors import Extractor
from engine.teacher.teacher_pass import run_teacher
from engine.training.data import build_examples, collate
from engine.training.student_forward import answer_cross_entropy
from engine_fixtures import write_project
from meta_device import ACCELERATOR, DeviceMixing, on_the_accelerator

ENSEMBLE_TEACHER = "{% for ex in ['ab', 'cd', 'ef', 'gh'] | sample(2) %}{{ ex }} {% endfor %}Input: {{ input }}\nOutput: "


def test_the_harness_refuses_what_a_gpu_refuses():
    probs = torch.full((2, 5), 0.2, device=ACCELERATOR)
    with on_the_accelerator() as mode:
        with pytest.raises(DeviceMixing, match="generator"):
            torch.multinomial(probs, 3, replacement=True, generator=torch.Generator())  # the crash of issue 17
        with pytest.raises(DeviceMixing, match="mixes"):
            probs + torch.ones(2, 5)
        probs + torch.tensor(1.0)  # a CPU scalar is fine, as on CUDA
        assert probs.cpu().shape == (2, 5) and mode.transfers == ["TensorBase.cpu"]


def project_and_model(tmp_path, model_dir, **overrides):
    project = load_project(write_project(tmp_path / "p", model_dir, **overrides))
    model, tokenizer = load_model(project.model, project.dir)
    return project, model.to(ACCELERATOR), tokenizer


@pytest.mark.parametrize("labels", ["sampled", "topk", "hard"])
def test_the_teacher_pass_draws_its_labels_on_the_accelerator(tmp_path, char_model_dir, labels):
    project, model, tokenizer = project_and_model(tmp_path, char_model_dir, labels=labels, count=5)
    project = dataclasses.replace(project, generate=dataclasses.replace(project.generate, batch_size=2))
    inputs = [{"input": word} for word in ("ab", "abc", "abcd", "a", "abcde")]
    with on_the_accelerator() as mode:
        records = run_teacher(project, model, tokenizer, inputs)
    assert len(records) == 5 and all(record.label_offsets[-1] == len(record.label_ids) for record in records)
    if labels != "hard":  # one transfer of labels per batch, not one per row per token
        assert mode.transfers.count("TensorBase.cpu") == 3


@pytest.mark.parametrize("labels", ["sampled", "topk"])
def test_an_ensemble_averages_on_the_accelerator(tmp_path, char_model_dir, labels):
    project, model, tokenizer = project_and_model(tmp_path, char_model_dir, labels=labels, count=3)
    project = dataclasses.replace(project, teacher=dataclasses.replace(project.teacher, ensemble=2,
                                                                        template=ENSEMBLE_TEACHER))
    with on_the_accelerator():
        records = run_teacher(project, model, tokenizer, [{"input": "abc"}, {"input": "ba"}])
    assert len(records) == 2


def test_the_training_step_runs_on_the_accelerator(tmp_path, char_model_dir):
    """The step as engine/training/train.py takes it: batch moved once, loss weights as given."""
    project, cpu_model, tokenizer = project_and_model(tmp_path, char_model_dir, labels="sampled", count=2)
    records = run_teacher(project, load_model(project.model, project.dir)[0], tokenizer, [{"input": "ab"}, {"input": "ba"}])
    examples, _ = build_examples(project, tokenizer, records, Extractor(project.extract, project.dir), 256)
    for index, example in enumerate(examples):
        example.operation = index % 2  # two operations, weighted (simultaneous distillation)
    model = cpu_model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for vocab_chunk in (None, 16):
        input_ids, attention_mask, targets = collate(examples, tokenizer.pad_token_id)
        with on_the_accelerator():
            loss, kl = answer_cross_entropy(model, input_ids.to(ACCELERATOR), attention_mask.to(ACCELERATOR),
                                            targets.to(ACCELERATOR), torch.tensor([1.0, 0.5]), vocab_chunk=vocab_chunk)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        assert loss.device == ACCELERATOR and kl.device == ACCELERATOR


def test_evaluation_runs_on_the_accelerator(tmp_path, char_model_dir):
    project, model, tokenizer = project_and_model(tmp_path, char_model_dir, count=3)
    inputs = [{"input": "ab", "label": "ba"}, {"input": "abc", "label": "cba"}]
    with on_the_accelerator(int_fill=tokenizer.convert_tokens_to_ids("a")):  # outputs read "aaa": an answer to score
        teacher = decode(project, model, tokenizer, inputs, "teacher", Extractor(project.extract, project.dir), keep_logits=True)
        student = decode(project, model, tokenizer, inputs, "student", Extractor(project.extract, project.dir))
        kl = answer_kl(project, model, tokenizer, inputs, teacher)
    assert len(student) == 2 and kl is not None


def test_an_on_policy_step_runs_on_the_accelerator(tmp_path, char_model_dir):
    """Issue 21: the student samples, the teacher scores, the loss backs up: all on the model's device."""
    from engine.training.data import DistillExample
    from engine.training.on_policy import on_policy_loss, score_on_policy

    project, model, tokenizer = project_and_model(tmp_path, char_model_dir, count=2)
    prompt, teacher = tokenizer("Input: ab\nOutput: ").input_ids, tokenizer("Reverse.\nInput: ab\nOutput: ").input_ids
    examples = [DistillExample(prompt + [5], len(prompt), [], [], index, [teacher]) for index in range(2)]
    with on_the_accelerator(int_fill=tokenizer.convert_tokens_to_ids("a")):
        scored = score_on_policy(model, model, tokenizer, examples, temperature=1.0, max_new_tokens=3, stops=[], seed=0)
        loss, _ = on_policy_loss(model.train(), scored, torch.tensor([1.0, 2.0]), "reverse_kl", 0.5)
        loss.backward()
    assert loss.device == ACCELERATOR
