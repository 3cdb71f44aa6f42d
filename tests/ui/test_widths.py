"""Widths follow the terminal, long table lists filter (issue 20 item 15)."""

from __future__ import annotations

import pytest

from conftest import write_combined_project
from ctxtui.app import CtxApp
from test_author import wait_for

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("width, operations, tables", [(80, 18, 22), (160, 23, 32)])
async def test_the_side_lists_widen_with_the_terminal(tmp_path, toy_model_dir, width, operations, tables):
    project = write_combined_project(tmp_path / "demo", model=str(toy_model_dir))
    app = CtxApp(project, attach=False, start_mode="author")
    async with app.run_test(size=(width, 40)) as pilot:
        await pilot.pause()
        assert app.screen.query_one("#operations").outer_size.width == operations
        await pilot.press("f5")
        await pilot.pause()
        assert app.screen.query_one("#sections").outer_size.width == tables


async def test_the_table_list_filters_and_keeps_the_table_being_edited(tmp_path, toy_model_dir):
    project = write_combined_project(tmp_path / "demo", model=str(toy_model_dir))
    app = CtxApp(project, attach=False, start_mode="settings")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = app.screen
        await pilot.pause()
        everything = len(screen.sections)
        await pilot.press("slash")  # from the table list
        assert screen.query_one("#sections-filter").has_focus
        await pilot.press(*"lower")
        await wait_for(pilot, lambda: len(screen.sections) < everything)
        assert screen.sections and all("lower" in section.title for section in screen.sections)
        assert screen.section.title == screen.sections[0].title  # the form shows a table that is listed
        assert screen.query_one("#sections").border_subtitle == f"{len(screen.sections)} shown"
        await pilot.press("down")  # the next table while filtered
        await pilot.press("enter")
        assert screen.query_one("#sections").has_focus
        screen.query_one("#sections").highlighted = 1
        await pilot.pause()
        kept = screen.section
        await pilot.press("slash", "escape")  # escape clears the filter; the table being edited stays selected
        await wait_for(pilot, lambda: len(screen.sections) == everything)
        assert screen.section == kept and screen.sections[screen.query_one("#sections").highlighted] == kept
