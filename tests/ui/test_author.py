"""The Author screen: editing re-renders, template errors inline, a real preview, save keeps comments."""

from __future__ import annotations

import os
import sys

import pytest
import tomlkit

from ctxtui.app import CtxApp
from ctxtui.screens.author import AuthorScreen
from ctxtui.widgets.template_editor import TemplateEditor

pytestmark = pytest.mark.anyio  # async tests run on asyncio (anyio_backend in conftest)

SIZE = (140, 44)


async def wait_for(pilot, condition, timeout: float = 30.0) -> None:
    """Let the app run until `condition()` holds (workers post their results asynchronously)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.05)


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def test_editing_teacher_template_rerenders_prompt(project_dir):
    app = CtxApp(project_dir, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, AuthorScreen)
        # Typing while the model loads can stall a keystroke past the undo batch's 2 s.
        await wait_for(pilot, lambda: screen.example is not None and screen.preview.session is not None)
        word = screen.example["input"]
        assert f"Input: {word}" in text_of(app, "#teacher-prompt")
        area = screen.query_one("#teacher-text")
        area.focus()
        area.move_cursor((0, 0))
        await pilot.press(*"Please ")
        assert text_of(app, "#teacher-prompt").startswith("Please Reverse the letters.")
        assert app.project.teacher.template.startswith("Please ")
        # Undo brings the original back.
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert text_of(app, "#teacher-prompt").startswith("Reverse the letters.")


async def test_template_error_is_shown_inline_with_its_line(project_dir):
    app = CtxApp(project_dir, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.example is not None)
        editor = screen.query_one("#student-editor", TemplateEditor)
        editor.replace_text("Input: {{ input }}\nOops: {{ input | nosuchfilter }\n")
        await pilot.pause()
        assert editor.has_class("-error")
        assert editor.error.startswith("line 2")
        # Fixing it clears the error; the app never crashed.
        editor.replace_text("Q: {{ input }}\nA: ")
        await pilot.pause()
        assert editor.error == ""
        assert text_of(app, "#student-prompt").startswith("Q: ")


async def test_preview_streams_teacher_and_highlights_extracted_answer(tmp_path, toy_model_dir):
    from conftest import write_project

    # Greedy decoding of fixed random weights: the same output every time (blanks, for this model).
    project = write_project(tmp_path / "demo", model=str(toy_model_dir), temperature=0.0)
    text = (project / "project.toml").read_text().replace('kind = "identity"', 'kind = "identity"\nstrip = false')
    (project / "project.toml").write_text(text)
    app = CtxApp(project, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.preview.teacher_done and text_of(app, "#student-verdict") != "", timeout=60)
        assert screen.preview.streamed_updates >= 1 and screen.preview.teacher_text
        assert "answer:" in text_of(app, "#teacher-verdict") and "label" in text_of(app, "#teacher-verdict")
        # Token counts and their ratio are shown once the tokenizer is loaded.
        assert "× fewer" in text_of(app, "#token-ratio")
        # A regex extractor re-extracts the same generation at once (no new generation)
        # and the answer is highlighted inside the teacher's output.
        generation = screen.preview.generation
        screen.query_one("#extract-kind").value = "regex"
        screen.query_one("#extract-parameter").value = "(?s)^.{2}"
        await wait_for(pilot, lambda: f"answer: {screen.preview.teacher_text[:2]!r}" in text_of(app, "#teacher-verdict"))
        assert screen.preview.generation == generation
        shown = screen.query_one("#teacher-output").content
        assert [(span.start, span.end) for span in shown.spans if "reverse" in str(span.style)] == [(0, 2)]
        assert "no match" in text_of(app, "#teacher-verdict")


async def test_save_keeps_comments_and_quit_asks_about_unsaved_edits(project_dir):
    from ctxtui.screens.choice import ChoiceScreen

    app = CtxApp(project_dir, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.example is not None)
        screen.query_one("#student-editor", TemplateEditor).replace_text("Q: {{ input }}\nA: ")
        await pilot.pause()
        assert "unsaved" in app.title
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not app.project_file.dirty)
        assert "unsaved" not in app.title
        saved = (project_dir / "project.toml").read_text()
        assert "# A tiny test project (this comment must survive a save)" in saved
        assert tomlkit.parse(saved)["student"]["template"] == "Q: {{ input }}\nA: "
        screen.query_one("#teacher-editor", TemplateEditor).replace_text("Teach: {{ input }}\n")
        await pilot.pause()
        await pilot.press("ctrl+q")  # asks: save / discard / cancel
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("c")
        await pilot.pause()
        assert app.return_code is None and isinstance(app.screen, AuthorScreen)
        assert (project_dir / "project.toml").read_text() == saved  # quitting never writes by itself
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("d")  # discard
        await pilot.pause()
    assert (project_dir / "project.toml").read_text() == saved


async def test_quit_can_save_the_edits(project_dir):
    from ctxtui.screens.choice import ChoiceScreen

    app = CtxApp(project_dir, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.example is not None)
        screen.query_one("#teacher-editor", TemplateEditor).replace_text("Teach: {{ input }}\n")
        await pilot.pause()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("s")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert tomlkit.parse((project_dir / "project.toml").read_text())["teacher"]["template"] == "Teach: {{ input }}\n"


async def test_external_editor_replaces_template(project_dir, tmp_path, monkeypatch):
    script = tmp_path / "fake-editor"
    script.write_text(f"#!{sys.executable}\nimport sys\nopen(sys.argv[1], 'w').write('From editor: {{{{ input }}}}')\n")
    script.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(script))
    monkeypatch.delenv("VISUAL", raising=False)
    app = CtxApp(project_dir, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.example is not None)
        screen.query_one("#student-text").focus()
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert text_of(app, "#student-prompt").startswith("From editor: ")


async def test_config_problems_show_inline_and_nothing_crashes(tmp_path):
    from conftest import write_project

    project = write_project(tmp_path / "broken")
    text = (project / "project.toml").read_text().replace("[extract]\n", "[extract]\nkindd = 'regex'\n")
    (project / "project.toml").write_text(text)
    app = CtxApp(project, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.project is None
        problems = text_of(app, "#config-problems")
        assert "kindd" in problems and app.screen.query_one("#config-problems").display
        await pilot.press("f3", "n")  # launching is refused, not attempted
        await pilot.pause()
        assert not (project / "runs").exists()


async def test_a_fewshot_source_gets_its_sample_inputs_from_the_loaded_model(tmp_path):
    # The model invents a `fewshot` project's inputs: the screen waits for the preview's model
    # (it used to ask for inputs without one and showed "load the model first").
    import shutil
    from pathlib import Path

    project = tmp_path / "long-context"
    shutil.copytree(Path(__file__).resolve().parents[2] / "sample_projects" / "long-context", project,
                    ignore=shutil.ignore_patterns("runs", "__pycache__", "README.md"))
    document = tomlkit.parse((project / "project.toml").read_text())
    document["inputs"]["count"] = 8
    (project / "project.toml").write_text(tomlkit.dumps(document))
    app = CtxApp(project, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: any(not example.get("own") for example in screen.inputs), timeout=60)
        invented = [example for example in screen.inputs if not example.get("own")]
        assert all(len(example["input"]) in (3, 4) and example["label"] for example in invented)
        assert "inputs failed" not in str(screen.query_one("#inputs").render())
