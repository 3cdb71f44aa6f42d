"""The `system-prompt` sample project (issue 10, item 7) on a tiny random Qwen2 with Qwen 2.5's chat template.

The project distils into Qwen/Qwen2.5-0.5B-Instruct, which cannot be downloaded
here; this runs the same project folder with only `model.name` pointed at a local
model of the same architecture (Qwen2ForCausalLM, a few layers, a tiny hidden size)
and a locally built Qwen2Tokenizer carrying the ChatML template (chat_fixtures.py),
and the counts cut down so it takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.project.loader import load_project

from chat_fixtures import build_chat_model_dir, run_on_tiny_model

PROJECT = Path(__file__).resolve().parents[2] / "sample_projects" / "system-prompt"


def test_the_shipped_project_is_a_long_system_prompt_on_qwen_with_lora():
    project = load_project(PROJECT)
    assert project.model.name == "Qwen/Qwen2.5-0.5B-Instruct" and project.model.chat_template
    assert project.distill.lora.r > 0 and project.distill.lora.target_modules == ["all-linear"]
    assert project.eval.metrics == ["rouge_l"] and project.eval.reference == "teacher"
    # At least 1,000 Qwen tokens: English prose runs about 4 characters a token with Qwen 2.5's tokenizer,
    # which cannot be downloaded here; 6,000 characters leave a wide margin.
    assert len(project.teacher.system) >= 6000
    assert not project.student.system  # the student sees the question alone
    questions = (PROJECT / "questions.jsonl").read_text().splitlines()
    assert len(questions) == project.inputs.count + project.eval.count == 50


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory) -> Path:
    # The persona is about 6,100 tokens for the test's small byte-level BPE (Qwen's own needs about 1,700).
    return build_chat_model_dir(tmp_path_factory.mktemp("tiny-qwen2"), "chatml", architecture="qwen2",
                                max_positions=8192)


def test_the_project_runs_end_to_end_on_a_tiny_qwen2(tmp_path, tiny_qwen):
    run_dir = run_on_tiny_model(PROJECT, tmp_path, tiny_qwen)
    outputs = [json.loads(line) for line in (run_dir / "teacher" / "outputs.jsonl").read_text().splitlines()]
    assert len(outputs) == 6
    assert all(row["prompt"].startswith("<|im_start|>system\nYou are Marlow") for row in outputs)
    assert all(row["prompt"].endswith("<|im_end|>\n<|im_start|>assistant\n") for row in outputs)

    student = run_dir / "student"
    assert (student / "adapter_config.json").exists() and (student / "merged" / "config.json").exists()
    assert not (student / "model.safetensors").exists()  # the adapter only, beside merged/
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["student_after"]) == {"rouge_l"}
    assert metrics["prompt_tokens"]["teacher"] > 20 * metrics["prompt_tokens"]["student"]
