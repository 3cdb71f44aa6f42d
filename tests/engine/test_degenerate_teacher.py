"""Teacher agreement on a model that answers nothing (issue 26, item 5).

A random tied-embedding model (Qwen2 ties its LM head to the embeddings) repeats
the prompt's last token: every answer is blank. Rouge-L of two texts without a
word is 1 by definition (docs/projects.md), so the teacher scored against
itself stays 1 where rouge-score alone says 0.
"""

from __future__ import annotations

import json

from engine.cli import main
from engine.evaluation.evaluate import rouge_l

from chat_fixtures import build_chat_model_dir
from engine_fixtures import write_project


def test_two_answers_without_a_word_agree():
    assert rouge_l(["", " ", "\n"], [[""], ["\n"], [" "]]) == [1.0, 1.0, 1.0]
    assert rouge_l(["", "abc"], [["abc"], [""]]) == [0.0, 0.0]  # empty against a word: no agreement
    assert rouge_l(["", "abc"], [["x", ""], ["", "abc"]]) == [1.0, 1.0]  # best over the references
    assert rouge_l(["?!"], [["..."]]) == [1.0]  # punctuation is no word to rouge either


def test_the_teacher_agrees_with_itself_on_a_tied_embedding_model(tmp_path):
    model = build_chat_model_dir(tmp_path / "tied", "chatml", architecture="qwen2")
    assert json.loads((model / "config.json").read_text())["tie_word_embeddings"]
    project = write_project(tmp_path / "blank", model, metrics='["rouge_l"]', max_steps=1)
    toml = project / "project.toml"
    toml.write_text(toml.read_text().replace('reference = "label"', 'reference = "teacher"'))
    assert main(["run", str(project), "--quiet"]) == 0
    (run_dir,) = (project / "runs").iterdir()
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and all(not sample["teacher"]["answer"].strip() for sample in samples), "the model is degenerate"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["teacher"]["rouge_l"] == 1.0
