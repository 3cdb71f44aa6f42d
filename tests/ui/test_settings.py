"""Settings (F5): every table as a form, help per key, the CLI's messages live, comments kept."""

from __future__ import annotations

import pytest
import tomlkit

from conftest import write_combined_project
from ctxtui.app import CtxApp
from ctxtui.config_form import FieldSpec, parse_text
from ctxtui.screens.settings import SettingsScreen
from ctxtui.widgets.field_row import FieldRow
from engine.project.schema import field_help
from test_author import wait_for

pytestmark = pytest.mark.anyio

SIZE = (100, 40)


def pick(screen, title: str) -> None:
    screen.query_one("#sections").highlighted = [s.title for s in screen.sections].index(title)


async def test_forms_edit_validate_and_keep_comments(project_dir):
    app = CtxApp(project_dir, attach=False, start_mode="settings")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        titles = [section.title for section in screen.sections]
        for table in ("model", "inputs", "generate", "distill", "eval"):
            assert table in titles
        pick(screen, "distill")
        await wait_for(pilot, lambda: screen.query("#field-max_steps"))
        row = screen.query_one("#field-max_steps", FieldRow)
        assert str(row.query_one(".field-help").render()) == field_help("distill.max_steps")
        field = row.query_one("#input-max_steps")
        field.value = "many"
        await wait_for(pilot, lambda: row.has_class("-error"))
        assert app.project is None
        assert "`distill.max_steps` = 'many': expected an integer" in str(row.query_one(".field-problems").render())
        assert "expected an integer" in str(screen.query_one("#settings-problems").render())
        field.value = "7"
        await wait_for(pilot, lambda: app.project is not None)
        assert app.project.distill.max_steps == 7 and not row.has_class("-error") and "unsaved" in app.title
        # A choice is a select; its blank removes the key (the default applies).
        pick(screen, "eval")
        await wait_for(pilot, lambda: screen.query("#field-reference"))
        # A Select composes its parts after it mounts: set its value only once they are there.
        await wait_for(pilot, lambda: screen.query("#input-reference SelectCurrent #label"))
        screen.query_one("#input-reference").value = "teacher"
        await wait_for(pilot, lambda: app.project.eval.reference == "teacher")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not app.project_file.dirty)
    saved = (project_dir / "project.toml").read_text()
    assert "# A tiny test project (this comment must survive a save)" in saved
    document = tomlkit.parse(saved)
    assert document["distill"]["max_steps"] == 7 and document["eval"]["reference"] == "teacher"


async def test_operations_and_stages_are_forms_too(tmp_path, toy_model_dir):
    project = write_combined_project(tmp_path / "demo", str(toy_model_dir))
    app = CtxApp(project, attach=False, start_mode="settings")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        titles = [section.title for section in screen.sections]
        assert {"op upper", "op upper · teacher", "stage first", "stage second · distill"} <= set(titles)
        pick(screen, "op lower")
        await wait_for(pilot, lambda: screen.query("#field-weight"))
        screen.query_one("#input-weight").value = "-1"
        await wait_for(pilot, lambda: screen.query_one("#field-weight").has_class("-error"))
        assert "operations.lower.weight" in str(screen.query_one("#field-weight .field-problems").render())
        screen.query_one("#input-weight").value = "3"
        await wait_for(pilot, lambda: app.project is not None)
        assert app.project.operation("lower").weight == 3.0
        # An override table: empty fields show the inherited value; a set one overrides it.
        pick(screen, "stage second · distill")
        await wait_for(pilot, lambda: screen.query("#field-max_steps")
                       and screen.section.title == "stage second · distill")
        assert "inherits 4" in screen.query_one("#input-max_steps").placeholder
        screen.query_one("#input-max_steps").value = "9"
        await wait_for(pilot, lambda: app.project is not None and app.project.stages[1].distill.max_steps == 9)
        # Add a stage from the table list, then remove it.
        screen.query_one("#sections").focus()
        await pilot.press("t")
        await pilot.pause()
        assert app.project_file.stage_names() == ["first", "second", "stage3"]
        assert screen.section.title == "stage stage3"
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("r")
        await wait_for(pilot, lambda: app.project_file.stage_names() == ["first", "second"])


def test_typed_text_becomes_the_value_the_engine_checks():
    number = FieldSpec("max_steps", "int", "", None, 0)
    assert parse_text(number, "12") == 12 and parse_text(number, "") is None
    assert parse_text(number, "twelve") == "twelve"  # the engine names what was expected
    words = FieldSpec("metrics", "list", "", None, [])
    assert parse_text(words, "exact_match, rouge_l") == ["exact_match", "rouge_l"]
    assert parse_text(words, '["\\n"]') == ["\n"]
    until = FieldSpec("until", "str", "", None, "\n")
    assert parse_text(until, "\\n") == "\n"
