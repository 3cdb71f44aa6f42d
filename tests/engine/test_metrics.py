"""Scores as the paper's scorers compute them (issue "The paper's experiments", section "Measure as the paper measured")."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.project.schema import Project
from engine.evaluation.evaluate import normalize_answer, rouge_l, score, student_answer


def project_with(metrics: list[str], **extract) -> Project:
    project = Project()
    return replace(project, eval=replace(project.eval, metrics=metrics), extract=replace(project.extract, **extract))


def test_rouge_l_stems_and_takes_the_best_reference():
    (stemmed,) = rouge_l(["the cats are running"], [["the cat runs"]])
    assert stemmed == pytest.approx(2 * (3 / 4) * 1.0 / (3 / 4 + 1.0))  # the, cat, run in common
    assert rouge_l(["blue"], [["red", "blue"]]) == [1.0]


def test_rouge_l_keeps_non_ascii_answers():
    assert rouge_l(["日本 語"], [["日本 語"]]) == [1.0]
    assert rouge_l(["ça va"], [["ça va"]]) == [1.0]
    assert rouge_l(["ça va"], [["ça ne va pas"]])[0] < 1.0


def test_normalized_exact_match():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    metrics = score(project_with(["exact_match", "exact_match_normalized"]), ["the Cat."], ["cat"], [None], [["dog"]])
    assert metrics == {"exact_match": 0.0, "exact_match_normalized": 1.0}


def test_the_student_answer_is_cut_like_the_teachers():
    project = project_with(["exact_match"], kind="after_marker", marker="Answer: ", until="\n")
    assert student_answer(project, "1234\nmore text") == "1234"
    assert student_answer(project_with(["exact_match"]), "1234\nmore text") == "1234\nmore text"


def test_an_unstripped_extractor_leaves_the_students_answer_unstripped_too():
    # A self-distilled scratch-pad (addition-keep) is compared with the teacher's whole output, newline included.
    assert student_answer(project_with(["exact_match"], kind="regex", pattern="(?s).+", strip=False), "1+2=3\n") == "1+2=3\n"
    assert student_answer(project_with(["exact_match"]), " 3 \n") == "3"
