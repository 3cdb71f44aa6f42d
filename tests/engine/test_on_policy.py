"""On-policy context distillation (issue 21): the loss, the teacher's alignment after its reasoning,
a run with each policy, and a resume in the middle of an on-policy stage."""

from __future__ import annotations

import math

import pytest
import torch

from engine.models import load_model
from engine.project.loader import load_project
from engine.run import new_run_dir, run
from engine.runs.events import read_events
from engine.training.data import DistillExample
from engine.training.on_policy import divergence, on_policy_rows, teacher_logprobs
from engine.training.train import STOP_FILE
from engine_fixtures import write_project


def test_reverse_kl_equals_a_hand_computation():
    student_logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    teacher = torch.log(torch.tensor([[0.25, 0.5, 0.25]]))
    by_hand = 0.5 * math.log(0.5 / 0.25) + 0.25 * math.log(0.25 / 0.5) + 0.25 * math.log(1.0)
    assert divergence(student_logits, teacher, "reverse_kl").item() == pytest.approx(by_hand, abs=1e-6)
    forward = 0.25 * math.log(0.25 / 0.5) + 0.5 * math.log(0.5 / 0.25)
    assert divergence(student_logits, teacher, "forward_kl").item() == pytest.approx(forward, abs=1e-6)
    # The generalized JSD lies between 0 and both KLs, and its ends are the KLs.
    jsd = divergence(student_logits, teacher, "jsd", 0.5).item()
    assert 0 < jsd < min(by_hand, forward)
    assert divergence(student_logits, teacher, "jsd", 1.0).item() == pytest.approx(by_hand, abs=1e-6)
    assert divergence(student_logits, teacher, "jsd", 0.0).item() == pytest.approx(forward, abs=1e-6)


def test_reverse_kl_gradient_matches_the_dense_reference():
    torch.manual_seed(0)
    logits = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    teacher = torch.log_softmax(torch.randn(4, 7, dtype=torch.float64), -1)
    divergence(logits, teacher).sum().backward()
    student = torch.softmax(logits.detach(), -1)
    log_ratio = student.log() - teacher
    kl = (student * log_ratio).sum(-1, keepdim=True)
    # d KL(s || t) / d z_i = s_i (log s_i - log t_i - KL)
    torch.testing.assert_close(logits.grad, (student * (log_ratio - kl)).float().double(), rtol=1e-5, atol=1e-6)


def test_mixed_takes_its_share_of_each_micro_batch():
    assert [on_policy_rows(8, f) for f in (0, 0.25, 0.5, 1)] == [0, 2, 4, 8]


def test_the_teacher_scores_the_students_answer_after_its_own_reasoning(char_model_dir):
    """Teacher position of answer token j = len(teacher prompt + reasoning) - 1 + j, on the same ids,
    where the teacher prefix is longer than the student's."""
    from engine.project.schema import ModelConfig

    model, tokenizer = load_model(ModelConfig(name=str(char_model_dir), dtype="float32", device="cpu"))
    teacher_prompt = tokenizer("Reverse the letters.\nInput: abc\nOutput: ").input_ids
    reasoning = tokenizer("c, b, a. So: ").input_ids
    answer = tokenizer("cba").input_ids
    student_prompt = tokenizer("Input: abc\nOutput: ").input_ids
    example = DistillExample(student_prompt + answer, len(student_prompt), [], [], 0, [teacher_prompt + reasoning])
    got = teacher_logprobs(model, [example], [answer], tokenizer.pad_token_id)
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=torch.tensor([teacher_prompt + reasoning + answer])).logits[0], -1)
    start = len(teacher_prompt + reasoning) - 1
    torch.testing.assert_close(got, full[start: start + len(answer)], rtol=1e-4, atol=1e-5)


def on_policy_project(tmp_path, model_dir, policy: str, **distill) -> object:
    folder = write_project(tmp_path / policy, model_dir, labels="sampled", max_steps=4, count=8)
    text = (folder / "project.toml").read_text()
    extra = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in distill.items())
    (folder / "project.toml").write_text(text.replace("[distill]\n", f"[distill]\npolicy = \"{policy}\"\n{extra}"))
    return load_project(folder)


