"""Runs: the project's run history; open a dashboard or results, compare two runs.

A sweep (`ctxdistill run --seeds N`) is one row, its member runs under it
(enter folds and unfolds them); its figures are mean (min–max) over its runs.
"""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from ctxtui import runner, stages, sweeps
from ctxtui.screens.compare import CompareScreen
from ctxtui.widgets.key_footer import KeyFooter

REFRESH_S = 2.0


def headline(info: runner.RunInfo | sweeps.SweepInfo) -> tuple[str, str, str, str]:
    """(metric, teacher, before, after) for the first metric; a staged run's names its stage and operation;
    a sweep's are mean (min–max)."""
    where, metrics = stages.headline_of(info.metrics)  # the last stage's first operation stands for a staged run
    after = metrics.get("student_after") or {}
    if not after:
        return ("", "", "", "")
    name = next(iter(after))

    def value(role: str) -> str:
        return sweeps.number((metrics.get(role) or {}).get(name))

    return (f"{name} ({where})" if where else name, value("teacher"), value("student_before"), value("student_after"))


class RunsScreen(Screen):
    """One row per run folder under `PROJECT/runs/`, newest first; a sweep's runs under its row."""

    CSS_PATH = "runs.tcss"

    BINDINGS = [
        Binding("enter", "open_dashboard", "Open", priority=True),
        Binding("o", "open_results", "Results"),
        Binding("space", "mark", "Mark", key_display="␣"),  # the footer fits 80 columns
        Binding("c", "compare", "Compare"),
        Binding("ctrl+r", "refresh", "Refresh", show=False),  # it refreshes itself every 2 s
        Binding("j", "cursor('down')", "Down", show=False),
        Binding("k", "cursor('up')", "Up", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[runner.RunInfo] = []
        self.sweeps: dict[Path, sweeps.SweepInfo] = {}
        self.folded: set[Path] = set()  # sweeps whose member rows are hidden
        self.marked: list[Path] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.HELP = "## Runs\n\nEvery run folder of this project. **enter** opens its dashboard, **o** its results; mark two or more with **space** and press **c** to compare their configs and metrics; **j**/**k** move.\n\nA sweep (`ctxdistill run --seeds N`) is one row with its runs under it: **enter** folds or unfolds them, **o** shows its results as mean (min–max) over the seeds, and it can be marked and compared like a run."
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
        project_dir = self.app.project_dir
        self.runs = runner.list_runs(project_dir)
        found = sweeps.list_sweeps(project_dir, self.runs)
        self.sweeps = {sweep.sweep_dir: sweep for sweep in found}
        in_sweep = {member.run_dir for sweep in found for member in sweep.members}
        entries = sorted([*found, *(info for info in self.runs if info.run_dir not in in_sweep)],
                         key=lambda entry: entry.name, reverse=True)
        table = self.query_one("#runs-table", DataTable)
        selected = self.selected()
        table.clear()
        for entry in entries:
            if isinstance(entry, sweeps.SweepInfo):
                self.add_sweep_rows(table, entry)
            else:
                self.add_run_row(table, entry, entry.name)
        if table.row_count:
            keys = [row.key.value for row in table.ordered_rows]
            table.move_cursor(row=keys.index(str(selected)) if str(selected) in keys else 0)
        runs = len(self.runs) - len(in_sweep)
        parts = [f"{runs} run(s)"] if runs or not found else []
        parts += [f"{len(found)} sweep(s) of {len(in_sweep)} runs"] if found else []
        self.query_one("#runs-title", Static).update(
            f"{', '.join(parts)} in {project_dir.name}/runs/" if entries else
            "no runs yet: launch one on the Run screen (F3, then n)")

    def add_run_row(self, table: DataTable, info: runner.RunInfo, label: str) -> None:
        table.add_row("●" if info.run_dir in self.marked else " ", label, info.status, info.date,
                      stages.trained_steps(info.state), *headline(info), key=str(info.run_dir))

    def add_sweep_rows(self, table: DataTable, sweep: sweeps.SweepInfo) -> None:
        """The sweep's row (its figures mean (min–max)), then its runs unless folded."""
        folded = sweep.sweep_dir in self.folded
        table.add_row("●" if sweep.sweep_dir in self.marked else " ",
                      f"{'▸' if folded else '▾'} {sweep.name}", sweep.status, sweep.date,
                      f"{len(sweep.members)} runs", *headline(sweep), key=str(sweep.sweep_dir))
        if folded:
            return
        for position, member in enumerate(sweep.members):
            branch = "└" if position == len(sweep.members) - 1 else "├"
            seed = sweeps.member_of(member.run_dir)  # the full name is on its dashboard
            self.add_run_row(table, member, f"  {branch} seed {seed.get('seed')} ({seed.get('index')}/{seed.get('count')})")

    def selected(self) -> Path | None:
        table = self.query_one("#runs-table", DataTable)
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return Path(key.value)

    @on(DataTable.RowSelected, "#runs-table")
    def row_selected(self) -> None:
        self.action_open_dashboard()

    def action_open_dashboard(self) -> None:
        """A run: its dashboard; a sweep: fold or unfold its runs."""
        if (run_dir := self.selected()) in self.sweeps:
            self.folded ^= {run_dir}
            self.action_refresh()
        elif run_dir is not None:
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
