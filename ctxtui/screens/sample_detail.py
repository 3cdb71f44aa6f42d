"""One sample in detail: the teacher's and the student's outputs, diffed (difflib)."""

from __future__ import annotations

import difflib

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from ctxtui.widgets.sample_grid import input_text


def inline_diff(old: str, new: str) -> Content:
    """`old` -> `new` character by character: removed text struck in red, added text in green."""
    parts: list = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if tag == "equal":
            parts.append(old[a_start:a_end])
            continue
        if tag in ("replace", "delete"):
            parts.append((old[a_start:a_end], "strike $text-error on $error-muted"))
        if tag in ("replace", "insert"):
            parts.append((new[b_start:b_end], "bold $text-success on $success-muted"))
    return Content.assemble(*parts)


class SampleDetailScreen(ModalScreen):
    """Input, label, the three outputs, and teacher→student diffs."""

    CSS_PATH = "sample_detail.tcss"
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, sample: dict):
        super().__init__()
        self.sample = sample

    def compose(self) -> ComposeResult:
        sample = self.sample
        parts = {role: sample.get(role) or {} for role in ("teacher", "student_before", "student_after")}
        with VerticalScroll(id="detail"):
            yield Static(Content.assemble(("input  ", "bold"), input_text(sample)))
            yield Static(Content.assemble(("label  ", "bold"), str(sample.get("label")),
                                          ("   reference  ", "bold"), str(sample.get("reference", ""))))
            for role, part in parts.items():
                mark = "✓" if part.get("correct") else "✗"
                title = role.replace("_", " ")
                yield Static(Content.assemble((f"{title}  {mark}  answer: ", "bold"), str(part.get("answer", ""))),
                             classes="role-title")
                yield Static(Content(str(part.get("output", ""))), classes="output")
            teacher = str(parts["teacher"].get("output", ""))
            for role in ("student_before", "student_after"):
                yield Static(Content.assemble((f"diff teacher → {role.replace('_', ' ')}", "bold")),
                             classes="role-title")
                yield Static(inline_diff(teacher, str(parts[role].get("output", ""))), classes="output diff")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#detail").border_title = f"sample {self.sample.get('index', '')}"
