"""The string-transformation toy model `toy-learner`: its task family, its pretraining
sequences, the per-task project variants, and a quick skill check (seconds)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import tomlkit
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.project.loader import load_project
from engine.toy import TOY_BASE_DIR, TOY_ICL_DIR, TOY_LEARNER_DIR, build_char_tokenizer, resolve_toy_model, transforms
from engine.toy.over_tasks import edited, for_task, labellers, pearson, permutation_p_value, worked_examples
from engine.toy.pretrain import TRANSFORMS_MIXTURE, encode_example, learning_rate_decay
from engine.toy.transform_project import labeller, letters_right

ROOT = Path(__file__).resolve().parents[2]
trained = pytest.mark.skipif(not (TOY_LEARNER_DIR / "model.safetensors").exists(), reason="toy-learner not built")


def test_transformations_compose_a_reorder_and_a_rewrite():
    assert transforms.apply(("reverse", "shift2"), "cabin") == "pkdce"
    assert transforms.apply(("rotate1", "upper"), "cabin") == "ABINC"
    assert transforms.apply(("every2", "shift1"), "cabin") == "dco"
    assert transforms.apply(("keep", "shift2"), "xyz") == "zab"  # wraps
    # The examples must be read: on a word of distinct letters every task answers differently.
    assert len({transforms.apply(task, "cabin") for task in transforms.ALL_TASKS}) == len(transforms.ALL_TASKS)
    assert ("keep", "keep") not in transforms.ALL_TASKS


def test_held_out_tasks_are_new_compositions_of_parts_seen_in_pretraining():
    assert not set(transforms.HELD_OUT) & set(transforms.HELD_IN)
    for reorder, rewrite in transforms.HELD_OUT:
        assert any(r == reorder for r, _ in transforms.HELD_IN) and any(w == rewrite for _, w in transforms.HELD_IN)


def test_rule_line_names_both_parts():
    assert transforms.rule_line(("reverse", "shift1")) == \
        "Rule: reverse the letters, then shift each letter by 1.\n\n"
    with pytest.raises(ValueError, match="unknown task"):
        transforms.parse_task("reverse+shift9")


def test_pretraining_episodes_train_answers_and_only_the_first_input():
    tokenizer = build_char_tokenizer()
    rng = random.Random(0)
    seen_rule = False
    for _ in range(50):
        ids, labels = encode_example(rng, tokenizer, TRANSFORMS_MIXTURE)
        text = tokenizer.decode(ids[:-1])
        trained_text = tokenizer.decode([i for i, label in zip(ids, labels) if label != -100][:-1])
        seen_rule |= text.startswith("Rule: ")
        assert "Rule" not in trained_text  # the rule line is given, never predicted
        blocks = text.split("\n\n")
        rows = [block for block in blocks if block.startswith("Input: ")]
        first_input = rows[0].split("\n")[0][len("Input: "):]
        # Every answer is trained on; of the inputs, only the first (how to invent one).
        assert trained_text.count("Output: ") == len(rows)
        assert trained_text.startswith("Input: " + first_input + "\nOutput: ")
        assert trained_text.count("Input: \nOutput: ") == len(rows) - 1
        held_in = {transforms.apply(task, first_input) for task in transforms.HELD_IN}
        assert rows[0].split("\nOutput: ")[1] in held_in
    assert seen_rule


def test_wsd_schedule_holds_then_anneals():
    assert learning_rate_decay("wsd", 0.0) == learning_rate_decay("wsd", 0.79) == 1.0
    assert learning_rate_decay("wsd", 0.9) == pytest.approx(0.55)
    assert learning_rate_decay("wsd", 1.0) == pytest.approx(0.1)
    assert learning_rate_decay("cosine", 1.0) == pytest.approx(0.1)


def test_labeller_drops_what_has_no_answer():
    label = labeller("reverse+shift1")
    assert label("ynbi") == "jcoz"
    assert label(" ynbi ") == "jcoz"
    assert label("yn") is None and label("abcdef") is None and label("YNBI") is None and label("at br") is None
    assert len(labellers()) == len(transforms.ALL_TASKS)
    assert letters_right("jcoa\nmore", "jcoz") == 0.75


def test_pearson():
    assert pearson([0, 1, 2], [1, 3, 5]) == pytest.approx(1.0)
    assert pearson([0, 1, 2], [5, 3, 1]) == pytest.approx(-1.0)
    assert pearson([0, 1, 2], [1, 1, 1]) is None
    # 3 points in order: 2 of the 6 pairings are as extreme (the order and its reverse).
    assert permutation_p_value([0, 1, 2], [1, 3, 5]) == pytest.approx(2 / 6)
    assert permutation_p_value([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]) == pytest.approx(2 / 720)


def test_a_task_variant_has_its_own_examples_labels_and_seeds():
    project = load_project(ROOT / "sample_projects" / "few-shot")
    # The shipped project is the variant of its task with seed 0.
    assert project.teacher.vars["examples"] == worked_examples(("reverse", "shift1"), 4, 0)
    variant = for_task(project, ("every2", "upper"), 3)
    (operation,) = variant.operations  # what the run reads: the operation's copy of the tables
    assert operation.teacher.vars["examples"] == variant.teacher.vars["examples"] == \
        worked_examples(("every2", "upper"), 4, 3)
    assert operation.inputs.label_function == variant.inputs.label_function == "tasks:label_every2_upper"
    assert operation.inputs.seed == variant.distill.seed == 3
    assert edited(variant, {"baselines.budget": "equal-compute"}).baselines.budget == "equal-compute"
    assert load_project(ROOT / "sample_projects" / "few-shot-8").teacher.vars["examples"][:4] == \
        project.teacher.vars["examples"]


@pytest.mark.parametrize("script, project, tasks", [
    ("few-shot/over_tasks.py", "few-shot", "keep+upper"),
    ("explanations-toy/correlate.py", "explanations-toy", "keep+upper,reverse+shift2"),
])
def test_over_task_scripts_run_and_write_their_table(script, project, tasks, tmp_path):
    copy = tmp_path / project
    shutil.copytree(ROOT / "sample_projects" / project, copy, ignore=shutil.ignore_patterns("runs", "RESULTS.md"))
    document = tomlkit.parse((copy / "project.toml").read_text())
    document["inputs"]["count"], document["eval"]["count"] = 8, 4
    document["distill"]["max_steps"], document["distill"]["num_samples"] = 2, 10
    (copy / "project.toml").write_text(tomlkit.dumps(document))

    result = subprocess.run([sys.executable, str(ROOT / "sample_projects" / script), str(copy), "--tasks", tasks],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stderr[-2000:]
    results = (copy / "RESULTS.md").read_text()
    for task in tasks.split(","):
        assert f"| {task} (" in results
    assert ("mean of 1" in results) if project == "few-shot" else ("Pearson's r" in results)
    runs = list((copy / "runs").iterdir())
    assert len(runs) == 2 * len(tasks.split(","))  # two runs per task: budgets, or with and without the rule
    for seed, task in enumerate(tasks.split(",")):
        # Each task's runs prompted its teacher with its own examples and scored its own answers.
        example = worked_examples(transforms.parse_task(task), 1, seed)[0]
        for run_dir in (copy / "runs").glob(f"*-{task.replace('+', '-')}"):
            row = json.loads((run_dir / "samples.jsonl").read_text().splitlines()[0])
            assert f"Input: {example['input']}\nOutput: {example['label']}\n" in row["teacher"]["prompt"]
            assert row["reference"] == transforms.apply(transforms.parse_task(task), row["input"]["input"])


@trained
def test_toy_learner_loads_by_name_and_the_models_fit_the_size_cap():
    assert resolve_toy_model("toy-learner") == TOY_LEARNER_DIR
    size = sum(f.stat().st_size for d in (TOY_BASE_DIR, TOY_ICL_DIR, TOY_LEARNER_DIR) for f in d.iterdir()
               if f.is_file())
    assert size <= 20 * 1024 * 1024
    assert (TOY_LEARNER_DIR / "TRAINING.md").exists() and not list(TOY_LEARNER_DIR.glob("*.bin"))


@trained
def test_toy_learner_reads_the_task_from_its_examples():
    from engine.toy.learner_report import evaluate_transforms

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(TOY_LEARNER_DIR, use_kernels=False)
    tokenizer = AutoTokenizer.from_pretrained(TOY_LEARNER_DIR)
    curve = evaluate_transforms(model, tokenizer, 34, seed=7, shots=(0, 4))
    # Without examples it can only guess which of the tasks is meant; with four it knows.
    assert curve["held_in@0"] <= 0.2
    assert curve["held_in@4"] >= curve["held_in@0"] + 0.3
