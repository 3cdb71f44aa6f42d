"""Fixtures for the UI tests: a tiny project on a tiny random model, scripted run folders."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TASKS_PY = '''
def reverse_inputs(rng, n):
    letters = "abcdefgh"
    rows = []
    for _ in range(n):
        word = "".join(rng.choice(letters) for _ in range(rng.randint(3, 6)))
        rows.append({"input": word, "label": word[::-1]})
    return rows
'''

PROJECT_TOML = '''# A tiny test project (this comment must survive a save)
name = "demo"

[model]
name = "{model}"   # a folder with a random toy model
dtype = "float32"
device = "cpu"

[inputs]
source = "python"
function = "tasks:reverse_inputs"
count = {count}
seed = 0

[teacher]
# the long prompt
template = """Reverse the letters.
Input: {{{{ input }}}}
Output: """

[student]
template = """Input: {{{{ input }}}}
Output: """

[extract]
kind = "identity"

[generate]
max_new_tokens = 8
temperature = 1.0
stop = ["\\n"]

[distill]
labels = "hard"
max_steps = {max_steps}
batch_size = 4
learning_rate = 1e-3
num_processes = 1

[eval]
count = 4
metrics = ["exact_match", "rouge_l"]
reference = "label"
'''


@pytest.fixture(scope="session")
def toy_model_dir(tmp_path_factory) -> Path:
    from engine.toy.model import build_toy_model
    from engine.toy.tokenizer import build_char_tokenizer

    import torch

    folder = tmp_path_factory.mktemp("toy-model")
    torch.manual_seed(0)  # the same random weights every session: snapshots see the same outputs
    tokenizer = build_char_tokenizer()
    model = build_toy_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_project(folder: Path, model: str = "toy-base", count: int = 16, max_steps: int = 4,
                  temperature: float = 1.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = PROJECT_TOML.format(model=model, count=count, max_steps=max_steps)
    (folder / "project.toml").write_text(text.replace("temperature = 1.0", f"temperature = {temperature}"))
    (folder / "tasks.py").write_text(TASKS_PY)
    return folder


@pytest.fixture
def project_dir(tmp_path, toy_model_dir) -> Path:
    return write_project(tmp_path / "demo", model=str(toy_model_dir))


METRICS = {
    "teacher": {"exact_match": 0.75, "rouge_l": 0.9},
    "student_before": {"exact_match": 0.25, "rouge_l": 0.5},
    "student_after": {"exact_match": 0.5, "rouge_l": 0.8},
    "prompt_tokens": {"teacher": 40.0, "student": 16.0, "ratio": 2.5},
    "answer_kl": {"before": 1.2, "after": 0.4},
    "count": 4,
}


def _sample(index, word, teacher, before, after):
    label = word[::-1]

    def part(output):
        return {"prompt": "p", "output": output, "answer": output, "correct": output == label}

    return {"index": index, "input": {"input": word, "label": label}, "label": label, "reference": label,
            "teacher": part(teacher), "student_before": part(before), "student_after": part(after)}


SAMPLES = [
    _sample(0, "abc", "cba", "abc", "cba"),      # improved
    _sample(1, "dog", "god", "god", "dgo"),      # regressed, differs from teacher
    _sample(2, "hen", "neh", "neh", "neh"),      # right all along
    _sample(3, "bead", "daeb", "bade", "dbae"),  # wrong before and after
]


def scripted_events(total_steps: int = 10, done: bool = True, pid: int | None = None,
                    start: float | None = None) -> list[dict]:
    start = time.time() - 30 if start is None else start
    events = [{"type": "status", "time": start, "stage": "setup", "message": "loading model", "pid": pid,
               "command": "ctxdistill run demo"},
              {"type": "status", "time": start + 1, "stage": "teacher", "message": "sampling the teacher",
               "cache": "miss"}]
    for step in range(1, total_steps + 1):
        events.append({"type": "train", "time": start + 1 + step, "stage": "train", "step": step,
                       "total_steps": total_steps, "loss": 3.0 / step, "lr": 1e-3 * (1 - step / (total_steps + 1)),
                       "tokens_per_s": 1234.0, "memory_mb": 321.0, "elapsed_s": float(step),
                       "eta_s": float(total_steps - step), "epoch": 0})
    if done:
        for which in ("teacher", "student_before", "student_after"):
            events.append({"type": "eval", "time": start + 20, "stage": "eval", "which": which,
                           "metrics": METRICS[which]})
        events.append({"type": "done", "time": start + 21, "stage": "done", "status": "completed"})
    return events


def write_run(project: Path, name: str = "20260101T000000Z-demo", events=None, results: bool = True,
              config_note: str = "") -> Path:
    run_dir = project / "runs" / name
    run_dir.mkdir(parents=True)
    events = scripted_events() if events is None else events
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run_dir / "project.toml").write_text((project / "project.toml").read_text() + config_note)
    if results:
        (run_dir / "metrics.json").write_text(json.dumps(METRICS))
        (run_dir / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SAMPLES))
    return run_dir


# Async tests run on asyncio through anyio's pytest plugin (no pytest-asyncio here).
@pytest.fixture
def anyio_backend():
    return "asyncio"



# A combined run (issue 7): two operations, two stages; "upper" is overwritten by stage "lower".
COMBINED_PROJECT_TAIL = '''
[[operations]]
name = "upper"
[operations.teacher]
template = """Write the letters in capitals.
Input: {{ input }}
Output: """

[[operations]]
name = "lower"
weight = 2.0

[[stages]]
name = "first"
operations = ["upper"]

[[stages]]
name = "second"
operations = ["lower"]
'''


def _op_metrics(teacher, before, after, kl_after):
    return {"teacher": {"exact_match": teacher}, "student_before": {"exact_match": before},
            "student_after": {"exact_match": after}, "answer_kl": {"before": 2.0, "after": kl_after},
            "prompt_tokens": {"teacher": 30.0, "student": 12.0, "ratio": 2.5}, "count": 2}


COMBINED_METRICS = {
    "combined": True,
    "stages": {
        "first": {"operations": {"upper": _op_metrics(0.9, 0.1, 0.8, 0.3)}},
        "second": {"operations": {"upper": _op_metrics(0.9, 0.8, 0.4, 0.9),
                                  "lower": _op_metrics(0.7, 0.0, 0.6, 0.5)}},
    },
    "matrix": {"first": {"upper": {"exact_match": 0.8}},
               "second": {"upper": {"exact_match": 0.4}, "lower": {"exact_match": 0.6}}},
}


def combined_samples() -> list[dict]:
    rows = []
    for stage, operation, word in [("first", "upper", "abc"), ("second", "upper", "dog"),
                                   ("second", "lower", "hen"), ("second", "lower", "bead")]:
        row = _sample(len(rows), word, word[::-1], word, word[::-1])
        rows.append({**row, "stage_name": stage, "operation": operation})
    return rows


def combined_events(start: float | None = None, upto: int | None = None) -> list[dict]:
    """Setup, then per stage: a teacher pass per operation (inputs counted), training, evaluation."""
    start = time.time() - 60 if start is None else start
    clock = iter(range(1000))
    events = [{"type": "status", "time": start, "stage": "setup", "message": "loading model", "pid": None,
               "command": "ctxdistill run demo", "stage_name": None, "operation": None}]
    for stage, operations in (("first", ["upper"]), ("second", ["lower"])):
        for operation in operations:
            events.append({"type": "status", "time": start + next(clock), "stage": "teacher",
                           "message": f"teacher generating 8 outputs ({operation})", "cache": "miss",
                           "stage_name": stage, "operation": operation})
            for done in (4, 8):
                events.append({"type": "progress", "time": start + next(clock), "stage": "teacher", "step": done,
                               "total_steps": 8, "elapsed_s": 1.0, "eta_s": 1.0, "unit": "inputs",
                               "stage_name": stage, "operation": operation})
        for step in (1, 2, 3):
            events.append({"type": "train", "time": start + next(clock), "stage": "train", "step": step,
                           "total_steps": 3, "loss": 1.0 / step, "kl": 0.5 / step, "lr": 1e-3, "tokens_per_s": 100.0,
                           "memory_mb": 10.0, "elapsed_s": float(step), "eta_s": 3.0 - step,
                           "stage_name": stage, "operation": None})
        events.append({"type": "status", "time": start + next(clock), "stage": "eval", "message": "evaluating",
                       "stage_name": stage, "operation": operations[0]})
    events.append({"type": "done", "time": start + next(clock), "stage": "done", "status": "completed",
                   "stage_name": "second", "operation": None})
    return events if upto is None else events[:upto]


def write_combined_project(folder: Path, model: str) -> Path:
    write_project(folder, model=model)
    with open(folder / "project.toml", "a") as file:
        file.write(COMBINED_PROJECT_TAIL)
    return folder


def write_combined_run(project: Path, name: str = "20260101T000000Z-demo", events=None) -> Path:
    run_dir = project / "runs" / name
    run_dir.mkdir(parents=True)
    events = combined_events() if events is None else events
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (run_dir / "project.toml").write_text((project / "project.toml").read_text())
    if events and events[-1]["type"] == "done":
        (run_dir / "metrics.json").write_text(json.dumps(COMBINED_METRICS))
        (run_dir / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in combined_samples()))
    return run_dir
