"""Dialogs and field defaults (issue 20 item 17): centred, no clipped button labels, defaults that agree with help."""

from __future__ import annotations

import pytest

from ctxtui.app import CtxApp
from ctxtui.config_form import FieldSpec, default_text, field_specs
from ctxtui.screens.choice import ChoiceScreen
from ctxtui.screens.new_project import NewProjectScreen
from test_author import wait_for

pytestmark = pytest.mark.anyio

SIZE = (80, 24)
# Every dialog's buttons in the app (the longest labels).
CHOICES = [
    [("cancel", "Cancel"), ("overwrite", "Overwrite it"), ("reload", "Reload from disk")],
    [("save", "Save and quit"), ("discard", "Discard and quit"), ("cancel", "Cancel")],
    [("save", "Save, then open"), ("discard", "Discard, then open"), ("cancel", "Cancel")],
    [("quit", "Quit (the run goes on)"), ("cancel", "Cancel")],
]


def centred(app, dialog) -> bool:
    region, (width, height) = dialog.region, app.size
    return abs(region.x - (width - region.right)) <= 1 and abs(region.y - (height - region.bottom)) <= 1


async def test_the_new_project_dialog_is_centred_and_no_button_label_is_clipped(project_dir):
    app = CtxApp(project_dir, attach=False, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        app.action_new_project()
        await wait_for(pilot, lambda: isinstance(app.screen, NewProjectScreen))
        await pilot.pause()
        assert centred(app, app.screen.query_one("#choice"))
        for choices in CHOICES:
            app.pop_screen()
            app.push_screen(ChoiceScreen("A question that takes a line.", choices, detail="detail"))
            await pilot.pause()
            dialog = app.screen.query_one("#choice")
            assert centred(app, dialog)
            inside = dialog.content_region
            for button in app.screen.query("Button"):
                assert inside.contains_region(button.region), (str(button.label), button.region, inside)
                assert button.region.width >= len(str(button.label)), str(button.label)


def test_an_empty_default_agrees_with_the_help():
    operations = FieldSpec("operations", "list", "Names of the operations trained in this stage (default: all).",
                           None, [])
    assert default_text(operations) == "default: all"  # not "default []" beside "default: all"
    assert default_text(FieldSpec("metrics", "list", "Metrics.", None, [])) == "default: empty"
    assert default_text(FieldSpec("max_steps", "int", "Steps.", None, 100)) == "default 100"


def test_a_stages_operations_field_says_default_all():
    """The engine's own field: its help says "default: all", so the empty field's placeholder does too."""
    from engine.project.schema import Stage

    operations = next(spec for spec in field_specs(Stage) if spec.key == "operations")
    assert default_text(operations) == "default: all"
