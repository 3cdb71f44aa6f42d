"""The footer of every screen: compact, readable at 80 columns (issue 20 item 16).

The command palette's key shows only where there is room (F1 lists it, and the
header's ⭘ opens the palette too); the app's screen keys are named or grouped
by width (ctxtui/keys.py).
"""

from __future__ import annotations

from textual import events
from textual.widgets import Footer

from ctxtui.keys import WIDE


class KeyFooter(Footer):
    """`Footer(compact=True)` that drops the palette key on a narrow terminal."""

    def __init__(self) -> None:
        super().__init__(compact=True)

    def on_resize(self, event: events.Resize) -> None:
        wide = self.app.size.width >= WIDE
        if wide != self.show_command_palette:
            self.show_command_palette = wide
            self.call_after_refresh(self.recompose)
