"""Every shipped project is a test case (style.md point 5): it loads, validates, draws inputs, renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.project.loader import load_project
from engine.teacher.extractors import Extractor
from engine.project.sources import load_inputs
from engine.project.templates import render_prompts

SAMPLE_PROJECTS = sorted((Path(__file__).resolve().parents[2] / "sample_projects").glob("*/project.toml"))


def test_there_are_sample_projects():
    assert SAMPLE_PROJECTS


@pytest.mark.parametrize("project_file", SAMPLE_PROJECTS, ids=lambda path: path.parent.name)
def test_sample_project_is_valid(project_file):
    project = load_project(project_file.parent)
    assert project.name == project_file.parent.name
    assert project.description
    for operation in project.operations:
        view = project.for_operation(operation.name)
        Extractor(view.extract, view.dir)
        if view.inputs.source in ("python", "file"):
            distill, held_out = load_inputs(view)
            assert len(distill) == view.inputs.count and len(held_out) == view.eval.count
            teacher, student = render_prompts(view, held_out[0])
            assert str(held_out[0]["input"]) in teacher and str(held_out[0]["input"]) in student
            # Shorter, except in an operation that self-distils the teacher's own output (addition-keep).
            assert len(student) < len(teacher) or view.student.template == view.teacher.template
            if view.eval.reference == "label" or "accuracy" in view.eval.metrics:
                assert all(example.get("label") is not None for example in distill + held_out)


@pytest.mark.parametrize("project_file", SAMPLE_PROJECTS, ids=lambda path: path.parent.name)
def test_resolved_project_round_trips_through_toml(project_file):
    # A run folder's project.toml is this text; `--resume` and `eval` load the project back from it.
    from engine.project.loader import project_from_toml_text
    from engine.project.writer import project_to_toml

    project = load_project(project_file.parent)
    assert project_from_toml_text(project.dir, project_to_toml(project)) == project
