"""One key of a project table in a form: its name, an input, its help, and its problems."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Select, Static

from ctxtui.config_form import FieldSpec, default_text, format_value


class FieldRow(Vertical):
    """The screen sets the row's value, placeholder and `problems`; the row posts `Edited`."""

    DEFAULT_CSS = """
    FieldRow { height: auto; margin: 0 0 1 0; }
    FieldRow > Horizontal { height: 1; }
    FieldRow .field-key { width: 1fr; max-width: 22; color: $text-accent; }
    FieldRow Input, FieldRow Select { width: 2fr; }
    FieldRow .field-help { color: $text-muted; padding: 0 0 0 2; height: auto; }
    FieldRow .field-problems { color: $text-error; padding: 0 0 0 2; height: auto; display: none; }
    FieldRow.-error .field-problems { display: block; }
    FieldRow.-error .field-key { color: $text-error; }
    """

    @dataclass
    class Edited(Message):
        """The user changed the field: `text` as typed (a Select's value as text, "" for its blank)."""

        row: "FieldRow"
        text: str

    def __init__(self, spec: FieldSpec, value, *, dotted: str, inherited=None):
        super().__init__(id=f"field-{spec.key}")
        self.spec = spec
        self.dotted = dotted
        self._value = value
        self._inherited = inherited
        self._shown = "" if value is None else format_value(spec, value)  # a change to this is an edit
        self._problems: list[str] = []

    def compose(self) -> ComposeResult:
        spec, value = self.spec, self._value
        with Horizontal():
            yield Static(spec.key, classes="field-key")
            placeholder = default_text(spec, self._inherited)
            if spec.kind == "bool" or spec.choices:
                choices = (True, False) if spec.kind == "bool" else spec.choices
                options = [(format_value(spec, choice), format_value(spec, choice)) for choice in choices]
                shown = format_value(spec, value) if value is not None else Select.NULL
                if shown is not Select.NULL and shown not in dict(options):
                    options.append((shown, shown))  # a wrong value in the file shows as it is
                yield Select(options, prompt=placeholder, value=shown, allow_blank=True, compact=True,
                             id=f"input-{spec.key}")
            else:
                yield Input(format_value(spec, value), placeholder=placeholder, compact=True, id=f"input-{spec.key}")
        yield Static(spec.help, classes="field-help", markup=False)
        yield Static("", classes="field-problems", markup=False)

    def on_mount(self) -> None:
        self.show_problems(self._problems)

    def show_problems(self, problems: list[str]) -> None:
        self._problems = problems
        self.set_class(bool(problems), "-error")
        for panel in self.query(".field-problems").results(Static):  # none yet before compose
            panel.update("\n".join(problems))

    def clear_value(self) -> None:
        """The key left the file by another edit (an extractor kind's switch): show it empty, as no edit."""
        self._shown = ""
        for field in self.query(Input).results(Input):
            field.value = ""

    def edited(self, text: str) -> None:
        if text != self._shown:  # not the initial value being shown
            self._shown = text
            self.post_message(self.Edited(self, text))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.edited(event.value)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.edited("" if event.value is Select.NULL else str(event.value))
