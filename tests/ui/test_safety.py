"""Issue 12, "never lose or corrupt the user's project": outside edits, broken templates, $EDITOR, extractor keys."""

from __future__ import annotations

import sys

import pytest
import tomlkit

from ctxtui.app import CtxApp
from ctxtui.project_file import ProjectFile
from ctxtui.screens.author import AuthorScreen
from ctxtui.screens.choice import ChoiceScreen
from ctxtui.widgets.template_editor import TemplateEditor, text_from_editor
from test_author import SIZE, text_of, wait_for

pytestmark = pytest.mark.anyio


async def test_outside_edit_reloads_a_clean_file_and_is_never_overwritten(project_dir):
    path = project_dir / "project.toml"
    app = CtxApp(project_dir, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.example is not None)
        # Nothing edited here: another editor's change is simply reloaded.
        path.write_text(path.read_text().replace("max_steps = 4", "max_steps = 7")
                        .replace("Reverse the letters.", "Flip the letters."))
        app.check_disk()
        await pilot.pause()
        assert app.project.distill.max_steps == 7
        assert screen.query_one("#teacher-editor", TemplateEditor).text.startswith("Flip the letters.")
        assert not app.project_file.dirty
        # Edited here and there: the app asks, and keeping our edits leaves the file alone ...
        screen.query_one("#student-editor", TemplateEditor).replace_text("Q: {{ input }}\n")
        await pilot.pause()
        path.write_text(path.read_text().replace("max_steps = 7", "max_steps = 9"))
        app.check_disk()
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("k")
        await pilot.pause()
        outside = path.read_text()
        # ... and saving asks before overwriting; cancel keeps the other editor's version.
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        assert "changed by another program" in app.screen.question
        await pilot.press("c")
        await pilot.pause()
        assert path.read_text() == outside
        # Launching does not write over it either.
        await pilot.press("f3", "n")
        await pilot.pause()
        assert path.read_text() == outside and not (project_dir / "runs").exists()
        # Reload takes the file's version and drops ours.
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("r")
        await pilot.pause()
        assert app.project.distill.max_steps == 9 and not app.project_file.dirty


async def test_broken_template_cannot_launch_and_saving_it_asks(project_dir):
    path = project_dir / "project.toml"
    original = path.read_text()
    app = CtxApp(project_dir, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.example is not None)
        screen.query_one("#teacher-editor", TemplateEditor).replace_text("{% if input %}Reverse: {{ input }}\n")
        # The editor's change reaches the preview through messages: wait for it, however busy the machine.
        await wait_for(pilot, lambda: "fix the template error" in text_of(app, "#teacher-output"))  # no stale verdict stays up
        assert any("teacher" in problem for problem in app.project_problems())
        assert screen.query_one("#config-problems").display
        assert text_of(app, "#teacher-verdict") == ""
        await pilot.press("f3", "n")
        await pilot.pause()
        assert not (project_dir / "runs").exists()
        await pilot.press("f2", "ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        assert "problems" in app.screen.question
        await pilot.press("c")
        await pilot.pause()
        assert path.read_text() == original


def test_editor_newline_is_not_added_to_the_template():
    assert text_from_editor("Output: ", "Output: \n") == "Output: "
    assert text_from_editor("Output:\n", "Output:\n") == "Output:\n"
    assert text_from_editor("a", "a\n\n") == "a\n"  # the user's blank line stays
    assert text_from_editor("a", "b") == "b"


async def test_external_editor_keeps_the_template_exact(project_dir, tmp_path, monkeypatch):
    script = tmp_path / "fake-editor"
    # Like vi: rewrites the text and ends the file with a newline.
    script.write_text(f"#!{sys.executable}\nimport sys\nopen(sys.argv[1], 'w').write('Q: {{{{ input }}}}\\nA: \\n')\n")
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
        assert screen.query_one("#student-editor", TemplateEditor).text == "Q: {{ input }}\nA: "


def test_switching_extractor_kind_leaves_no_stale_keys(project_dir):
    project_file = ProjectFile(project_dir)
    project_file.set_extract("regex", "")
    project_file.set_extract("regex", "(\\d+)")
    assert tomlkit.parse(project_file.text())["extract"]["pattern"] == "(\\d+)"
    project_file.set_extract("after_marker", "Answer: ")
    extract = tomlkit.parse(project_file.text())["extract"]
    assert dict(extract) == {"kind": "after_marker", "marker": "Answer: "}
    project_file.set_extract("identity", "")
    assert dict(tomlkit.parse(project_file.text())["extract"]) == {"kind": "identity"}


async def test_extractor_switch_in_the_app_drops_the_pattern(project_dir):
    app = CtxApp(project_dir, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.example is not None)
        screen.query_one("#extract-kind").value = "regex"
        await pilot.pause()
        screen.query_one("#extract-kind").value = "identity"
        await pilot.pause()
        assert "pattern" not in tomlkit.parse(app.project_file.text())["extract"]
        assert isinstance(app.screen, AuthorScreen)


async def test_dialogs_are_modal_for_app_keys(project_dir):
    """Issue 20 item 8: with a dialog open, F-keys and ctrl+s do not reach the screen behind, nor stack dialogs."""
    from ctxtui.screens.choice import ChoiceScreen

    path = project_dir / "project.toml"
    path.write_text(path.read_text().replace("batch_size = 4\n", "batch_size = 4\nbogus_key = 1\n"))
    app = CtxApp(project_dir, attach=False, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        app.project_file.dirty = True
        await pilot.press("ctrl+s")  # a project with problems: saving asks first
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("ctrl+s", "f3", "f2", "f5", "f6")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen) and "problems" in app.screen.question
        assert sum(isinstance(screen, ChoiceScreen) for screen in app.screen_stack) == 1
        assert app.current_mode == "runs"
        await pilot.press("c")
        await pilot.pause()
        assert not isinstance(app.screen, ChoiceScreen) and "bogus_key = 1" in path.read_text()
        await pilot.press("f3")  # and with the dialog gone, F3 works again
        await pilot.pause()
        assert app.current_mode == "run"


async def test_the_unsaved_marker_goes_when_the_text_is_back_to_the_saved_one(project_dir):
    """Issue 20 item 11: undoing an edit back to the file's text leaves nothing unsaved; quit then does not ask."""
    app = CtxApp(project_dir, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.example is not None)
        teacher = screen.query_one("#teacher-editor", TemplateEditor)
        original = teacher.text
        teacher.replace_text("Backwards: {{ input }}\n")
        await wait_for(pilot, lambda: "unsaved" in app.title)
        teacher.replace_text(original)
        await wait_for(pilot, lambda: "unsaved" not in app.title)
        assert not app.project_file.dirty
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not isinstance(app.screen, ChoiceScreen)  # nothing to save: no question
    assert app.return_code in (0, None)
