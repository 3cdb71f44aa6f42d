"""End to end through the CLI: run folder, events, student, teacher cache, stop/resume, eval, preview."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.runs.events import read_events
from engine.run import RUN_FILES
from engine.training.train import STOP_FILE

from engine_fixtures import write_project

# strip = false: the random model's greedy outputs are often blanks, still an answer to measure KL on.
IDENTITY_UNSTRIPPED = 'kind = "identity"\nstrip = false'
MAX_STEPS = 6


def only_run(project: Path) -> Path:
    (run_dir,) = (project / "runs").iterdir()
    return run_dir


def runs_of(project: Path) -> list[Path]:
    return sorted((project / "runs").iterdir())


@pytest.fixture(scope="module")
def finished(tmp_path_factory, char_model_dir):
    """One complete CLI run of a tiny project (shared by the checks below)."""
    project = write_project(tmp_path_factory.mktemp("e2e") / "tiny", char_model_dir, max_steps=MAX_STEPS,
                            extract=IDENTITY_UNSTRIPPED)
    assert main(["run", str(project), "--quiet"]) == 0
    return project, only_run(project)


def test_run_folder_holds_exactly_the_expected_files(finished):
    _, run_dir = finished
    assert {path.name for path in run_dir.iterdir()} == set(RUN_FILES)
    assert set(RUN_FILES) == {"project.toml", "events.jsonl", "teacher", "checkpoints", "student", "metrics.json",
                              "samples.jsonl"}
    assert (run_dir / "teacher" / "key.json").exists()


def test_student_loads_with_from_pretrained(finished):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, run_dir = finished
    model = AutoModelForCausalLM.from_pretrained(run_dir / "student")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "student")
    ids = tokenizer("Input: abc\nOutput: ").input_ids
    assert tokenizer.decode(ids) == "Input: abc\nOutput: "
    logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tokenizer))
    assert torch.isfinite(logits).all()


def test_every_trainable_parameter_changed(finished, char_model_dir):
    from transformers import AutoModelForCausalLM

    _, run_dir = finished
    base = dict(AutoModelForCausalLM.from_pretrained(char_model_dir).named_parameters())
    student = dict(AutoModelForCausalLM.from_pretrained(run_dir / "student").named_parameters())
    assert base.keys() == student.keys()
    unchanged = [name for name, parameter in student.items()
                 if parameter.requires_grad and torch.equal(parameter, base[name])]
    assert unchanged == []


def test_metrics_and_samples(finished):
    _, run_dir = finished
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for which in ("teacher", "student_before", "student_after"):
        assert set(metrics[which]) == {"exact_match", "rouge_l"}
        assert all(0 <= value <= 1 for value in metrics[which].values())
    prompt_tokens = metrics["prompt_tokens"]
    assert set(prompt_tokens) == {"teacher", "student", "ratio"}
    # The char tokenizer counts characters: "Reverse the letters.\n" is 21 more than the student prompt.
    assert prompt_tokens["teacher"] == pytest.approx(prompt_tokens["student"] + 21, abs=0.01)
    assert prompt_tokens["ratio"] == pytest.approx(prompt_tokens["teacher"] / prompt_tokens["student"], abs=0.01)
    assert metrics["count"] == 3
    assert metrics["answer_kl"]["before"] > 0 and metrics["answer_kl"]["after"] > 0
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3
    assert [sample["index"] for sample in samples] == [0, 1, 2]
    for sample in samples:
        assert sample["label"] == sample["input"]["input"][::-1]
        assert sample["teacher"]["prompt"] == f"Reverse the letters.\nInput: {sample['input']['input']}\nOutput: "
        assert sample["student_after"]["prompt"] == f"Input: {sample['input']['input']}\nOutput: "


def test_events_in_order_with_finite_losses(finished):
    project, run_dir = finished
    events = read_events(run_dir / "events.jsonl")
    types = [event["type"] for event in events]
    first = {kind: types.index(kind) for kind in ("status", "progress", "train", "eval", "done")}
    assert first["status"] < first["progress"] < first["train"] < first["eval"] < first["done"]
    assert types[-1] == "done" and types.count("done") == 1
    assert events[-1]["status"] == "completed"
    assert events[0]["project_dir"] == str(project.resolve())
    assert any(event["type"] == "status" and event.get("cache") == "miss" for event in events)
    teacher_progress = [event for event in events if event["type"] == "progress" and event["stage"] == "teacher"]
    assert teacher_progress[-1]["unit"] == "inputs" and teacher_progress[-1]["step"] == teacher_progress[-1]["total_steps"] == 8
    train = [event for event in events if event["type"] == "train"]
    assert [event["step"] for event in train] == list(range(1, MAX_STEPS + 1))
    assert all(math.isfinite(event["loss"]) and event["loss"] > 0 for event in train)
    assert all(event["total_steps"] == MAX_STEPS for event in train)
    assert [event["which"] for event in events if event["type"] == "eval"] == ["teacher", "student_before", "student_after"]
    assert all(event["time"] >= earlier["time"] for earlier, event in zip(events, events[1:]))


def test_second_run_reuses_the_teacher_cache(finished):
    project, first_run = finished
    assert main(["run", str(project), "--quiet"]) == 0
    second_run = [run for run in runs_of(project) if run != first_run][0]
    events = read_events(second_run / "events.jsonl")
    hits = [event for event in events if event["type"] == "status" and event.get("cache") is not None]
    assert [event["cache"] for event in hits] == ["hit"]
    assert hits[0]["source"] == str(first_run / "teacher")
    assert not [event for event in events if event["type"] == "progress" and event["stage"] == "teacher"]
    assert (second_run / "teacher" / "labels.pt").read_bytes() == (first_run / "teacher" / "labels.pt").read_bytes()
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"
    # Same teacher labels, same seed: the same training.
    losses = [[event["loss"] for event in read_events(run / "events.jsonl") if event["type"] == "train"]
              for run in (first_run, second_run)]
    assert losses[0] == losses[1]


def test_reevaluate_a_finished_run(finished, tmp_path, capsys):
    import shutil

    # A copy, so the shared run's events stay as the run wrote them.
    run_dir = shutil.copytree(finished[1], tmp_path / finished[1].name)
    before = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").unlink()
    assert main(["eval", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "student_after" in out and "answer-token KL" in out
    after = json.loads((run_dir / "metrics.json").read_text())
    for key in ("teacher", "student_before", "student_after", "prompt_tokens", "answer_kl", "count"):
        assert after[key] == before[key], key
    assert read_events(run_dir / "events.jsonl")[-1]["type"] == "done"


def test_preview_prints_prompts_and_answers(tmp_path, char_model_dir, capsys):
    project = write_project(tmp_path / "preview", char_model_dir, extract=IDENTITY_UNSTRIPPED)
    assert main(["preview", str(project), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- teacher prompt (") == 2 and out.count("--- student prompt (") == 2
    assert out.count("Reverse the letters.\nInput: ") == 2
    assert out.count("--- extracted answer: ") == 2
    assert "(the extractor found no answer)" not in out
    assert out.count("[no match: label ") + out.count("[match]") == 2
    assert not (project / "runs").exists()  # previews write nothing


def test_stop_then_resume(tmp_path, char_model_dir, finished, capsys):
    from engine.project.loader import load_project
    from engine.run import new_run_dir, run

    project_dir = write_project(tmp_path / "resume", char_model_dir, max_steps=MAX_STEPS, extract=IDENTITY_UNSTRIPPED)
    project = load_project(project_dir)
    run_dir = new_run_dir(project)

    def stop_after_step_two(event):
        if event["type"] == "train" and event["step"] >= 2:
            (run_dir / STOP_FILE).touch()

    assert run(project, run_dir, listeners=[stop_after_step_two]) is None
    events = read_events(run_dir / "events.jsonl")
    assert events[-1]["type"] == "done" and events[-1]["status"] == "stopped"
    checkpoints = [event for event in events if event["type"] == "checkpoint"]
    assert [event["step"] for event in checkpoints] == [2]
    assert (run_dir / "checkpoints" / "step-2" / "trainer_state.json").exists()
    assert not (run_dir / STOP_FILE).exists()
    assert not (run_dir / "student").exists()
    assert main(["eval", str(run_dir)]) == 2  # nothing to evaluate yet: a clear error, not a crash
    assert "no saved student" in capsys.readouterr().err
    events = read_events(run_dir / "events.jsonl")
    stopped_lines = len(events)

    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    resumed = read_events(run_dir / "events.jsonl")[stopped_lines:]
    assert any(event["type"] == "status" and event.get("message") == "resumed from step-2" for event in resumed)
    steps = [event["step"] for event in resumed if event["type"] == "train"]
    assert steps == list(range(3, MAX_STEPS + 1))
    assert resumed[-1]["type"] == "done" and resumed[-1]["status"] == "completed"
    assert {path.name for path in run_dir.iterdir()} == set(RUN_FILES)
    # The resumed run trains exactly as the uninterrupted one did (same batches, optimizer state).
    _, uninterrupted = finished
    reference = {event["step"]: event["loss"] for event in read_events(uninterrupted / "events.jsonl")
                 if event["type"] == "train"}
    for event in resumed:
        if event["type"] == "train":
            assert event["loss"] == pytest.approx(reference[event["step"]], abs=1e-4)


def test_extractor_matching_nothing_fails_the_run_clearly(tmp_path, char_model_dir, capsys):
    project = write_project(tmp_path / "noanswer", char_model_dir,
                            extract='kind = "after_marker"\nmarker = "FINAL ANSWER IS"')
    assert main(["run", str(project), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the `after_marker` extractor found no answer in any of the 8 teacher outputs")
    assert "ctxdistill preview" in err and "Traceback" not in err
    events = read_events(only_run(project) / "events.jsonl")
    assert events[-1]["type"] == "done" and events[-1]["status"] == "failed"
    assert events[-2]["type"] == "error" and "extractor found no answer" in events[-2]["message"]


def test_prompt_longer_than_the_context_window(tmp_path, char_model_dir, capsys):
    # The char model's window is 128 tokens = 128 characters.
    project = write_project(tmp_path / "long", char_model_dir, teacher="x" * 130 + "{{ input }}")
    assert main(["run", str(project), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the teacher prompt of input #" in err
    assert "context window of 128 tokens" in err
    assert "Traceback" not in err


def test_a_project_context_window_below_the_models_is_enforced(tmp_path, char_model_dir, capsys):
    # A 60-character teacher prompt fits the model's 128 tokens, not the project's limit of 50.
    project = write_project(tmp_path / "limited", char_model_dir, teacher="x" * 60 + "{{ input }}")
    toml = project / "project.toml"
    toml.write_text(toml.read_text().replace('device = "cpu"', 'device = "cpu"\ncontext_window = 50'))
    assert main(["run", str(project), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the teacher prompt of input #" in err
    assert "the project's context window (model.context_window = 50)" in err
    assert "Traceback" not in err


def test_bpe_gpt2_project_runs_end_to_end(tmp_path, bpe_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    project = write_project(tmp_path / "bpe", bpe_model_dir, count=6, eval_count=2, max_steps=3, labels="sampled",
                            extract=IDENTITY_UNSTRIPPED)
    assert main(["run", str(project), "--quiet"]) == 0
    run_dir = only_run(project)
    assert {path.name for path in run_dir.iterdir()} == set(RUN_FILES)
    events = read_events(run_dir / "events.jsonl")
    losses = [event["loss"] for event in events if event["type"] == "train"]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    assert events[-1]["status"] == "completed"
    AutoModelForCausalLM.from_pretrained(run_dir / "student")
    assert AutoTokenizer.from_pretrained(run_dir / "student").eos_token == "<|endoftext|>"


def test_engine_imports_without_textual():
    code = ("import engine, engine.cli, engine.run, engine.training.train, engine.preview; import sys; "
            "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.') or m.startswith('ctxtui')]; "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr


def test_fewshot_inputs_run_and_reevaluate(tmp_path, char_model_dir):
    # Inputs invented by the model itself (paper 3.1); `eval` must draw the same held-out inputs again.
    project = write_project(tmp_path / "fewshot", char_model_dir, count=4, eval_count=2, max_steps=1,
                            extract=IDENTITY_UNSTRIPPED, metrics='["rouge_l"]')
    text = (project / "project.toml").read_text()
    text = text.replace('source = "python"\nfunction = "tasks:reverse_inputs"',
                        'source = "fewshot"\nfewshot_prompt = "abc\\nhgf\\nbad\\n"\nfewshot_max_new_tokens = 8')
    text = text.replace('reference = "label"', 'reference = "teacher"')
    (project / "project.toml").write_text(text)
    assert main(["run", str(project), "--quiet"]) == 0
    run_dir = only_run(project)
    inputs = [json.loads(line)["input"] for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(inputs) == 2 and all(example["input"] for example in inputs)
    assert main(["eval", str(run_dir)]) == 0
    again = [json.loads(line)["input"] for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert again == inputs
