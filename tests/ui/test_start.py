"""Starting ctxtui (issue 12): no TTY, --help, the chooser, new projects (also `ctxdistill init`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_project
from ctxtui.app import CtxApp
from ctxtui.screens.chooser import ChooserApp, find_projects
from engine.project.loader import load_project
from engine.project.scaffold import TEMPLATES, create_project
from test_author import SIZE, wait_for

ROOT = Path(__file__).resolve().parents[2]


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                      "HF_HUB_OFFLINE": "1"})


def test_without_a_terminal_it_exits_at_once_with_a_message(tmp_path):
    write_project(tmp_path / "demo")
    result = run_module("ctxtui.app", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 2
    assert "needs an interactive terminal" in result.stderr


def test_help_documents_arguments_and_keys(tmp_path):
    result = run_module("ctxtui.app", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for words in ("PROJECT_DIR", "F1 workflow", "F2 Author", "ctrl+q quit", "ctrl+o", "ctxdistill init"):
        assert words in result.stdout


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_init_template_is_a_valid_project(tmp_path, template):
    folder = create_project(tmp_path / "new one", template)
    project = load_project(folder)
    assert project.name == "new-one"
    assert "#" in (folder / "project.toml").read_text()  # commented
    from engine.project.sources import sample_inputs

    assert len(sample_inputs(project, 2)) == 2  # tasks.py runs as it is


def test_init_command_never_overwrites(tmp_path):
    result = run_module("engine.cli", "init", str(tmp_path / "p"), "--template", "scratchpad", cwd=tmp_path)
    assert result.returncode == 0 and (tmp_path / "p" / "tasks.py").exists()
    before = (tmp_path / "p" / "project.toml").read_text()
    again = run_module("engine.cli", "init", str(tmp_path / "p"), cwd=tmp_path)
    assert again.returncode == 2 and "never overwrites" in again.stderr
    assert (tmp_path / "p" / "project.toml").read_text() == before


@pytest.mark.anyio
async def test_chooser_opens_a_project_below_the_folder(tmp_path):
    write_project(tmp_path / "a")
    write_project(tmp_path / "group" / "b")
    assert find_projects(tmp_path) == [tmp_path / "a", tmp_path / "group" / "b"]
    app = ChooserApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")  # the first project is highlighted (below "New project…")
        await pilot.pause()
    assert app.return_value == tmp_path / "a"


@pytest.mark.anyio
async def test_chooser_creates_a_new_project(tmp_path):
    app = ChooserApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        folder_input = app.screen.query_one("#new-folder")
        folder_input.value = str(tmp_path / "fresh")
        await pilot.press("enter")
        await pilot.pause()
    assert app.return_value == (tmp_path / "fresh").resolve()
    assert load_project(tmp_path / "fresh").name == "fresh"


@pytest.mark.anyio
async def test_new_project_from_the_palette_asks_about_unsaved_edits(project_dir, tmp_path):
    from ctxtui.screens.choice import ChoiceScreen
    from ctxtui.screens.new_project import NewProjectScreen
    from ctxtui.widgets.template_editor import TemplateEditor

    app = CtxApp(project_dir, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.example is not None)
        screen.query_one("#student-editor", TemplateEditor).replace_text("Q: {{ input }}\n")
        await pilot.pause()
        app.action_new_project()
        await pilot.pause()
        assert isinstance(app.screen, NewProjectScreen)
        app.screen.query_one("#new-folder").value = str(tmp_path / "other")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("d")  # discard, then open
        await pilot.pause()
    assert app.return_value == (tmp_path / "other").resolve()
