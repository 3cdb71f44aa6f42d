"""New project: a folder and a template, written by `engine.project.scaffold` (as `ctxdistill init`)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from engine.errors import EngineError
from engine.project.scaffold import DESCRIPTIONS, TEMPLATES, create_project


class NewProjectScreen(ModalScreen[Path | None]):
    """Dismisses with the new project's folder, or None when cancelled."""

    CSS_PATH = "choice.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, base: Path):
        super().__init__()
        self.base = Path(base)

    def compose(self) -> ComposeResult:
        with Vertical(id="choice"):
            yield Static("New project", id="choice-question")
            yield Input(str(self.base / "my-distillation"), id="new-folder", compact=True)
            yield Select([(f"{name}: {DESCRIPTIONS[name]}", name) for name in TEMPLATES], value="instructions",
                         allow_blank=False, id="new-template", compact=True)
            yield Static("", id="choice-detail", markup=False)
            with Horizontal(id="choice-buttons"):
                yield Button("Create", id="new-create", variant="primary", compact=True)
                yield Button("Cancel", id="new-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#new-folder").HELP = "## Folder\n\nWhere the project is created (a new or empty folder)."
        self.query_one("#new-folder", Input).focus()

    def on_input_submitted(self) -> None:
        self.create()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "new-create":
            self.create()
        else:
            self.dismiss(None)

    def create(self) -> None:
        folder = Path(self.query_one("#new-folder", Input).value.strip()).expanduser()
        template = str(self.query_one("#new-template", Select).value)
        try:
            create_project(folder, template)
        except (EngineError, OSError) as error:
            self.query_one("#choice-detail", Static).update(str(error))
            return
        self.dismiss(folder.resolve())
