"""The per-sample grid: input, label, teacher answer, student before / after."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

FILTERS = {
    "all": "all samples",
    "student_wrong": "student wrong",
    "improved": "improved",
    "regressed": "regressed",
    "differs": "differs from teacher",
}


def _part(sample: dict, role: str) -> dict:
    return sample.get(role) or {}


def _answer(sample: dict, role: str) -> str:
    return str(_part(sample, role).get("answer") or "").strip()


def input_text(sample: dict) -> str:
    value = sample.get("input")
    if isinstance(value, dict):
        value = value.get("input", value)
    return str(value)


def keep(sample: dict, kind: str, query: str = "") -> bool:
    """Whether `sample` passes filter `kind` (a key of FILTERS) and the search text."""
    before, after = bool(_part(sample, "student_before").get("correct")), bool(_part(sample, "student_after").get("correct"))
    passes = {
        "all": True,
        "student_wrong": not after,
        "improved": after and not before,
        "regressed": before and not after,
        "differs": _answer(sample, "student_after") != _answer(sample, "teacher"),
    }[kind]
    if not passes:
        return False
    if query:
        haystack = " ".join([input_text(sample), str(sample.get("label") or "")] +
                            [str(_part(sample, role).get("output", "")) for role in
                             ("teacher", "student_before", "student_after")])
        return query.lower() in haystack.lower()
    return True


def _answer_cell(sample: dict, role: str) -> Text:
    part = _part(sample, role)
    mark = "✓ " if part.get("correct") else "✗ "
    return Text(mark + _answer(sample, role).replace("\n", " ")[:40],
                style="green" if part.get("correct") else "red")


class SampleGrid(DataTable):
    """Rows are held-out samples; the screen calls `show(samples, kind, query)`."""

    HELP = """\
## Samples

One row per held-out input: ✓ / ✗ mark answers judged correct. **enter**
opens a diff of the teacher's and the student's outputs; **f** cycles the
filter, **/** searches.
"""

    BINDINGS = [
        Binding("enter", "select_cursor", "Diff"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns("#", "input", "label", "teacher", "student before", "student after")

    def show(self, samples: list[tuple[int, dict]], kind: str = "all", query: str = "") -> int:
        """Fill with the (key, sample) pairs that pass; returns how many."""
        self.clear()
        shown = 0
        for position, sample in samples:
            if not keep(sample, kind, query):
                continue
            self.add_row(str(sample.get("index", position)), input_text(sample).replace("\n", " ")[:40],
                         str(sample.get("label") if sample.get("label") is not None else "–")[:24],
                         _answer_cell(sample, "teacher"), _answer_cell(sample, "student_before"),
                         _answer_cell(sample, "student_after"), key=str(position))
            shown += 1
        return shown
