"""A template editor: line numbers, undo, and the template's error shown inline."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult, SuspendNotSupported
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static, TextArea


class TemplateTextArea(TextArea):
    """The editing surface of a `TemplateEditor`."""

    HELP = """\
## Template editor

A Jinja2 template. `{{ input }}` (and any other field of the input) is
replaced by the picked sample input; the rendered prompt below updates as you
type, and the preview regenerates.

- **ctrl+z / ctrl+y**: undo / redo
- **ctrl+o**: edit in `$EDITOR` (a final newline the editor adds is dropped)
- **ctrl+s**: save `project.toml`
"""


def text_from_editor(original: str, edited: str) -> str:
    """The template as the user wrote it in $EDITOR.

    Editors end every saved file with a newline; when the template had none, that
    newline is the editor's, not the user's, and would change the prompt (issue 12).
    """
    if not original.endswith("\n") and edited.endswith("\n"):
        return edited[:-1]
    return edited


class TemplateEditor(Vertical):
    """Edits one template ("teacher" or "student"); the screen sets `error`."""

    DEFAULT_CSS = """
    TemplateEditor { border: round $primary 50%; height: 1fr; }
    TemplateEditor:focus-within { border: round $primary; }
    TemplateEditor.-error { border: round $error; }
    TemplateEditor > TemplateTextArea { height: 1fr; border: none; padding: 0; }
    TemplateEditor > .template-error { color: $error; height: auto; max-height: 3; display: none; }
    TemplateEditor.-error > .template-error { display: block; }
    """

    error: reactive[str] = reactive("")

    @dataclass
    class Edited(Message):
        """The template text changed (typing, undo, or `$EDITOR`)."""

        editor: "TemplateEditor"
        role: str
        text: str

    def __init__(self, role: str, text: str, *, id: str | None = None):
        super().__init__(id=id)
        self.role = role
        self._initial_text = text
        self.border_title = f"{role} template"

    def compose(self) -> ComposeResult:
        yield TemplateTextArea(self._initial_text, show_line_numbers=True, soft_wrap=True,
                               tab_behavior="focus", id=f"{self.role}-text")
        yield Static("", classes="template-error", markup=False)

    @property
    def text_area(self) -> TemplateTextArea:
        return self.query_one(TemplateTextArea)

    @property
    def text(self) -> str:
        return self.text_area.text

    def replace_text(self, text: str) -> None:
        """Replace all text as one undoable edit (used after `$EDITOR`)."""
        area = self.text_area
        area.replace(text, area.document.start, area.document.end)

    def edit_externally(self) -> None:
        """Edit the text in $VISUAL / $EDITOR (the app suspends meanwhile)."""
        command = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
        with tempfile.NamedTemporaryFile("w", suffix=f".{self.role}.jinja", delete=False, encoding="utf-8",
                                         newline="") as file:
            file.write(self.text)
            path = Path(file.name)
        try:
            try:
                with self.app.suspend():
                    subprocess.call([*command, str(path)])
            except SuspendNotSupported:  # headless (tests) or no real terminal: run it anyway
                subprocess.call([*command, str(path)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(path, encoding="utf-8", newline="") as file:
                text = text_from_editor(self.text, file.read())
        except OSError as error:
            self.notify(f"could not run $EDITOR: {error}", severity="error")
            return
        finally:
            path.unlink(missing_ok=True)
        if text != self.text:
            self.replace_text(text)

    def watch_error(self, error: str) -> None:
        self.set_class(bool(error), "-error")
        self.query_one(".template-error", Static).update(error)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self.post_message(self.Edited(self, self.role, event.text_area.text))
