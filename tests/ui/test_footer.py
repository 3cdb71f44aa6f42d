"""The footer (issue 20 item 16): the focused screen's keys, ctrl+s, F5, x and m included, readable at 80 columns."""

from __future__ import annotations

import pytest
from textual.widgets import Footer

from conftest import write_combined_project, write_combined_run, write_run
from ctxtui.app import CtxApp
from test_author import wait_for

SIZE = (80, 24)

pytestmark = pytest.mark.anyio


def footer_keys(app) -> list[tuple[str, str, int]]:
    """(key, description, right edge) of each footer key shown, left to right (the palette key last)."""
    footer = app.screen.query_one(Footer)
    shown = [key for key in footer.query("FooterKey") if key.display]
    return [(key.key, key.description, key.region.right) for key in sorted(shown, key=lambda key: key.region.x)]


def fits(app, width: int) -> bool:
    """Every key and label lies inside the terminal and left of the palette key, if shown (none clipped)."""
    footer = app.screen.query_one(Footer)
    others = [right for key, _, right in footer_keys(app) if key != "ctrl+p"]
    others += [label.region.right for label in footer.query("FooterLabel")]  # "screens"
    palette = footer.query(".-command-palette")
    return max(others) <= (palette.first().region.x if palette else width)


async def test_every_screens_footer_fits_80_columns_with_its_own_keys(tmp_path, toy_model_dir):
    project = write_combined_project(tmp_path / "demo", model=str(toy_model_dir))
    run_dir = write_combined_run(project)
    app = CtxApp(project, attach=False, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for mode, wanted in (("runs", {"enter", "o", "space", "c"}), ("results", {"f", "x", "m"}),
                             ("settings", {"o", "t", "delete"}), ("author", {"ctrl+o", "ctrl+r"})):
            app.switch_mode(mode)
            await pilot.pause()
            keys = {key for key, _, _ in footer_keys(app)}
            assert wanted <= keys, mode
            assert {"ctrl+s", "f1", "f2", "f3", "f4", "f5", "f8"} <= keys, mode  # F5 included, in one group
            assert fits(app, SIZE[0]), (mode, footer_keys(app))
        app.open_run(run_dir)
        await wait_for(pilot, lambda: app.screen.has_class("-stage-results"))
        await pilot.pause()
        keys = {key for key, _, _ in footer_keys(app)}
        assert {"n", "s", "r", "m"} <= keys and fits(app, SIZE[0])
        for key, mode in (("f5", "settings"), ("f4", "results"), ("f8", "runs")):
            await pilot.press(key)  # the grouped keys switch screens as the named ones do
            await pilot.pause()
            assert app.current_mode == mode


async def test_a_wide_footer_names_each_screen_and_m_only_where_there_is_a_matrix(project_dir):
    write_run(project_dir)
    app = CtxApp(project_dir, attach=False, start_mode="results")
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        described = {key: description for key, description, _ in footer_keys(app)}
        assert described["f5"] == "Settings" and described["f8"] == "Runs" and described["x"] == "Export"
        assert "m" not in described  # a plain run has no overwrite matrix
        assert fits(app, 160) and "ctrl+p" in described  # room for the palette key too
        await pilot.press("f5")
        await pilot.pause()
        assert app.current_mode == "settings"
