"""Issue 10's "Bad input" list, through `ctxdistill run`: each is one clear message before any work starts.

"Before any work": exit status 2, the message on stderr, and in the run's events no
teacher batch, no training step and no teacher cache. LoRA target modules that match
nothing are checked the same way in test_lora.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.runs.events import read_events

from chat_fixtures import build_chat_model_dir
from engine_fixtures import write_project


def set_keys(project: Path, table: str, lines: str) -> Path:
    text = (project / "project.toml").read_text()
    (project / "project.toml").write_text(text.replace(f"[{table}]\n", f"[{table}]\n{lines}\n", 1))
    return project


def fails_before_any_work(project: Path, capsys) -> str:
    assert main(["run", str(project), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "Traceback" not in error
    for run_dir in (project / "runs").glob("*"):
        events = read_events(run_dir / "events.jsonl")
        assert not any(event["type"] in ("progress", "train", "checkpoint") for event in events)
        assert events[-1]["type"] == "done" and events[-1]["status"] == "failed"
        assert not (run_dir / "teacher" / "labels.pt").exists()
    return error


def test_a_hub_id_not_in_the_cache(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    project = write_project(tmp_path / "hub", "Qwen/Qwen2.5-0.5B-Instruct")
    error = fails_before_any_work(project, capsys)
    assert "`model.name` = 'Qwen/Qwen2.5-0.5B-Instruct': not in the local cache" in error
    assert "`hf download Qwen/Qwen2.5-0.5B-Instruct` first" in error


def test_chat_template_on_a_model_without_one(tmp_path, char_model_dir, capsys):
    project = set_keys(write_project(tmp_path / "base", char_model_dir), "model", "chat_template = true")
    error = fails_before_any_work(project, capsys)
    assert "has no chat template (a base model?); set `model.chat_template = false`" in error


@pytest.mark.parametrize("key, value", [("model.dtype", "bfloat16"), ("distill.mixed_precision", "bf16")])
def test_half_precision_on_a_cpu(tmp_path, char_model_dir, capsys, key, value):
    table, name = key.split(".")
    project = write_project(tmp_path / "bf16", char_model_dir)
    text = (project / "project.toml").read_text().replace('dtype = "float32"\n', "")  # the fixture sets it
    (project / "project.toml").write_text(text)
    set_keys(project, table, f'{name} = "{value}"')
    error = fails_before_any_work(project, capsys)
    assert f"`{key}` = '{value}' on a CPU: CPU runs stay in float32" in error
    for run_dir in (project / "runs").glob("*"):  # refused by the start-up checks, before the model loads
        assert not any(event["stage"] == "teacher" for event in read_events(run_dir / "events.jsonl"))


def test_a_prompt_over_the_context_window_after_the_chat_template(tmp_path, capsys):
    model = build_chat_model_dir(tmp_path / "short-window", "chatml", max_positions=96)
    project = write_project(tmp_path / "long", model, teacher="Reverse the letters of: {{ input }}")
    set_keys(project, "model", "chat_template = true")
    # The system message alone fits; with the template's turns and generate.max_new_tokens it does not.
    set_keys(project, "teacher", 'system = "You reverse words and answer with the letters only."')
    text = (project / "project.toml").read_text().replace('stop = ["\\n"]', "stop = []")
    (project / "project.toml").write_text(text.replace("max_new_tokens = 6", "max_new_tokens = 40"))
    error = fails_before_any_work(project, capsys)
    assert "the teacher prompt of input #" in error and "exceeds the model's context window of 96 tokens" in error
