"""LoRA through peft (issue 10, item 3): settings, targets, the saved adapter, merged weights, stacked stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.project.loader import load_project
from engine.project.schema import LoraSettings, ModelConfig
from engine.errors import ConfigError, EngineError
from engine.models import load_model

from engine_fixtures import write_project

IDENTITY_UNSTRIPPED = 'kind = "identity"\nstrip = false'
LORA = '\n[distill.lora]\nr = 4\nalpha = 8\ntarget_modules = {targets}\nmerge = {merge}\n'


def lora_project(folder: Path, model: Path, *, merge: bool = False, targets: str = '"all-linear"',
                 tables: str = "", **overrides) -> Path:
    project = write_project(folder, model, extract=IDENTITY_UNSTRIPPED, **{"max_steps": 3, **overrides})
    with open(project / "project.toml", "a", encoding="utf-8") as file:
        file.write(LORA.format(targets=targets, merge=str(merge).lower()) + tables)
    return project


def only_run(project: Path) -> Path:
    (run_dir,) = (project / "runs").iterdir()
    return run_dir


def logits_of(model, ids=(5, 6, 7, 8)) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([list(ids)])).logits


def test_lora_settings_parse_and_are_checked(tmp_path, char_model_dir):
    project = load_project(lora_project(tmp_path / "ok", char_model_dir, targets='["q_proj", "v_proj"]'))
    assert project.distill.lora == LoraSettings(r=4, alpha=8.0, target_modules=["q_proj", "v_proj"])
    assert load_project(write_project(tmp_path / "off", char_model_dir)).distill.lora.r == 0

    bad = write_project(tmp_path / "bad", char_model_dir)
    with open(bad / "project.toml", "a", encoding="utf-8") as file:
        file.write('\n[distill.lora]\nrank = 4\n')
    with pytest.raises(ConfigError, match=r"unknown key `distill.lora.rank`; valid keys: alpha, dropout, merge, r,"):
        load_project(bad)
    out_of_range = lora_project(tmp_path / "range", char_model_dir, targets="[]")
    text = (out_of_range / "project.toml").read_text()
    (out_of_range / "project.toml").write_text(text.replace("r = 4\n", "r = 4\ndropout = 2.0\n"))
    with pytest.raises(ConfigError) as raised:
        load_project(out_of_range)
    problems = "\n".join(raised.value.problems)
    assert "`distill.lora.dropout` = 2.0: expected a number" in problems and "at most 1" in problems
    assert "`distill.lora.target_modules` is empty" in problems


def test_target_modules_that_match_nothing_fail_before_the_teacher_pass(tmp_path, char_model_dir):
    project = lora_project(tmp_path / "nothing", char_model_dir, targets='["query_key_value"]')
    assert main(["run", str(project), "--quiet"]) == 2
    events = [json.loads(line) for line in (only_run(project) / "events.jsonl").read_text().splitlines()]
    error = next(event for event in events if event["type"] == "error")["message"]
    assert "`distill.lora.target_modules` = ['query_key_value'] matches no layer of this model" in error
    assert "q_proj" in error and "all-linear" in error
    assert not any(event.get("stage") == "train" for event in events)
    assert not any(event["type"] == "progress" for event in events)  # no teacher batch ran


@pytest.fixture(scope="module")
def merged_run(tmp_path_factory, char_model_dir):
    project = lora_project(tmp_path_factory.mktemp("lora") / "tiny", char_model_dir, merge=True)
    assert main(["run", str(project), "--quiet"]) == 0
    return project, only_run(project)


def test_the_student_is_an_adapter_plus_a_merged_folder(merged_run, char_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    project, run_dir = merged_run
    student = run_dir / "student"
    assert (student / "adapter_config.json").exists() and (student / "adapter_model.safetensors").exists()
    assert not (student / "model.safetensors").exists()  # only the adapter, never a second copy of the base
    config = json.loads((student / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(Path(char_model_dir).resolve())
    assert config["r"] == 4 and config["lora_alpha"] == 8

    base = AutoModelForCausalLM.from_pretrained(char_model_dir)
    before = logits_of(base)
    adapted = PeftModel.from_pretrained(base, student)
    merged = AutoModelForCausalLM.from_pretrained(student / "merged")
    torch.testing.assert_close(logits_of(adapted), logits_of(merged), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before, logits_of(merged), atol=1e-6), "training changed nothing"
    with adapted.disable_adapter():  # the teacher: the same base with the adapter off
        torch.testing.assert_close(logits_of(adapted), before)

    loaded, tokenizer = load_model(ModelConfig(name=str(char_model_dir), device="cpu"), path=str(student))
    torch.testing.assert_close(logits_of(loaded), logits_of(merged), atol=1e-5, rtol=1e-5)
    assert tokenizer.decode(tokenizer("Input: ab").input_ids) == "Input: ab"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["answer_kl"]) == {"before", "after"}


def test_an_adapter_alone_loads_onto_its_base(tmp_path, char_model_dir):
    """Without `merged/` the engine merges the adapter onto the base it names (evaluation's path)."""
    from transformers import AutoModelForCausalLM

    project = lora_project(tmp_path / "plain", char_model_dir, merge=False, targets='["q_proj", "v_proj"]')
    assert main(["run", str(project), "--quiet"]) == 0
    student = only_run(project) / "student"
    assert not (student / "merged").exists()
    loaded, _ = load_model(ModelConfig(name="ignored-for-a-path", device="cpu"), path=str(student))
    base = AutoModelForCausalLM.from_pretrained(char_model_dir)
    assert not torch.allclose(logits_of(loaded), logits_of(base), atol=1e-6)
    names = {name for name, _ in loaded.named_modules()}
    assert not any("lora" in name for name in names), "the adapter is merged, not kept as extra layers"


def test_sequential_stages_stack_on_the_previous_students_merged_weights(tmp_path, char_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    stages = '''
[[operations]]
name = "reverse"

[[stages]]
name = "first"

[[stages]]
name = "second"
[stages.distill]
max_steps = 2
'''
    project = lora_project(tmp_path / "stacked", char_model_dir, merge=False, tables=stages)
    assert main(["run", str(project), "--quiet"]) == 0
    run_dir = only_run(project)
    first, second = (run_dir / "stages" / name / "student" for name in ("first", "second"))
    assert json.loads((second / "adapter_config.json").read_text())["base_model_name_or_path"] == str(first)

    # By hand: base + first adapter, merged; then the second adapter on top, merged.
    base = AutoModelForCausalLM.from_pretrained(char_model_dir)
    after_first = PeftModel.from_pretrained(base, first).merge_and_unload()
    expected = PeftModel.from_pretrained(after_first, second).merge_and_unload()
    loaded, _ = load_model(ModelConfig(name=str(char_model_dir), device="cpu"), path=str(second))
    torch.testing.assert_close(logits_of(loaded), logits_of(expected), atol=1e-5, rtol=1e-5)
    assert (run_dir / "student" / "adapter_config.json").exists()  # the run's student is the last stage's


def test_half_precision_on_a_cpu_is_refused_before_any_work(tmp_path, char_model_dir):
    from dataclasses import replace

    from engine.models import precision_problems

    project = load_project(write_project(tmp_path / "p", char_model_dir))
    assert precision_problems(project) == []
    with pytest.raises(EngineError, match=r"`model.dtype` = 'bfloat16' on a CPU: CPU runs stay in float32"):
        load_model(replace(project.model, dtype="bfloat16"), project.dir)
    stage = replace(project.stages[0], distill=replace(project.distill, mixed_precision="bf16"))
    problems = precision_problems(replace(project, stages=(stage,)))
    assert problems and "`distill.mixed_precision` = 'bf16' on a CPU" in problems[0]


def test_gradient_checkpointing_trains_the_same_student(tmp_path, char_model_dir):
    """Recomputing activations changes memory, not the result."""
    students = []
    for checkpointing in (False, True):
        project = write_project(tmp_path / f"gc-{checkpointing}", char_model_dir, extract=IDENTITY_UNSTRIPPED,
                                max_steps=2)
        text = (project / "project.toml").read_text()
        (project / "project.toml").write_text(text.replace("[distill]\n", f"[distill]\ngradient_checkpointing = "
                                                           f"{str(checkpointing).lower()}\n"))
        assert load_project(project).distill.gradient_checkpointing is checkpointing
        assert main(["run", str(project), "--quiet"]) == 0
        model, _ = load_model(ModelConfig(name=str(char_model_dir), device="cpu"),
                              path=str(only_run(project) / "student"))
        students.append(logits_of(model))
    torch.testing.assert_close(students[0], students[1], atol=1e-5, rtol=1e-4)


def test_a_checkpoint_holds_the_adapter_only_and_a_resume_continues_from_it(tmp_path, char_model_dir):
    from safetensors import safe_open

    from engine.runs.events import read_events
    from engine.run import new_run_dir, run
    from engine.training.train import STOP_FILE

    uninterrupted = lora_project(tmp_path / "whole", char_model_dir, max_steps=4)
    assert main(["run", str(uninterrupted), "--quiet"]) == 0
    reference = {event["step"]: event["loss"] for event in read_events(only_run(uninterrupted) / "events.jsonl")
                 if event["type"] == "train"}

    project = load_project(lora_project(tmp_path / "stopped", char_model_dir, max_steps=4))
    run_dir = new_run_dir(project)

    def stop_after_step_two(event):
        if event["type"] == "train" and event["step"] >= 2:
            (run_dir / STOP_FILE).touch()

    assert run(project, run_dir, listeners=[stop_after_step_two]) is None
    checkpoint = run_dir / "checkpoints" / "step-2"
    with safe_open(str(checkpoint / "model.safetensors"), framework="pt") as stored:
        names = list(stored.keys())
    assert names and all(".lora_A." in name or ".lora_B." in name for name in names)  # no frozen base weights
    base_bytes = sum(path.stat().st_size for path in Path(char_model_dir).glob("*.safetensors"))
    assert (checkpoint / "model.safetensors").stat().st_size < base_bytes / 4

    stopped_lines = len(read_events(run_dir / "events.jsonl"))
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    resumed = read_events(run_dir / "events.jsonl")[stopped_lines:]
    assert any(event.get("message") == "resumed from step-2" for event in resumed)
    losses = {event["step"]: event["loss"] for event in resumed if event["type"] == "train"}
    assert list(losses) == [3, 4]
    for step, loss in losses.items():  # the adapter and its optimizer state came back: the same steps follow
        assert loss == pytest.approx(reference[step], abs=1e-4)


def test_a_damaged_adapter_checkpoint_is_not_loaded(tmp_path, char_model_dir):
    """Loading is not strict (the base is not in the file), so a checkpoint missing adapter tensors is refused."""
    from safetensors.torch import load_file, save_file

    from engine.runs.events import read_events
    from engine.run import new_run_dir, run
    from engine.training.train import STOP_FILE

    project = load_project(lora_project(tmp_path / "damaged", char_model_dir, max_steps=3))
    run_dir = new_run_dir(project)

    def stop_after_step_one(event):
        if event["type"] == "train":
            (run_dir / STOP_FILE).touch()

    assert run(project, run_dir, listeners=[stop_after_step_one]) is None
    checkpoint = run_dir / "checkpoints" / "step-1"
    tensors = load_file(checkpoint / "model.safetensors")
    save_file(dict(list(tensors.items())[1:]), checkpoint / "model.safetensors")  # one adapter tensor lost
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    state["files"]["model.safetensors"] = (checkpoint / "model.safetensors").stat().st_size  # sizes agree
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))

    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    messages = [event.get("message", "") for event in read_events(run_dir / "events.jsonl")]
    assert any("checkpoint step-1 is damaged" in message and "lacks 1 of its" in message for message in messages)
    assert not any(message == "resumed from step-1" for message in messages)


def test_an_adapter_on_the_embedded_model_names_it_portably(tmp_path):
    """`toy-base` is written as `toy-base`, not as this machine's path to the package; the engine resolves it."""
    project = lora_project(tmp_path / "toy", "toy-base", max_steps=1, count=4, eval_count=1)
    assert main(["run", str(project), "--quiet"]) == 0
    student = only_run(project) / "student"
    assert json.loads((student / "adapter_config.json").read_text())["base_model_name_or_path"] == "toy-base"
    loaded, _ = load_model(ModelConfig(name="toy-base", device="cpu"), path=str(student))
    base, _ = load_model(ModelConfig(name="toy-base", device="cpu"))
    assert not torch.allclose(logits_of(loaded), logits_of(base), atol=1e-7)
