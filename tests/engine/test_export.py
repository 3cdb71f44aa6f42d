"""The student as a Hugging Face model folder to publish (issue 17, item 8; issue 26, item 6).

`ctxdistill export RUN_DIR DEST` writes full weights (a LoRA student merged), the
tokenizer with its chat template, generation_config.json and a filled model card;
the run itself writes the same card into `student/` (and `student/merged/`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.project.loader import project_from_toml_text
from engine.runs.model_card import LONG_TEMPLATE, model_card, template_text

from chat_fixtures import build_chat_model_dir
from engine_fixtures import PROJECT_TOML, DEFAULTS, write_project

LORA = '\n[distill.lora]\nr = 4\nalpha = 8\ntarget_modules = "all-linear"\nmerge = {merge}\n'


def chat_project(folder: Path, model: Path, lora: str = "") -> Path:
    project = write_project(folder, model, extract='kind = "identity"\nstrip = false')
    text = (project / "project.toml").read_text().replace("[model]\n", "[model]\nchat_template = true\n", 1)
    (project / "project.toml").write_text(text + lora)
    return project


def finished(project: Path) -> Path:
    assert main(["run", str(project), "--quiet"]) == 0
    (run_dir,) = (project / "runs").iterdir()
    return run_dir


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> Path:
    return build_chat_model_dir(tmp_path_factory.mktemp("chat") / "model", "chatml")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, chat_model) -> Path:
    return finished(chat_project(tmp_path_factory.mktemp("full") / "tiny", chat_model))


def logits_of(model, ids=(5, 6, 7, 8)) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([list(ids)])).logits


def assert_card(card: str, base: Path) -> None:
    assert card.startswith("---\n") and "pipeline_tag: text-generation" in card
    assert f"- base model: `{base}`" in card
    assert "Reverse the letters.\nInput: {{ input }}\nOutput: " in card  # the teacher template, short: whole
    assert "- labels: hard:" in card and "- training: 4 steps" in card
    assert "| teacher |" in card and "| student_before |" in card and "| student_after |" in card
    assert "chat template" in card


def test_export_writes_a_folder_that_loads_and_generates(full_run, chat_model, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dest = tmp_path / "published"
    assert main(["export", str(full_run), str(dest)]) == 0
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer_config.json",
            "README.md"} <= {path.name for path in dest.iterdir()}
    model = AutoModelForCausalLM.from_pretrained(dest)
    tokenizer = AutoTokenizer.from_pretrained(dest)
    torch.testing.assert_close(logits_of(model), logits_of(AutoModelForCausalLM.from_pretrained(full_run / "student")))
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "abc"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    output = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert output.shape[1] > prompt["input_ids"].shape[1]
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn in json.loads((dest / "generation_config.json").read_text())["eos_token_id"]
    metrics = json.loads((full_run / "metrics.json").read_text())
    card = (dest / "README.md").read_text()
    assert_card(card, chat_model)
    assert f"| student_after | {metrics['student_after']['exact_match']:.3f} |" in card
    assert "library_name: transformers" in card
    assert (full_run / "student" / "README.md").read_text() == card  # the run wrote the same card


def test_export_refuses_a_non_empty_dest_and_an_unfinished_run(full_run, tmp_path, capsys):
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    assert main(["export", str(full_run), str(dest)]) == 2
    error = capsys.readouterr().err
    assert error == f"error: {dest}: already exists and is not empty; export into a new or empty folder\n"
    assert (dest / "notes.txt").read_text() == "mine" and len(list(dest.iterdir())) == 1

    unfinished = tmp_path / "unfinished"
    shutil.copytree(full_run, unfinished)
    (unfinished / "metrics.json").unlink()
    assert main(["export", str(unfinished), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {unfinished}: not a finished run") and error.count("\n") == 1
    assert not (tmp_path / "out").exists()
    assert main(["export", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("merge", [False, True])
def test_a_lora_student_is_a_filled_adapter_and_exports_merged(tmp_path, chat_model, merge):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir = finished(chat_project(tmp_path / "lora", chat_model, LORA.format(merge=str(merge).lower())))
    student = run_dir / "student"
    card = (student / "README.md").read_text()  # peft writes a blank template there; the run fills it
    assert_card(card, chat_model)
    assert "library_name: peft" in card and "PeftModel.from_pretrained" in card
    assert (student / "merged" / "README.md").exists() == merge
    if merge:
        assert "library_name: transformers" in (student / "merged" / "README.md").read_text()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(chat_model), student)

    dest = tmp_path / "published"
    assert main(["export", str(run_dir), str(dest)]) == 0
    assert not (dest / "adapter_config.json").exists() and (dest / "model.safetensors").exists()
    exported = AutoModelForCausalLM.from_pretrained(dest)
    torch.testing.assert_close(logits_of(exported), logits_of(adapted), atol=1e-5, rtol=1e-5)
    assert_card((dest / "README.md").read_text(), chat_model)
    assert exported.generate(input_ids=torch.tensor([[5, 6, 7]]), max_new_tokens=3, do_sample=False).shape[1] > 3


def test_a_hub_model_is_the_cards_base_model_and_a_long_template_is_hashed(tmp_path):
    long_template = "Follow these instructions. " * (LONG_TEMPLATE // 20) + "{{ input }}"
    values = {**DEFAULTS, "model": "Qwen/Qwen2.5-0.5B-Instruct", "teacher": long_template}
    project = project_from_toml_text(tmp_path, PROJECT_TOML.format(**values))
    metrics = {"teacher": {"rouge_l": 0.9}, "student_before": {"rouge_l": 0.2}, "student_after": {"rouge_l": 0.8}}
    card = model_card(project, tmp_path, metrics)
    assert "\nbase_model: Qwen/Qwen2.5-0.5B-Instruct\n" in card
    assert long_template not in card
    import hashlib

    assert hashlib.sha256(long_template.encode()).hexdigest() in card
    assert "| student_after | 0.800 |" in card
    assert template_text("student template", "Input: {{ input }}") == [
        "- student template:", "", "```jinja", "Input: {{ input }}", "```", ""]
    local = project_from_toml_text(tmp_path, PROJECT_TOML.format(**{**DEFAULTS, "model": "toy-base"}))
    assert "base_model:" not in model_card(local, tmp_path, metrics)  # the Hub takes hub ids only there


def test_a_sequential_run_card_has_every_stage_and_operation(tmp_path, char_model_dir):
    from test_operations_stages import TWO_STAGES, combined_project

    run_dir = finished(combined_project(tmp_path / "seq", char_model_dir, TWO_STAGES.format(teacher="base"), max_steps=2))
    card = (run_dir / "student" / "README.md").read_text()
    for stage in ("first", "second"):
        assert f"- labels (stage `{stage}`): hard" in card and f"- training (stage `{stage}`): " in card
        for operation in ("reverse", "copy"):
            assert f"After stage `{stage}`, operation `{operation}`:" in card
    assert "### Operation `copy`" in card and "Copy the letters." in card
    dest = tmp_path / "published"
    assert main(["export", str(run_dir), str(dest)]) == 0
    assert (dest / "README.md").read_text() == card
