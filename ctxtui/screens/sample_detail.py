"""One sample in detail: teacher, student before and student after side by side, with their prompts.

Each column shows the prompt that model saw, its output and its answer; below,
the answer KL of this sample when the run recorded one, and the teacher→student
diffs (difflib). **n** / **p** step through the samples the grid shows.
"""

from __future__ import annotations

import difflib

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Static

from ctxtui.widgets.sample_grid import input_text
from ctxtui.widgets.key_footer import KeyFooter

ROLES = ("teacher", "student_before", "student_after")


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


def sample_kl(sample: dict) -> str | None:
    """The sample's answer KL as the run recorded it (`answer_kl`: a number or {before, after}), else None."""
    kl = sample.get("answer_kl")
    if kl is None:
        found = {role: (sample.get(role) or {}).get("answer_kl") for role in ("student_before", "student_after")}
        kl = {role.split("_")[1]: value for role, value in found.items() if value is not None} or None
    if isinstance(kl, dict):
        before, after = kl.get("before"), kl.get("after")
        if isinstance(before, (int, float)) and isinstance(after, (int, float)):
            return f"answer KL {before:.4f} → {after:.4f} (Δ after − before {after - before:+.4f})"
        return "answer KL " + "  ".join(f"{key} {value}" for key, value in kl.items())
    if isinstance(kl, (int, float)):
        return f"answer KL {kl:.4f}"
    return None


class SampleDetailScreen(ModalScreen):
    """Input, label, the three models' prompts and outputs in columns, and teacher→student diffs."""

    CSS_PATH = "sample_detail.tcss"
    BINDINGS = [
        Binding("escape,q", "dismiss", "Close"),
        Binding("n,right", "step(1)", "Next"),
        Binding("p,left", "step(-1)", "Previous"),
    ]

    position: reactive[int] = reactive(0, recompose=True)

    def __init__(self, samples: list[dict], position: int = 0):
        super().__init__()
        self.samples = samples
        self.set_reactive(SampleDetailScreen.position, position)

    @property
    def sample(self) -> dict:
        return self.samples[self.position]

    def compose(self) -> ComposeResult:
        sample = self.sample
        parts = {role: sample.get(role) or {} for role in ROLES}
        with VerticalScroll(id="detail"):
            yield Static(Content.assemble(("input  ", "bold"), input_text(sample)))
            yield Static(Content.assemble(("label  ", "bold"), str(sample.get("label")),
                                          ("   reference  ", "bold"), str(sample.get("reference", ""))))
            where = "  ".join(f"{key} {sample[key]}" for key in ("stage_name", "operation") if sample.get(key))
            kl = sample_kl(sample) or "answer KL: not recorded for single samples by this run"
            yield Static(Content.assemble((kl, "$text-muted"), ("   " + where if where else "", "$text-muted")),
                         id="detail-kl")
            with Horizontal(id="columns"):
                for role, part in parts.items():
                    mark = "✓" if part.get("correct") else "✗"
                    with Vertical(classes="column"):
                        yield Static(Content.assemble((f"{role.replace('_', ' ')} {mark}", "bold")),
                                     classes="role-title")
                        yield Static(Content.assemble(("answer ", "bold"), str(part.get("answer", ""))))
                        yield Static(Content(str(part.get("prompt", ""))), classes="prompt")
                        yield Static(Content(str(part.get("output", ""))), classes="output")
            teacher = str(parts["teacher"].get("output", ""))
            for role in ("student_before", "student_after"):
                yield Static(Content.assemble((f"diff teacher → {role.replace('_', ' ')}", "bold")),
                             classes="role-title")
                yield Static(inline_diff(teacher, str(parts[role].get("output", ""))), classes="output diff")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.show_title()

    def watch_position(self) -> None:
        self.call_after_refresh(self.show_title)

    def show_title(self) -> None:
        detail = self.query_one("#detail")
        detail.border_title = f"sample {self.sample.get('index', '')}"
        detail.border_subtitle = f"{self.position + 1}/{len(self.samples)}  n/p next/previous"

    def action_step(self, delta: int) -> None:
        self.position = (self.position + delta) % len(self.samples)