@pytest.mark.parametrize("policy, distill", [("on", {}), ("mixed", {"on_policy_fraction": 0.5, "divergence": "jsd"}),
                                             ("on", {"lora": "LORA"})])
def test_each_policy_runs_and_reports_its_cost(tmp_path, char_model_dir, policy, distill):
    lora = distill.pop("lora", None)
    project = on_policy_project(tmp_path, char_model_dir, policy, **distill)
    if lora:
        import dataclasses

        project = dataclasses.replace(project, distill=dataclasses.replace(
            project.distill, lora=dataclasses.replace(project.distill.lora, r=4)))
        project = dataclasses.replace(project, stages=tuple(dataclasses.replace(stage, distill=project.distill)
                                                            for stage in project.stages))
    run_dir = new_run_dir(project)
    metrics = run(project, run_dir)
    assert metrics is not None
    steps = [event for event in read_events(run_dir / "events.jsonl") if event["type"] == "train"]
    assert [event["step"] for event in steps] == [1, 2, 3, 4]
    for event in steps:
        assert event["policy"] == policy and event["sample_s"] > 0 and event["score_s"] > 0 and event["train_s"] > 0
        assert math.isfinite(event["loss"]) and event["kl"] >= 0


def test_a_resume_in_the_middle_of_an_on_policy_stage_trains_as_the_uninterrupted_run(tmp_path, char_model_dir):
    project = on_policy_project(tmp_path, char_model_dir, "on")
    whole = new_run_dir(project)
    run(project, whole)
    reference = {event["step"]: event["loss"] for event in read_events(whole / "events.jsonl") if event["type"] == "train"}

    stopped = new_run_dir(project)

    def stop_after_step_two(event):
        if event["type"] == "train" and event["step"] >= 2:
            (stopped / STOP_FILE).touch()

    assert run(project, stopped, listeners=[stop_after_step_two]) is None
    assert run(project, stopped, resume=True) is not None
    resumed = {event["step"]: event["loss"] for event in read_events(stopped / "events.jsonl") if event["type"] == "train"}
    assert resumed == pytest.approx(reference, rel=1e-5)  # the sampler is reseeded per step: the same answers


def test_policy_on_with_hard_labels_is_refused_before_any_work(tmp_path, char_model_dir):
    from engine.errors import ConfigError

    folder = write_project(tmp_path / "hard", char_model_dir, labels="hard")
    text = (folder / "project.toml").read_text()
    (folder / "project.toml").write_text(text.replace("[distill]\n", "[distill]\npolicy = \"on\"\nstudent_temperature = 0\n"))
    with pytest.raises(ConfigError) as raised:
        load_project(folder)
    problems = "\n".join(raised.value.problems)
    assert "`distill.policy` = \"on\" with `distill.labels` = \"hard\"" in problems
    assert "`distill.student_temperature` = 0" in problems


def test_on_policy_with_an_ensemble_and_a_recursive_second_stage(tmp_path, char_model_dir):
    """Issue 21 item 3: the teacher averages its renderings on the student's tokens; a stage with
    teacher = "previous" is graded by the first stage's student."""
    folder = write_project(tmp_path / "combined", char_model_dir, labels="sampled", max_steps=2, count=6)
    text = (folder / "project.toml").read_text().replace("[distill]\n", "[distill]\npolicy = \"on\"\n")
    text = text.replace("[teacher]\ntemplate = \"\"\"", "[teacher]\nensemble = 2\ntemplate = \"\"\"{% for w in ['ab', 'ba', 'cd'] "
                                                     "| sample(1) %}{{ w }} {% endfor %}")
    (folder / "project.toml").write_text(text + '''
[[stages]]
name = "first"

[[stages]]
name = "second"
teacher = "previous"
''')
    project = load_project(folder)
    assert project.operations[0].teacher.ensemble == 2 and project.stages[1].teacher == "previous"
    run_dir = new_run_dir(project)
    assert run(project, run_dir) is not None
    trains = [event for event in read_events(run_dir / "events.jsonl") if event["type"] == "train"]
    assert [(event["stage_name"], event["step"]) for event in trains] == [("first", 1), ("first", 2), ("second", 1), ("second", 2)]
    assert all(event["policy"] == "on" and event["teacher_tokens"] > 0 for event in trains)
