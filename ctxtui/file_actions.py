"""App-wide fixes of project.toml (issue 20 item 6): unknown keys fixed in place, the file opened in $EDITOR."""

from __future__ import annotations

import os
import shlex
import subprocess

from textual.app import SuspendNotSupported

from ctxtui.key_fixes import unknown_keys
from ctxtui.screens.choice import ChoiceScreen


def refresh_problems(app) -> None:
    """The edited file changed outside the screen's own widgets: validate it and redraw what shows problems."""
    app.revalidate_project()
    screen = app.screen
    if hasattr(screen, "show_sections"):  # Settings: its forms show the file's values
        picker = screen.query_one("#sections")
        screen.show_sections(picker.highlighted or 0)
    if hasattr(screen, "show_problems"):
        screen.show_problems()


async def fix_unknown_keys(app) -> None:
    """Ask about each unknown key in turn: rename it to the engine's suggestion, remove it, or leave it."""
    keys = unknown_keys(app.config_problems, app.project_file)
    if not keys:
        app.notify("no unknown keys to fix" + ("" if not app.config_problems else ": the problems shown need an edit"))
        return
    for unknown in keys:
        table = app.project_file.table_at(unknown.path)
        choices = []
        if unknown.new_key and unknown.new_key not in table:
            choices.append(("rename", f"Rename to `{unknown.new_key}`"))
        choices += [("remove", "Remove it"), ("cancel", "Leave it")]
        value = app.project_file.value(unknown.path, unknown.key)
        choice = await app.push_screen_wait(ChoiceScreen(
            f"Unknown key `{unknown.dotted}` = {value!r}", choices,
            detail="The engine does not know this key, so nothing can run until it is fixed. Rename keeps its value "
                   "and its comment where they are; both are unsaved edits (ctrl+s saves)."))
        if choice == "rename":
            app.project_file.rename_key(unknown.path, unknown.key, unknown.new_key)
        elif choice == "remove":
            app.project_file.set_value(unknown.path, unknown.key, None)
        else:
            break
        refresh_problems(app)


def edit_in_editor(app) -> None:
    """Open project.toml itself in $VISUAL / $EDITOR, then read it back (only with no unsaved edits to lose)."""
    project_file = app.project_file
    if project_file.dirty:
        app.notify("save (ctrl+s) or reload your unsaved edits first: the editor works on the file on disk",
                   severity="warning")
        return
    command = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    try:
        try:
            with app.suspend():
                subprocess.call([*command, str(project_file.path)])
        except SuspendNotSupported:  # headless (tests) or no real terminal: run it anyway
            subprocess.call([*command, str(project_file.path)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as error:
        app.notify(f"could not run $EDITOR: {error}", severity="error")
        return
    try:
        app.reload_project()
    except Exception as error:  # the editor left it unparsable (tomlkit's ParseError): say where, keep going
        app.notify(f"{project_file.path.name} does not parse: {error}; fix it (ctrl+o)", severity="error", timeout=10)
        return
    refresh_problems(app)
    app.notify(f"read {project_file.path.name} back from the editor")
