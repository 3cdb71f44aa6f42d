"""Issue 22, items 2-3: the examples baseline as appendix B.5 ran it, and an ensemble teacher
decoded greedily from its averaged distribution (B.5), on the tiny random char model."""

from __future__ import annotations

import json
from dataclasses import replace

import torch

from engine.evaluation.ensemble_decode import ensemble_greedy
from engine.evaluation.examples_baseline import plan
from engine.models import load_model
from engine.project.loader import project_from_toml_text
from engine.runs.events import EventWriter
from engine.teacher.teacher_pass import teacher_prompts

from engine_fixtures import write_project

EXAMPLES = 'vars = { examples = [{ input = "ab", label = "ba" }, { input = "xyz", label = "zyx" }, ' \
           '{ input = "cde", label = "edc" }] }\n'


def project_with(tmp_path, model_dir, teacher_extra: str = "", tail: str = "", **overrides):
    folder = write_project(tmp_path / "p", model_dir, **overrides)
    toml = (folder / "project.toml").read_text()
    return project_from_toml_text(folder, toml.replace("[teacher]\n", "[teacher]\n" + teacher_extra) + tail)


@torch.no_grad()
def reference_ensemble_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int, eos: int) -> list[int]:
    """One prompt at a time, no cache, no padding: the argmax of the mean softmax at every step."""
    output: list[int] = []
    for _ in range(max_new_tokens):
        mean = sum(torch.softmax(model(torch.tensor([tokenizer(prompt).input_ids + output])).logits[0, -1].float(), -1)
                   for prompt in prompts) / len(prompts)
        output.append(int(mean.argmax()))
        if output[-1] == eos:
            break
    return output


def test_ensemble_greedy_decodes_the_argmax_of_the_prompts_mean_softmax(tmp_path, char_model_dir):
    teacher = "{% for e in examples | sample(2) %}Input: {{ e.input }}\nOutput: {{ e.label }}\n{% endfor %}Input: {{ input }}\nOutput: "
    project = project_with(tmp_path, char_model_dir, EXAMPLES + "ensemble = 3\n", teacher=teacher, max_new_tokens=8)
    project = replace(project, generate=replace(project.generate, stop=[]))  # EOS or the token budget ends it
    model, tokenizer = load_model(project.model, project.dir)
    torch.manual_seed(1)
    for parameter in model.parameters():  # the fixture's small random weights say one letter whatever the prompt
        parameter.data.normal_(0, 0.5)
    inputs = [{"input": "abc"}, {"input": "hello"}, {"input": "qz"}]
    got = ensemble_greedy(project, model, tokenizer, inputs)
    for example, (_, ids, _) in zip(inputs, got):
        prompts = teacher_prompts(project, tokenizer, example)
        assert len(set(prompts)) > 1  # the renderings differ, so the average is not one prompt's
        assert ids == reference_ensemble_greedy(model, tokenizer, prompts, 8, tokenizer.eos_token_id)
    # A single prompt alone decodes otherwise for at least one input: the ensemble is not prompt 0.
    alone = [reference_ensemble_greedy(model, tokenizer, teacher_prompts(project, tokenizer, example)[:1], 8,
                                       tokenizer.eos_token_id) for example in inputs]
    assert alone != [ids for _, ids, _ in got]


def test_the_paper_budget_is_b5_and_equal_compute_a_grid_at_the_distillations_steps(tmp_path, char_model_dir):
    tail = '\n[baselines]\nmethods = ["examples"]\n'
    paper = project_with(tmp_path, char_model_dir, EXAMPLES, tail)
    assert plan(paper, 150) == ([1e-5], 25, list(range(1, 26)))
    equal = project_with(tmp_path, char_model_dir, EXAMPLES, tail + 'budget = "equal-compute"\n')
    rates, epochs, scored = plan(equal, 150)
    assert rates == [1e-5, 1e-4, 1e-3] and epochs == 150 and scored[-1] == 150 and len(scored) == 25


def test_exact_match_selects_and_the_other_metrics_break_its_ties():
    from engine.evaluation.examples_baseline import selection_rank

    epochs = [{"exact_match": 0.0, "pairs": 0.1}, {"exact_match": 0.0, "pairs": 0.3}, {"exact_match": 0.1, "pairs": 0.0}]
    assert max(range(3), key=lambda i: selection_rank(epochs[i], "exact_match")) == 2
    assert max(range(2), key=lambda i: selection_rank(epochs[i], "exact_match")) == 1


def test_the_examples_baseline_keeps_its_best_epoch_and_says_which(tmp_path, char_model_dir):
    from engine.evaluation.baselines import train_baselines, worked_examples
    from engine.evaluation.examples_baseline import read_selection
    from engine.models import load_tokenizer

    tail = '\n[baselines]\nmethods = ["examples"]\nbudget = "equal-compute"\n'
    # Exact match selects (B.5), rouge_l breaks its ties.
    project = project_with(tmp_path, char_model_dir, EXAMPLES, tail, max_steps=3, max_new_tokens=4,
                           metrics='["exact_match", "rouge_l"]')
    tokenizer = load_tokenizer(project.model, project.dir)
    held_out = [{"input": "ab", "label": "ba"}, {"input": "cde", "label": "edc"}]
    events = EventWriter(tmp_path / "events.jsonl")
    saved = train_baselines(project, tmp_path / "run", tokenizer, [], None, events, held_out=held_out)
    selection = read_selection(saved["examples"])
    assert selection["budget"] == "equal-compute" and selection["epochs"] == 3
    assert [(row["learning_rate"], row["epoch"]) for row in selection["curve"]] == [
        (rate, epoch) for rate in (1e-5, 1e-4, 1e-3) for epoch in (1, 2, 3)]
    best = max(selection["curve"], key=lambda row: (row["exact_match"], row["rouge_l"]))  # the first of equals
    assert (selection["learning_rate"], selection["best_epoch"]) == (best["learning_rate"], best["epoch"])
    # The saved model is that epoch's: decoding it again scores what the selection saw.
    from engine.evaluation.evaluate import decode, score
    model, _ = load_model(project.model, project.dir, path=saved["examples"])
    answers = [d.answer for d in decode(project, model, tokenizer, held_out, "student")]
    assert score(project, answers, ["ba", "edc"], ["ba", "edc"]) == {
        metric: best[metric] for metric in ("exact_match", "rouge_l")}
    # One step per epoch on one batch of all K examples.
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    steps = [event for event in lines if event["type"] == "train"]
    assert len(steps) == 9 and {event["phase"] for event in steps} == {
        "baselines/examples@lr1e-05", "baselines/examples@lr0.0001", "baselines/examples@lr0.001"}
    assert len(worked_examples(project, tokenizer)) == 3


def test_the_run_summary_names_the_ensemble_teacher_and_the_chosen_epoch():
    from engine.cli import format_operation

    metrics = {"teacher": {"exact_match": 0.5}, "teacher_decoding": "ensemble-greedy",
               "teacher_singles": [{"exact_match": 0.25}, {"exact_match": 0.75}], "baselines_budget": "paper",
               "baseline_examples": {"exact_match": 0.1},
               "baselines_selection": {"examples": {"best_epoch": 7, "epochs": 25, "learning_rate": 1e-5,
                                                    "metric": "exact_match", "curve": []}}}
    text = format_operation(metrics)
    assert "the teacher row is the ensemble" in text
    assert "baseline examples: best epoch 7 of 25 at lr 1e-05 (by exact_match" in text
