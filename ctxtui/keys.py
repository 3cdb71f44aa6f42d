"""The app's keys, and which of them the footer shows (issue 20 item 16).

The footer shows the focused screen's keys first, then the app's, and must stay
readable at 80 columns. The five screen keys (F2 Author, F3 Run, F4 Results,
F5 Settings, F8 Runs) are bound twice: named one by one on a wide terminal,
and as one group `f2 f3 f4 f5 f8 screens` on a narrow one (F1 names them). Each
binding's `check_action` hides the other. The palette key shows from the same
width (widgets/key_footer.py), which leaves room for ctrl+s everywhere.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import ModalScreen

WIDE = 110  # columns from which the footer names every screen's F-key
SCREENS = Binding.Group("screens")

# App keys that act on the screen behind a dialog: while one is open they are the dialog's (issue 20 item 8).
BEHIND_DIALOG_ACTIONS = {"switch_mode", "show_run", "goto", "save", "fix_keys", "edit_file", "workflow_help",
                         "new_project"}
NAMED = {"switch_mode", "show_run"}  # the screen keys shown one by one (wide)

BINDINGS = [
    Binding("ctrl+s", "save", "Save", priority=True),
    Binding("f1", "workflow_help", "Help", tooltip="The workflow and every key"),
    Binding("question_mark", "toggle_help", "Keys", show=False, tooltip="Key map and help for the focused widget"),
    Binding("f2", "switch_mode('author')", "Author", priority=True),
    Binding("f3", "show_run", "Run", priority=True),
    Binding("f4", "switch_mode('results')", "Results", priority=True),
    Binding("f5", "switch_mode('settings')", "Settings", priority=True),
    Binding("f8", "switch_mode('runs')", "Runs", priority=True),
    # The same keys as one footer group on a narrow terminal (the first binding a key's check lets through runs).
    Binding("f2", "goto('author')", "Author", priority=True, group=SCREENS),
    Binding("f3", "goto('run')", "Run (the live run)", priority=True, group=SCREENS),
    Binding("f4", "goto('results')", "Results", priority=True, group=SCREENS),
    Binding("f5", "goto('settings')", "Settings", priority=True, group=SCREENS),
    Binding("f8", "goto('runs')", "Runs", priority=True, group=SCREENS),
    Binding("ctrl+t", "toggle_theme", "Light/dark", show=False),
    Binding("f6", "fix_keys", "Fix keys", priority=True, show=False),  # unknown keys: rename or remove
    Binding("ctrl+o", "edit_file", "Edit file", show=False),  # Author's own ctrl+o edits the focused template
    Binding("ctrl+q", "quit", "Quit", priority=True, show=False),
]


def check(app, action: str) -> bool | None:
    """App.check_action: nothing behind a dialog; the screen keys named or grouped by width."""
    if isinstance(app.screen, ModalScreen) and action in BEHIND_DIALOG_ACTIONS:
        return False
    wide = app.size.width >= WIDE
    if action in NAMED:
        return wide
    if action == "goto":
        return not wide
    return True
