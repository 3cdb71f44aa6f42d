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


TASK_OPTION_PY = '''
def task_inputs(rng, n, task):
    rows = []
    for _ in range(n):
        word = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 6)))
        rows.append({"input": word, "label": word[::-1] if task == "reverse" else word.upper()})
    return rows
'''


async def test_settings_and_launch_run_the_same_checks_as_ctxdistill_check(tmp_path, toy_model_dir):
    """Issue 20 item 5: a new operation inherits an input function without its option; check refuses it."""
    from engine.checks import check_project
    from engine.errors import EngineError
    from engine.project.loader import load_project

    project = write_combined_project(tmp_path / "demo", model=str(toy_model_dir))
    (project / "tasks.py").write_text(TASK_OPTION_PY)
    text = (project / "project.toml").read_text().replace('function = "tasks:reverse_inputs"', 'function = "tasks:task_inputs"')
    text = text.replace('name = "upper"\n', 'name = "upper"\ninputs.options = { task = "upper" }\n')
    text = text.replace('name = "lower"\n', 'name = "lower"\ninputs.options = { task = "reverse" }\n')
    (project / "project.toml").write_text(text)
    check_project(load_project(project))  # the project as written passes `ctxdistill check`
    app = CtxApp(project, attach=False, start_mode="settings")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        panel = screen.query_one("#settings-problems")
        await wait_for(pilot, lambda: "`ctxdistill check` passes" in str(panel.render()))
        screen.query_one("#sections").focus()
        await pilot.press("o")  # add an operation: it inherits tasks:task_inputs without `task`
        await wait_for(pilot, lambda: "task" in " ".join(app.project_problems()), timeout=60)
        shown = str(panel.render())
        assert "1 problem(s), as `ctxdistill check` reports them" in shown and "missing a required argument: 'task'" in shown
        assert "warning: operation op3 is in no stage, so it is never trained" in shown
        # `ctxdistill check` says the same of the saved file.
        (tmp_path / "copy").mkdir()
        (tmp_path / "copy" / "tasks.py").write_text(TASK_OPTION_PY)
        (tmp_path / "copy" / "project.toml").write_text(app.project_file.text())
        with pytest.raises(EngineError, match="missing a required argument: 'task'"):
            check_project(load_project(tmp_path / "copy"))
        # Launch is refused before any run folder is made.
        await pilot.press("f3", "n")
        await pilot.pause()
        assert not (project / "runs").exists()


async def test_unknown_keys_are_renamed_or_removed_in_the_app_and_the_file_opens_in_the_editor(
        project_dir, tmp_path, monkeypatch):
    """Issue 20 item 6: F6 offers the engine's suggestion or removal; ctrl+o opens project.toml in $EDITOR."""
    from ctxtui.screens.choice import ChoiceScreen

    path = project_dir / "project.toml"
    path.write_text(path.read_text().replace("learning_rate = 1e-3", "lerning_rate = 1e-3  # the rate")
                    .replace("batch_size = 4\n", "batch_size = 4\nbogus_key = 1\n"))
    editor = tmp_path / "editor.sh"  # an "editor" that adds a typo to the file it is given
    editor.write_text('#!/bin/sh\nsed -i "s/^count = 4$/cuont = 4/" "$1"\n')
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    app = CtxApp(project_dir, attach=False, start_mode="settings")
    async with app.run_test(size=SIZE) as pilot:
        assert app.project is None
        panel = app.screen.query_one("#settings-problems")
        assert "F6: rename or remove the unknown keys" in str(panel.render())
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        assert app.screen.question == "Unknown key `distill.bogus_key` = 1"
        assert [key for key, _ in app.screen.choices] == ["remove", "cancel"]  # nothing close to suggest
        await pilot.press("r")  # remove
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen) and "lerning_rate" in app.screen.question)
        assert app.screen.question == "Unknown key `distill.lerning_rate` = 0.001"
        assert app.screen.choices[0] == ("rename", "Rename to `learning_rate`")
        await pilot.press("r")  # rename
        await wait_for(pilot, lambda: app.project is not None)
        text = app.project_file.text()
        assert "learning_rate = 1e-3  # the rate" in text and "bogus_key" not in text
        assert app.project.distill.learning_rate == 1e-3 and not app.config_problems
        assert "unknown key" not in str(app.screen.query_one("#settings-problems").render())
        # ctrl+o: the file itself in $EDITOR (unsaved edits are saved first, so nothing is lost).
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert "cuont" not in path.read_text()  # refused: the edits above are not saved yet
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not app.project_file.dirty)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: any("eval.cuont" in problem for problem in app.config_problems))
        assert "cuont = 4" in app.project_file.text()


async def test_switching_the_extractor_kind_drops_the_keys_only_the_old_kind_reads(project_dir):
    """Issue 20 item 7: regex -> identity in Settings leaves no `pattern` behind; comments stay with their keys."""
    path = project_dir / "project.toml"
    path.write_text(path.read_text().replace('[extract]\nkind = "identity"\n',
                                             '[extract]\nkind = "regex"   # how to cut\npattern = "[a-z]+"   # letters only\n'))
    app = CtxApp(project_dir, attach=False, start_mode="settings")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        pick(screen, "extract")
        await wait_for(pilot, lambda: screen.query("#input-pattern") and screen.section.title == "extract")
        assert screen.query_one("#input-pattern").value == "[a-z]+"
        await pilot.pause(0.2)  # the form's Select finishes mounting before it is changed
        screen.query_one("#input-kind").value = "identity"
        await wait_for(pilot, lambda: app.project is not None and app.project.extract.kind == "identity")
        text = app.project_file.text()
        assert 'kind = "identity"   # how to cut' in text
        assert "pattern" not in text and "letters only" not in text  # the key went, with its comment
        await wait_for(pilot, lambda: screen.query("#input-pattern") and screen.query_one("#input-pattern").value == "")
