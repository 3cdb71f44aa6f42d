"""Compare marked runs: their metrics side by side, and config diffs against the oldest (A).

A sweep compares like a run, its figures mean (min–max) over its seeds.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from ctxtui import runner, stages, sweeps
from ctxtui.widgets.metrics_table import ROLES
from ctxtui.widgets.key_footer import KeyFooter


def config_diff(old: Path, new: Path) -> Content:
    def lines(run_dir: Path) -> list[str]:
        try:
            return sweeps.config_file(run_dir).read_text().splitlines()
        except OSError:
            return []

    diff = list(difflib.unified_diff(lines(old), lines(new), old.name, new.name, lineterm="", n=1))
    if not diff:
        return Content("the two configs are identical")
    styled = []
    for line in diff:
        style = ("$text-success" if line.startswith("+") else "$text-error" if line.startswith("-")
                 else "$text-muted" if line.startswith("@@") else "")
        styled.append(Content.styled(line, style))
    return Content("\n").join(styled)


class CompareScreen(ModalScreen):
    """Any number of runs: metrics in one column each, config diffs of each against the first."""

    CSS_PATH = "compare.tcss"
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, *runs: Path):
        super().__init__()
        self.runs = [Path(run) for run in runs]
        self.letters = [chr(ord("A") + i) if i < 26 else str(i + 1) for i in range(len(self.runs))]

    def compose(self) -> ComposeResult:
        self.swept = {run: sweeps.sweep_info(run) for run in self.runs if sweeps.is_sweep(run)}
        names = "\n".join(f"{letter} = {run.name}" + (f"  (sweep: mean (min–max) {self.swept[run].over})"
                                                         if run in self.swept else "")
                          for letter, run in zip(self.letters, self.runs))
        with VerticalScroll(id="compare"):
            yield Static(Content.styled(names, "bold"))
            yield DataTable(id="compare-metrics", cursor_type="row")
            for letter, run in zip(self.letters[1:], self.runs[1:]):
                yield Static(Content.styled(f"config diff (A → {letter})", "bold"), classes="section")
                yield Static(config_diff(self.runs[0], run), classes="compare-config",
                             id="compare-config" if letter == "B" else None)
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#compare-metrics", DataTable)
        last = self.letters[-1]
        table.add_columns("metric", *self.letters, f"{last} − A")
        # A staged run is compared by its headline table: its last stage's first operation, named in a row.
        headlines = [stages.headline_of(self.swept[run].metrics if run in self.swept
                                        else runner.load_json(run / "metrics.json")) for run in self.runs]
        metrics = [tables for _, tables in headlines]
        if any(where for where, _ in headlines):
            table.add_row("stage/operation", *(where or "–" for where, _ in headlines), "")

        number = sweeps.number
        for role in ROLES:
            names = list(dict.fromkeys(name for m in metrics for name in (m.get(role) or {})))
            for name in names:
                values = [(m.get(role) or {}).get(name) for m in metrics]
                first, final = values[0], values[-1]
                delta = (f"{final - first:+.3f}" if isinstance(first, (int, float)) and isinstance(final, (int, float))
                         else "–")
                table.add_row(f"{role.replace('_', ' ')} {name}", *(number(v) for v in values), delta)
        for when in ("before", "after"):
            values = [(m.get("answer_kl") or {}).get(when) for m in metrics]
            if any(isinstance(v, (int, float)) for v in values):
                first, final = values[0], values[-1]
                delta = (f"{final - first:+.3f}" if isinstance(first, (int, float)) and isinstance(final, (int, float))
                         else "–")
                table.add_row(f"answer KL {when} (↓)", *(number(v) for v in values), delta)
        ratios = [(m.get("prompt_tokens") or {}).get("ratio") for m in metrics]
        table.add_row("prompt token ratio", *(number(r, 2) for r in ratios), "")
        states = [self.swept.get(run) or runner.run_info(run) for run in self.runs]
        table.add_row("status", *(s.status for s in states), "")
        table.add_row("training steps", *(f"{len(s.members)} runs" if isinstance(s, sweeps.SweepInfo)
                                          else stages.trained_steps(s.state) for s in states), "")
