"""Operations and stages (paper 2.3): simultaneous, sequential and recursive distillation, teacher ensembles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.training.batches import BatchPlan, batch_shares
from engine.cli import main
from engine.project.loader import load_project, project_from_toml_text
from engine.project.writer import project_to_toml
from engine.errors import ConfigError
from engine.runs.events import read_events
from engine.training.losses import SparseTargets, soft_cross_entropy
from engine.training.train import STOP_FILE

from engine_fixtures import write_project

IDENTITY_UNSTRIPPED = 'kind = "identity"\nstrip = false'

OPERATIONS = '''
[[operations]]
name = "reverse"

[[operations]]
name = "copy"
weight = 3
[operations.teacher]
template = """Copy the letters.
Input: {{ input }}
Output: """
'''

TWO_STAGES = OPERATIONS + '''
[[stages]]
name = "first"
operations = ["reverse", "copy"]

[[stages]]
name = "second"
operations = ["copy"]
teacher = "{teacher}"
[stages.distill]
max_steps = 3
'''


def combined_project(folder: Path, model: Path, tables: str, **overrides) -> Path:
    project = write_project(folder, model, extract=IDENTITY_UNSTRIPPED, **overrides)
    with open(project / "project.toml", "a", encoding="utf-8") as file:
        file.write(tables)
    return project


def only_run(project: Path) -> Path:
    (run_dir,) = (project / "runs").iterdir()
    return run_dir


# --- the schema ------------------------------------------------------------------

def test_operations_inherit_the_top_level_key_by_key(tmp_path, char_model_dir):
    project = load_project(combined_project(tmp_path / "p", char_model_dir, OPERATIONS + '''
[operations.inputs]
count = 5
'''))
    reverse, copy = project.operations
    assert project.combined and [stage.name for stage in project.stages] == ["main"]
    assert project.stages[0].operations == ["reverse", "copy"]
    assert reverse.teacher == project.teacher and reverse.weight == 1.0
    assert copy.teacher.template.startswith("Copy the letters.") and copy.weight == 3.0
    assert copy.inputs.count == 5 and copy.inputs.function == project.inputs.function  # one key overridden, the rest inherited
    assert copy.student == project.student and copy.extract == project.extract


def test_a_project_without_operations_is_one_implicit_operation(tmp_path, char_model_dir):
    project = load_project(write_project(tmp_path / "p", char_model_dir))
    (operation,) = project.operations
    assert not project.combined and operation.name == "main"
    assert (operation.inputs, operation.teacher, operation.student, operation.extract) == \
        (project.inputs, project.teacher, project.student, project.extract)
    assert "operations" not in project_to_toml(project) and "stages" not in project_to_toml(project)


def test_the_frozen_project_of_a_combined_run_loads_to_the_same_project(tmp_path, char_model_dir):
    folder = combined_project(tmp_path / "p", char_model_dir, TWO_STAGES.format(teacher="previous"))
    project = load_project(folder)
    again = project_from_toml_text(folder, project_to_toml(project))
    assert again == project


def test_every_combination_mistake_is_reported_at_once(tmp_path, char_model_dir):
    folder = combined_project(tmp_path / "bad", char_model_dir, '''
[[operations]]
name = "reverse"
weight = 0

[[operations]]
name = "reverse"

[[operations]]
name = "big"
[operations.teacher]
ensemble = 4
vars = { examples = ["a", "b", "c"] }
template = """{% for ex in examples | sample(2) %}{{ ex }}{% endfor %}{{ input }}"""

[[stages]]
name = "one"
operations = ["revers"]
teacher = "previous"
''')
    with pytest.raises(ConfigError) as raised:
        load_project(folder)
    problems = "\n".join(raised.value.problems)
    assert "`operations.reverse.weight` = 0.0: expected a positive number" in problems
    assert "`operations[1].name` = 'reverse': two operations have this name" in problems
    assert "`operations.big.teacher.ensemble` = 4 is larger than the examples allow: 3 examples give only 3" in problems
    assert "`stages.one.operations` names 'revers', which is not an operation; did you mean 'reverse'?" in problems
    assert "`stages.one.teacher` = 'previous' on the first stage" in problems
    assert len(raised.value.problems) == 5


def test_a_bad_project_writes_no_run_folder(tmp_path, char_model_dir, capsys):
    folder = combined_project(tmp_path / "bad", char_model_dir, '[[stages]]\nname = "s"\noperations = ["nope"]\n')
    assert main(["run", str(folder), "--quiet"]) == 2
    assert "not an operation" in capsys.readouterr().err
    assert not (folder / "runs").exists()


def test_an_ensemble_whose_prompts_differ_on_some_inputs_only_is_run(tmp_path, char_model_dir):
    """Drawn from the input's own letters: "aa" gives three equal prompts, which only weight that draw
    three times (issue 24 item 3); a template that never varies is refused by `check` (bad_inputs)."""
    from engine.models import load_tokenizer
    from engine.teacher.teacher_pass import teacher_prompts

    folder = combined_project(tmp_path / "p", char_model_dir, '''
[[operations]]
name = "few"
[operations.teacher]
ensemble = 3
template = """{% for ex in input | list | sample(1) %}{{ ex }}{% endfor %}"""
''')
    project = load_project(folder).for_operation("few")
    tokenizer = load_tokenizer(project.model, project.dir)
    assert len(set(teacher_prompts(project, tokenizer, {"input": "abcdefgh"}))) == 3
    assert len(set(teacher_prompts(project, tokenizer, {"input": "aa"}))) == 1


# --- simultaneous distillation: batches and loss ----------------------------------

def test_batches_hold_the_operations_in_their_weight_ratio():
    assert batch_shares(16, [1.0, 3.0]) == [4, 12]
    assert batch_shares(10, [1.0, 1.0, 1.0]) == [4, 3, 3]
    plan = BatchPlan(sizes=[10, 30], weights=[1.0, 3.0], global_batch=8, seed=0)
    for step in range(20):
        batch = plan.micro_batch(step)
        assert sum(index < 10 for index in batch) == 2 and sum(index >= 10 for index in batch) == 6
    # Each operation walks through all its examples before repeating one.
    seen = [index for step in range(5) for index in plan.micro_batch(step) if index < 10]
    assert sorted(seen) == list(range(10))
    # Two processes split every batch without overlap.
    assert sorted(plan.micro_batch(3, 0, 2) + plan.micro_batch(3, 1, 2)) == sorted(plan.micro_batch(3))


def test_one_operation_batches_are_the_single_recipe_batches():
    # The formula of the single-operation recipe, written out: a resumed old run sees the same batches.
    size, batch, seed = 13, 4, 7
    plan = BatchPlan([size], [1.0], batch, seed)
    for step in range(10):
        per_epoch = max(1, size // batch)
        epoch, position = divmod(step, per_epoch)
        order = torch.randperm(size, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        assert plan.micro_batch(step) == [order[(position * batch + i) % size] for i in range(batch)]


def test_the_loss_is_the_weighted_sum_of_each_operations_mean():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    positions = torch.tensor([[0, 1], [0, 2], [1, 3], [2, 0], [2, 1]])
    label_ids = torch.randint(0, 11, (5, 2))
    label_probs = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75], [1.0, 0.0], [0.6, 0.4]])
    operations = torch.tensor([0, 0, 1, 1, 1])
    targets = SparseTargets(positions, label_ids, label_probs, operations)
    loss, _ = soft_cross_entropy(logits, targets, torch.tensor([1.0, 3.0]))

    by_hand = []
    for p in range(5):
        row, column = positions[p].tolist()
        logprobs = torch.log_softmax(logits[row, column], -1)
        by_hand.append(-sum(label_probs[p, k] * logprobs[label_ids[p, k]] for k in range(2)))
    expected = (1.0 * (by_hand[0] + by_hand[1]) / 2 + 3.0 * (by_hand[2] + by_hand[3] + by_hand[4]) / 3) / 4.0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # One operation: the plain mean over positions, as before.
    single, _ = soft_cross_entropy(logits, SparseTargets(positions, label_ids, label_probs))
    assert single.item() == pytest.approx(torch.stack(by_hand).mean().item(), rel=1e-6)


# --- teacher ensembles -----------------------------------------------------------------

# Three teachers, each shown 2 of 4 examples drawn per input and prompt.
ENSEMBLE = '''
[[operations]]
name = "ens"
[operations.teacher]
ensemble = 3
vars = { examples = ["ab>ba", "cd>dc", "ef>fe", "gh>hg"] }
template = """{% for ex in examples | sample(2) %}{{ ex }}
{% endfor %}{{ input }}>"""
'''


def test_ensemble_labels_are_the_average_of_the_renderings_distributions(tmp_path, char_model_dir):
    from engine.models import load_model
    from engine.teacher.teacher_pass import run_teacher, teacher_prompts

    folder = combined_project(tmp_path / "ens", char_model_dir, ENSEMBLE, labels="topk")
    project = load_project(folder).for_operation("ens")
    model, tokenizer = load_model(project.model, project.dir)
    vocab = model.config.vocab_size
    project = project.__class__(**{**project.__dict__, "distill": project.distill.__class__(
        **{**project.distill.__dict__, "top_k": vocab})})
    inputs = [{"input": "abc"}, {"input": "hgfe"}]
    records = run_teacher(project, model, tokenizer, inputs)
    for example, record in zip(inputs, records):
        prompts = teacher_prompts(project, tokenizer, example)
        assert len(set(prompts)) == 3 and record.prompt == prompts[0]  # sampled from the first rendering
        dense = []
        for prompt in prompts:
            prompt_ids = tokenizer(prompt).input_ids
            with torch.no_grad():
                logits = model(torch.tensor([prompt_ids + record.output_ids])).logits[0]
            dense.append(torch.softmax(logits[len(prompt_ids) - 1: len(prompt_ids) - 1 + len(record.output_ids)], -1))
        expected = torch.stack(dense).mean(0)
        for position in range(len(record.output_ids)):
            start, end = record.label_offsets[position], record.label_offsets[position + 1]
            got = torch.zeros(vocab).index_put_((record.label_ids[start:end],), record.label_probs[start:end])
            assert torch.allclose(got, expected[position], atol=1e-5)


def test_an_ensemble_run_scores_each_single_teacher(tmp_path, char_model_dir, capsys):
    import json

    from engine.evaluation.evaluate import decode
    from engine.models import load_model
    from engine.evaluation.stage_eval import _score

    folder = combined_project(tmp_path / "ens", char_model_dir, ENSEMBLE, max_steps=2)
    assert main(["run", str(folder)]) == 0
    figures = json.loads((only_run(folder) / "metrics.json").read_text())["stages"]["main"]["operations"]["ens"]
    singles = figures["teacher_singles"]
    assert len(singles) == 3 and figures["teacher_decoding"] == "ensemble-greedy"
    for metric, value in figures["teacher_single_mean"].items():
        assert value == pytest.approx(sum(single[metric] for single in singles) / 3, abs=1e-4)
    # Each single score is that prompt's own greedy decode, re-scored here independently.
    project = load_project(folder).for_operation("ens")
    model, tokenizer = load_model(project.model, project.dir)
    from engine.project.sources import load_inputs
    held_out = load_inputs(project)[1]
    references = [example.get("label") for example in held_out]
    for rendering in (1, 2):
        decoded = decode(project, model, tokenizer, held_out, "teacher", rendering=rendering)
        assert decoded[0].prompt != decode(project, model, tokenizer, held_out[:1], "teacher")[0].prompt
        assert _score(project, decoded, references, held_out) == singles[rendering]
    assert _score(project, decode(project, model, tokenizer, held_out, "teacher"), references, held_out) == singles[0]
    # The teacher row is the ensemble's greedy decode from the prompts' mean distribution (B.5).
    from engine.evaluation.ensemble_decode import decode_ensemble
    from engine.teacher.extractors import Extractor
    ensemble = decode_ensemble(project, model, tokenizer, held_out, Extractor(project.extract, project.dir))
    assert _score(project, ensemble, references, held_out) == figures["teacher"]
    assert "single teachers (" in capsys.readouterr().out


def test_the_sample_filter_is_reproducible_per_input_and_rendering(tmp_path, char_model_dir):
    from engine.project.templates import render_teacher

    folder = combined_project(tmp_path / "p", char_model_dir, '''
[[operations]]
name = "e"
[operations.teacher]
ensemble = 2
vars = { examples = ["1", "2", "3", "4", "5", "6"] }
template = """{{ examples | sample(3) | join(",") }} {{ input }}"""
''')
    project = load_project(folder).for_operation("e")
    first = [render_teacher(project, {"input": "ab"}, index) for index in range(2)]
    assert first == [render_teacher(project, {"input": "ab"}, index) for index in range(2)]
    assert first[0] != first[1]
    assert render_teacher(project, {"input": "cd"}, 0) != first[0] or render_teacher(project, {"input": "ef"}, 0) != first[0]


# --- sequential and recursive stages, end to end ----------------------------------

@pytest.fixture(scope="module")
def two_stage_run(tmp_path_factory, char_model_dir):
    folder = combined_project(tmp_path_factory.mktemp("seq") / "seq", char_model_dir,
                              TWO_STAGES.format(teacher="base"), max_steps=4)
    assert main(["run", str(folder), "--quiet"]) == 0
    return folder, only_run(folder)


def test_a_two_stage_run_keeps_one_folder_per_stage(two_stage_run):
    _, run_dir = two_stage_run
    assert {path.name for path in run_dir.iterdir()} == {"project.toml", "events.jsonl", "stages", "student",
                                                          "metrics.json", "samples.jsonl"}
    for stage, operations in (("first", {"reverse", "copy"}), ("second", {"copy"})):
        folder = run_dir / "stages" / stage
        assert {path.name for path in (folder / "teacher").iterdir()} == operations
        assert (folder / "student" / "config.json").exists() and (folder / "metrics.json").exists()
    last = (run_dir / "stages" / "second" / "student" / "model.safetensors").read_bytes()
    assert (run_dir / "student" / "model.safetensors").read_bytes() == last


def test_the_overwrite_matrix_has_every_cell(two_stage_run):
    _, run_dir = two_stage_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["combined"] is True
    assert set(metrics["stages"]) == {"first", "second"}
    # Every operation seen so far is evaluated after every stage, the earlier one included.
    assert set(metrics["stages"]["first"]["operations"]) == {"reverse", "copy"}
    assert set(metrics["stages"]["second"]["operations"]) == {"reverse", "copy"}
    for stage in ("first", "second"):
        for operation in ("reverse", "copy"):
            figures = metrics["stages"][stage]["operations"][operation]
            assert {"teacher", "student_before", "student_after", "answer_kl", "prompt_tokens", "count"} <= set(figures)
            assert metrics["matrix"][stage][operation] == figures["student_after"]
    # The second stage starts where the first ended.
    for operation in ("reverse", "copy"):
        assert (metrics["stages"]["second"]["operations"][operation]["student_before"]
                == metrics["stages"]["first"]["operations"][operation]["student_after"])
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert {(row["stage_name"], row["operation"]) for row in rows} == {
        ("first", "reverse"), ("first", "copy"), ("second", "reverse"), ("second", "copy")}


def test_every_event_names_its_stage_and_operation(two_stage_run):
    _, run_dir = two_stage_run
    events = read_events(run_dir / "events.jsonl")
    assert all("stage_name" in event and "operation" in event for event in events)
    trained = {event["stage_name"] for event in events if event["type"] == "train"}
    assert trained == {"first", "second"}
    teacher_passes = {(event["stage_name"], event["operation"]) for event in events
                      if event["type"] == "status" and event.get("cache")}
    assert teacher_passes == {("first", "reverse"), ("first", "copy"), ("second", "copy")}


def test_the_second_stage_starts_from_the_first_students_weights(tmp_path, char_model_dir, monkeypatch):
    from safetensors.torch import load_file

    import engine.training.train

    starts = []
    original = engine.training.train.load_model

    def recording(config, project_dir=None, path=None, **kwargs):
        model, tokenizer = original(config, project_dir, path=path, **kwargs)
        starts.append((path, {name: tensor.clone() for name, tensor in model.state_dict().items()}))
        return model, tokenizer

    monkeypatch.setattr(engine.training.train, "load_model", recording)
    folder = combined_project(tmp_path / "seq", char_model_dir, TWO_STAGES.format(teacher="base"), max_steps=2)
    assert main(["run", str(folder), "--quiet"]) == 0
    run_dir = only_run(folder)
    (first_start, _), (second_start, second_weights) = starts
    assert first_start is None and Path(second_start) == run_dir / "stages" / "first" / "student"
    saved = load_file(run_dir / "stages" / "first" / "student" / "model.safetensors")
    for name, tensor in saved.items():
        assert torch.equal(second_weights[name], tensor), name


def test_a_stop_in_stage_two_resumes_there(tmp_path, char_model_dir):
    from engine.run import new_run_dir, run

    folder = combined_project(tmp_path / "stop", char_model_dir, TWO_STAGES.format(teacher="base"), max_steps=4)
    project = load_project(folder)
    run_dir = new_run_dir(project)

    def stop_in_second_stage(event):
        if event["type"] == "train" and event["stage_name"] == "second" and event["step"] >= 1:
            (run_dir / STOP_FILE).touch()

    assert run(project, run_dir, listeners=[stop_in_second_stage]) is None
    assert (run_dir / "stages" / "second" / "checkpoints" / "step-1" / "trainer_state.json").exists()
    first_student = (run_dir / "stages" / "first" / "student" / "model.safetensors").stat().st_mtime_ns
    stopped_lines = len(read_events(run_dir / "events.jsonl"))

    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    resumed = read_events(run_dir / "events.jsonl")[stopped_lines:]
    assert not [event for event in resumed if event["stage_name"] == "first" and event["type"] in ("train", "progress", "eval")]
    assert [event["step"] for event in resumed if event["type"] == "train"] == [2, 3]
    assert any(event.get("message") == "stage first finished before the stop; not redoing it" for event in resumed)
    assert (run_dir / "stages" / "first" / "student" / "model.safetensors").stat().st_mtime_ns == first_student
    assert resumed[-1]["status"] == "completed"
    assert set(json.loads((run_dir / "metrics.json").read_text())["matrix"]) == {"first", "second"}


def test_a_recursive_stage_is_taught_by_the_previous_student(tmp_path, char_model_dir, monkeypatch):
    import engine.run

    teachers = []
    original = engine.run.load_model

    def recording(config, project_dir=None, path=None, **kwargs):
        teachers.append(path)
        return original(config, project_dir, path=path, **kwargs)

    monkeypatch.setattr(engine.run, "load_model", recording)
    folder = combined_project(tmp_path / "rec", char_model_dir, TWO_STAGES.format(teacher="previous"), max_steps=2)
    assert main(["run", str(folder), "--quiet"]) == 0
    run_dir = only_run(folder)
    assert teachers == [None, str(run_dir / "stages" / "first" / "student")]
    first_key = json.loads((run_dir / "stages" / "first" / "teacher" / "copy" / "key.json").read_text())["key"]
    second_key = json.loads((run_dir / "stages" / "second" / "teacher" / "copy" / "key.json").read_text())["key"]
    assert first_key != second_key  # same operation and inputs, other teacher weights
    events = read_events(run_dir / "events.jsonl")
    second = [event for event in events if event["stage_name"] == "second" and event.get("cache")]
    assert [event["cache"] for event in second] == ["miss"]


def test_a_base_teacher_reuses_its_cache_in_later_stages(two_stage_run):
    _, run_dir = two_stage_run
    first = (run_dir / "stages" / "first" / "teacher" / "copy" / "labels.pt").read_bytes()
    assert (run_dir / "stages" / "second" / "teacher" / "copy" / "labels.pt").read_bytes() == first
    events = read_events(run_dir / "events.jsonl")
    assert [event["cache"] for event in events if event["stage_name"] == "second" and event.get("cache")] == ["hit"]


def test_reevaluate_a_combined_run(two_stage_run, tmp_path, capsys):
    import shutil

    run_dir = shutil.copytree(two_stage_run[1], tmp_path / "copy")
    before = json.loads((run_dir / "metrics.json").read_text())
    assert main(["eval", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "== stage first · operation reverse" in out and "overwrite matrix" in out
    after = json.loads((run_dir / "metrics.json").read_text())
    assert after["matrix"] == before["matrix"]


def test_preview_one_operation(tmp_path, char_model_dir, capsys):
    folder = combined_project(tmp_path / "prev", char_model_dir, OPERATIONS)
    assert main(["preview", str(folder), "--n", "1", "--op", "copy"]) == 0
    out = capsys.readouterr().out
    assert "#### operation copy" in out and "Copy the letters." in out and "Reverse the letters." not in out
    assert main(["preview", str(folder), "--op", "nope"]) == 2
    assert "no such operation" in capsys.readouterr().err


def test_a_run_folder_written_before_operations_still_evaluates(tmp_path, char_model_dir):
    """A run folder as the engine wrote it before operations existed: no `vars`/`ensemble` keys, no scope in events."""
    import re

    from engine.runs.events import fold_events

    folder = write_project(tmp_path / "old", char_model_dir, max_steps=1, extract=IDENTITY_UNSTRIPPED)
    assert main(["run", str(folder), "--quiet"]) == 0
    run_dir = only_run(folder)
    old_toml = re.sub(r"^(vars|ensemble) = .*\n|^\[(teacher|student)\.vars\]\n", "",
                      (run_dir / "project.toml").read_text(), flags=re.M)
    assert "vars" not in old_toml and "ensemble" not in old_toml
    (run_dir / "project.toml").write_text(old_toml)
    old_events = [{key: value for key, value in event.items() if key not in ("stage_name", "operation")}
                  for event in read_events(run_dir / "events.jsonl")]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(event) + "\n" for event in old_events))
    state = fold_events(old_events)
    assert state.status == "completed" and state.stage_names == []
    before = json.loads((run_dir / "metrics.json").read_text())
    assert main(["eval", str(run_dir)]) == 0
    after = json.loads((run_dir / "metrics.json").read_text())
    assert after["student_after"] == before["student_after"] and "combined" not in after


def test_an_evaluate_only_operation_is_scored_but_never_trained(tmp_path, char_model_dir):
    folder = combined_project(tmp_path / "probe", char_model_dir, OPERATIONS + '''
[[stages]]
name = "only"
operations = ["reverse"]
evaluate = ["copy"]
''', max_steps=1)
    assert main(["run", str(folder), "--quiet"]) == 0
    run_dir = only_run(folder)
    assert {path.name for path in (run_dir / "stages" / "only" / "teacher").iterdir()} == {"reverse"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["stages"]["only"]["operations"]) == {"reverse", "copy"}
    assert set(metrics["matrix"]["only"]) == {"reverse", "copy"}


def test_an_operation_may_score_itself_its_own_way(tmp_path, char_model_dir):
    folder = combined_project(tmp_path / "own-eval", char_model_dir, OPERATIONS + '''
[operations.eval]
metrics = ["rouge_l"]
reference = "teacher"
''', max_steps=1)
    project = load_project(folder)
    assert project.operation("copy").eval.metrics == ["rouge_l"] and project.operation("reverse").eval == project.eval
    assert main(["run", str(folder), "--quiet"]) == 0
    operations = json.loads((only_run(folder) / "metrics.json").read_text())["stages"]["main"]["operations"]
    assert set(operations["copy"]["student_after"]) == {"rouge_l"}
    assert set(operations["reverse"]["student_after"]) == {"exact_match", "rouge_l"}
