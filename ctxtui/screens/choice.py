"""A question with a few answers (save / discard / cancel, reload / keep, ...), one key each.

The screen dismisses with the chosen answer's key; escape answers "cancel".
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ChoiceScreen(ModalScreen[str]):
    """Ask `question`; `choices` are (key, label) pairs, the key's first letter is its shortcut."""

    CSS_PATH = "choice.tcss"
    BINDINGS = [Binding("escape", "choose('cancel')", "Cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str]], *, detail: str = ""):
        super().__init__()
        self.question = question
        self.detail = detail
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(id="choice"):
            yield Static(self.question, id="choice-question", markup=False)
            if self.detail:
                yield Static(self.detail, id="choice-detail", markup=False)
            with Horizontal(id="choice-buttons"):
                for index, (key, label) in enumerate(self.choices):
                    variant = "primary" if index == 0 else "default"
                    yield Button(f"{label} ({key[0]})", id=f"choice-{key}", variant=variant, compact=True)

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    def on_key(self, event) -> None:
        for key, _ in self.choices:
            if event.character and event.character.lower() == key[0]:
                event.stop()
                self.dismiss(key)
                return

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(str(event.button.id).removeprefix("choice-"))

    def action_choose(self, key: str) -> None:
        self.dismiss(key)
