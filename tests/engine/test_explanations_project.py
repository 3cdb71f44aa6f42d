"""The `explanations` sample project (paper section 3.1, hypothesis 2) on a tiny random Qwen2 with Qwen 2.5's chat template.

The project distils into Qwen/Qwen2.5-0.5B-Instruct, which cannot be downloaded
here; the run below uses the same project folder with only `model.name` pointed
at a local model of the same architecture (a few layers, a tiny hidden size) and
a locally built Qwen2Tokenizer carrying the ChatML template (chat_fixtures.py),
and the counts cut down so it takes seconds. Its figures mean nothing: it checks
the wiring, and that the teacher's prompts hold the explanations and the
student's do not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.project.loader import load_project
from engine.project.sources import load_inputs
from engine.project.templates import render_prompts

from chat_fixtures import build_chat_model_dir, run_on_tiny_model

PROJECT = Path(__file__).resolve().parents[2] / "sample_projects" / "explanations"
EXPLANATION = "Explanation: The given analogy relates objects to their rooms."


def test_the_shipped_project_is_the_papers_hypothesis_2_on_qwen_with_lora():
    project = load_project(PROJECT)
    assert project.model.name == "Qwen/Qwen2.5-0.5B-Instruct" and project.model.chat_template
    assert project.distill.lora.r > 0 and project.distill.lora.target_modules == ["all-linear"]
    assert project.eval.metrics[0] == "rouge_l" and project.eval.reference == "label"
    # One template for both: the student's prompt is the teacher's without the explanations (student template B).
    assert project.teacher.template == project.student.template
    assert project.teacher.vars == {"explanations": True} and project.student.vars == {"explanations": False}
    assert not project.teacher.system and not project.student.system
    rows = [json.loads(line) for line in (PROJECT / "instances.jsonl").read_text().splitlines()]
    assert len(rows) == len({row["input"] for row in rows}) == project.inputs.count + project.eval.count == 60
    assert all(row["label"] == row["references"][0] for row in rows)


def test_the_config_checker_passes_it(capsys, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from test_models import put_in_cache

    # `check` resolves the hub id in the local cache without reading weights: a snapshot with a config will do.
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "snapshot" / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    put_in_cache(tmp_path / "hub", "Qwen/Qwen2.5-0.5B-Instruct", tmp_path / "snapshot")
    assert main(["check", str(PROJECT)]) == 0
    output = capsys.readouterr().out
    assert "48 distillation inputs, 12 held out" in output and output.rstrip().endswith(": ok")


def test_the_teacher_sees_the_four_explanations_and_the_student_the_same_prompt_without_them():
    project = load_project(PROJECT)
    distill, held_out = load_inputs(project)
    for example in distill[:3] + held_out[:2]:
        teacher, student = render_prompts(project, example)
        assert teacher.count("\nExplanation: ") == 4 and teacher.count(EXPLANATION) == 4
        assert "Explanation" not in student
        assert student == "".join(line for line in teacher.splitlines(keepends=True)
                                  if not line.startswith("Explanation: "))
        for prompt in (teacher, student):
            assert prompt.startswith("Definition: Two analogies that relate objects to the associated rooms")
            assert prompt.count("Positive Example") == 2 and prompt.count("Negative Example") == 2
            assert prompt.endswith(f"Now complete the following example -\nInput: {example['input']}\nOutput:")


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory) -> Path:
    # The test's small byte-level BPE needs about one token per character: the student's prompt is about
    # 700 tokens for it (Qwen's own tokenizer needs about 200), so the window is wider than the real one.
    return build_chat_model_dir(tmp_path_factory.mktemp("tiny-qwen2"), "chatml", architecture="qwen2",
                                max_positions=4096)


def test_the_project_runs_end_to_end_on_a_tiny_qwen2(tmp_path, tiny_qwen):
    # The test tokenizer's prompts are longer than Qwen's (see tiny_qwen).
    run_dir = run_on_tiny_model(PROJECT, tmp_path, tiny_qwen, max_new_tokens=4, max_seq_len=2048)
    outputs = [json.loads(line) for line in (run_dir / "teacher" / "outputs.jsonl").read_text().splitlines()]
    assert len(outputs) == 6
    for row in outputs:
        assert row["prompt"].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                                        "<|im_start|>user\nDefinition: ")
        assert row["prompt"].count(EXPLANATION) == 4
        assert row["prompt"].endswith("\nOutput:<|im_end|>\n<|im_start|>assistant\n")

    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2
    for sample in samples:
        assert sample["label"] == sample["input"]["references"][0]

    student = run_dir / "student"
    assert (student / "adapter_config.json").exists() and (student / "merged" / "config.json").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["student_after"]) == {"rouge_l", "exact_match_normalized"}
    assert set(metrics["teacher"]) == {"rouge_l", "exact_match_normalized"}
    assert metrics["prompt_tokens"]["teacher"] > 1.5 * metrics["prompt_tokens"]["student"]
