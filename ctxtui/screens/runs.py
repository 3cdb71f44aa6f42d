"""Runs: the project's run history; open a dashboard or results, compare two runs."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ctxtui import runner, stages
from ctxtui.screens.compare import CompareScreen

REFRESH_S = 2.0


def headline(info: runner.RunInfo) -> tuple[str, str, str, str]:
    """(metric, teacher, before, after) for the first metric; a staged run's names its stage and operation."""
    where, metrics = stages.headline_of(info.metrics)  # the last stage's first operation stands for a staged run
    after = metrics.get("student_after") or {}
    if not after:
        return ("", "", "", "")
    name = next(iter(after))

    def value(role: str) -> str:
        number = (metrics.get(role) or {}).get(name)
        return f"{number:.3f}" if isinstance(number, (int, float)) else "–"

    return (f"{name} ({where})" if where else name, value("teacher"), value("student_before"), value("student_after"))


class RunsScreen(Screen):
    """One row per run folder under `PROJECT/runs/`, newest first."""

    CSS_PATH = "runs.tcss"

    BINDINGS = [
        Binding("enter", "open_dashboard", "Open", priority=True),
        Binding("o", "open_results", "Results"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("ctrl+r", "refresh", "Refresh", show=False),  # it refreshes itself every 2 s
        Binding("j", "cursor('down')", "Down", show=False),
        Binding("k", "cursor('up')", "Up", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[runner.RunInfo] = []
        self.marked: list[Path] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.HELP = "## Runs\n\nEvery run folder of this project. **enter** opens its dashboard, **o** its results; mark two or more with **space** and press **c** to compare their configs and metrics; **j**/**k** move."
        table.add_columns(" ", "run", "status", "date", "steps", "metric", "teacher", "before", "after")
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh)

    def commands(self):
        yield SystemCommand("Open run dashboard", "The selected run on the Run screen (enter)",
                            self.action_open_dashboard)
        yield SystemCommand("Open run results", "The selected run on the Results screen (o)", self.action_open_results)
        yield SystemCommand("Mark run for compare", "Mark / unmark the selected run (space)", self.action_mark)
        yield SystemCommand("Compare two runs", "Configs and metrics side by side (c)", self.action_compare)

    def action_refresh(self) -> None:
        self.runs = runner.list_runs(self.app.project_dir)
        table = self.query_one("#runs-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        for info in self.runs:
            table.add_row("●" if info.run_dir in self.marked else " ", info.name, info.status, info.date,
                          stages.trained_steps(info.state),
                          *headline(info), key=str(info.run_dir))
        if self.runs:
            table.move_cursor(row=min(cursor, len(self.runs) - 1))
        self.query_one("#runs-title", Static).update(
            f"{len(self.runs)} run(s) in {self.app.project_dir.name}/runs/" if self.runs else
            "no runs yet: launch one on the Run screen (F3, then n)")

    def selected(self) -> Path | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.runs:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return Path(key.value)

    @on(DataTable.RowSelected, "#runs-table")
    def row_selected(self) -> None:
        self.action_open_dashboard()

    def action_open_dashboard(self) -> None:
        if (run_dir := self.selected()) is not None:
            self.app.open_run(run_dir)

    def action_open_results(self) -> None:
        if (run_dir := self.selected()) is not None:
            self.app.open_results(run_dir)

    def action_cursor(self, direction: str) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.action_cursor_down() if direction == "down" else table.action_cursor_up()

    def action_mark(self) -> None:
        run_dir = self.selected()
        if run_dir is None:
            return
        if run_dir in self.marked:
            self.marked.remove(run_dir)
        else:
            self.marked = self.marked + [run_dir]
        self.action_refresh()

    def action_compare(self) -> None:
        marked = list(self.marked)
        selected = self.selected()
        if len(marked) == 1 and selected is not None and selected not in marked:
            marked.append(selected)
        if len(marked) < 2:
            self.notify("mark two or more runs with space (or one, then put the cursor on another)",
                        severity="warning")
            return
        # A is the earliest run; every marked run gets a column.
        self.app.push_screen(CompareScreen(*sorted(marked, key=lambda path: path.name)))
