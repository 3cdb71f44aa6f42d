"""The teacher / student-before / student-after table, with deltas."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from ctxtui.sweeps import number

ROLES = ("teacher", "student_before", "student_after")

# Other rows of metrics.json that are scores on the same held-out inputs. Each
# gets one row per metric, its value in the column it compares with: the mean
# single teacher of an ensemble beside the teacher, the rest beside "after".
# The student asked with the teacher template has no "before" of its own: before
# distillation, that is the teacher (same weights, same prompt).
EXTRA_ROWS = {"teacher_single_mean": ("teacher", "mean single teacher"),
              "student_after_teacher_template": ("after", "after, teacher template")}
NO_BEFORE = {"student_after_teacher_template"}


def _cell(value) -> str:
    return number(value)  # a sweep's figure: mean (min–max)


def _delta(value: float | None, lower_is_better: bool = False) -> Text:
    """Always the later value minus the earlier one; green when that is an improvement."""
    if value is None:
        return Text("–")
    better = -value if lower_is_better else value
    style = "green" if better > 0 else "red" if better < 0 else ""
    return Text(f"{value:+.3f}", style=style)


def _gap(later, earlier, lower_is_better: bool = False) -> Text:
    """`later - earlier` as a Δ cell, "–" unless both are numbers."""
    numeric = all(isinstance(v, (int, float)) for v in (later, earlier))
    return _delta(later - earlier if numeric else None, lower_is_better)


class MetricsTable(DataTable):
    """One row per metric; the screen calls `show_metrics(metrics)` with metrics.json's dict."""

    HELP = """\
## Before / after

Each metric on the held-out inputs for the teacher (long prompt), the student
before distillation and after it (short prompt). Every Δ is the later value
minus the earlier one: **Δ after−before**, and **after−teacher** (0 means the
student caught up). Green marks an improvement: a rise for scores, a fall for
the answer KL (lower is better).

Below the main rows, when the run has them: the paper's baselines
(`baseline scdir`, ...; their score sits in the *after* column, compared with
the same teacher and student before), the student after asked with the
teacher template (the skill it kept; compare it with the teacher, which is
the same prompt before distillation), and an ensemble's mean single teacher.

A sweep (a run repeated over seeds) shows each figure as mean (min–max) over
its runs; its Δs are between the means.
"""

    DEFAULT_CSS = """
    MetricsTable { height: auto; max-height: 14; }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns("metric", "teacher", "before", "after", "Δ after−before", "after−teacher")

    def show_metrics(self, metrics: dict) -> None:
        self.clear()
        names: list[str] = []
        for role in ROLES:
            for name in metrics.get(role, {}) or {}:
                if name not in names:
                    names.append(name)
        for name in names:
            teacher, before, after = (metrics.get(role, {}).get(name) for role in ROLES)
            self.add_row(name, _cell(teacher), _cell(before), _cell(after), _gap(after, before),
                         _gap(after, teacher if isinstance(before, (int, float)) else None), key=name)
        kl = metrics.get("answer_kl") or {}
        if kl:
            before, after = kl.get("before"), kl.get("after")
            self.add_row("answer KL (↓)", "–", _cell(before), _cell(after),
                         _gap(after, before, lower_is_better=True), "–", key="answer_kl")
        for row, (column, label) in extra_rows(metrics):
            for name, value in (metrics.get(row) or {}).items():
                teacher, before = (metrics.get(role, {}).get(name) for role in ROLES[:2])
                if row in NO_BEFORE:
                    before = None
                if column == "teacher":
                    self.add_row(f"{name} · {label}", _cell(value), "–", "–", "–", "–", key=f"{row}/{name}")
                    continue
                self.add_row(f"{name} · {label}", _cell(teacher), _cell(before), _cell(value),
                             _gap(value, before), _gap(value, teacher), key=f"{row}/{name}")


def extra_rows(metrics: dict) -> list[tuple[str, tuple[str, str]]]:
    """(metrics.json key, (column, label)) of the rows beyond teacher / before / after, in display order."""
    rows = [(key, EXTRA_ROWS[key]) for key in EXTRA_ROWS if isinstance(metrics.get(key), dict)]
    for key in sorted(key for key in metrics if key.startswith("baseline_") and isinstance(metrics[key], dict)):
        rows.append((key, ("after", f"baseline {key.removeprefix('baseline_')}")))
    return rows


def savings_line(metrics: dict) -> str:
    """'teacher 120.0 → student 14.0 prompt tokens (8.6×, saves 88%)'."""
    tokens = metrics.get("prompt_tokens") or {}
    teacher, student = tokens.get("teacher"), tokens.get("student")
    if not isinstance(teacher, (int, float)) or not isinstance(student, (int, float)):
        return ""
    ratio = tokens.get("ratio") or (teacher / student if student else float("inf"))
    saved = 1 - student / teacher if teacher else 0.0
    count = metrics.get("count")
    on = f" over {count} held-out inputs" if count else ""
    line = (f"prompt tokens per call: teacher {teacher:.1f} → student {student:.1f} "
            f"({ratio:.1f}×, saves {saved:.0%}){on}")
    inference = metrics.get("inference_tokens") or {}
    if isinstance(inference.get("ratio"), (int, float)):
        line += f"; prompt + output: {inference['ratio']:.2f}× fewer"
    if metrics.get("baselines_budget"):
        line += f"; baselines trained with the {metrics['baselines_budget']} step budget"
    return line
