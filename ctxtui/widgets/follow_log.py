"""The events pane: follows the end like `tail -f` until the user scrolls up (issue 20 item 9)."""

from __future__ import annotations

from textual.widgets import Log


class FollowLog(Log):
    """`follow(lines)` appends and keeps the end in view unless the user has scrolled away from it.

    A plain Log only follows while its view is at the end, so a pane that shrinks (a
    table appears above it) stopped following for good; this one remembers the user's
    intent instead, and a scroll back to the end resumes following.
    """

    following: bool = True

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.following = new_value >= self.max_scroll_y - 0.5

    def on_resize(self) -> None:
        if self.following:
            self.call_after_refresh(self._to_end)

    def follow(self, lines: list[str]) -> None:
        self.write_lines(lines, scroll_end=False)
        if self.following:
            self._to_end()

    def jump_to_end(self) -> None:
        """The run ended: show its last lines, and follow again."""
        self.following = True
        self.call_after_refresh(self._to_end)

    def _to_end(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.following = True
