"""Results: the before/after table, prompt-token savings, and the per-sample grid.

A combined run (issue 7) has one table per stage and operation: two selectors
pick which, and also filter the sample grid; the overwrite matrix shows every
operation's score after every stage (what a later stage overwrote).
"""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Select, Static

from ctxtui import runner, sweeps
from ctxtui.export import export_results
from ctxtui.screens.sample_detail import SampleDetailScreen
from ctxtui.widgets.metrics_table import MetricsTable, savings_line
from ctxtui.widgets.sample_grid import FILTERS, SampleGrid
from ctxtui.widgets.stage_matrix import StageMatrix, matrix_metrics
from ctxtui.widgets.key_footer import KeyFooter


class ResultsScreen(Screen):
    """What one run achieved: teacher vs student before vs student after."""

    CSS_PATH = "results.tcss"
    AUTO_FOCUS = "#results-samples"

    BINDINGS = [
        Binding("f", "cycle_filter", "Filter"),
        Binding("m", "cycle_matrix_metric", "Matrix", tooltip="The overwrite matrix's next metric"),  # combined runs
        Binding("slash", "search", "Search", show=False),  # the search box says "(/)": the footer fits 80 columns
        Binding("enter", "detail", "Diff", show=False),
        Binding("escape", "clear_search", "Clear search", show=False),
        Binding("x", "export", "Export"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.shown_run: Path | None = None
        self.samples: list[dict] = []
        self.metrics: dict = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("no results yet: finish a run first", id="results-title")
        with Horizontal(id="stage-row"):
            yield Select([], prompt="stage", allow_blank=True, id="results-stage", compact=True)
            yield Select([], prompt="operation", allow_blank=True, id="results-operation", compact=True)
        yield MetricsTable(id="results-metrics")
        yield Static("", id="results-savings")
        with Horizontal(id="filter-row"):
            yield Select([(label, key) for key, label in FILTERS.items()], value="all", allow_blank=False,
                         id="results-filter", compact=True)
            yield Input(placeholder="search inputs, labels, outputs  (/)", id="results-search", compact=True)
            yield Static("", id="results-count")
        yield SampleGrid(id="results-samples")
        yield StageMatrix(id="results-matrix")
        yield KeyFooter()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """The footer shows m only where there is a matrix (a combined run)."""
        return bool(self.metrics.get("combined")) if action == "cycle_matrix_metric" else True

    def on_mount(self) -> None:
        self.query_one("#results-search").HELP = "## Search\n\nShows only samples whose input, label or outputs contain this text (case-insensitive). **escape** clears it."
        self.query_one("#results-filter").HELP = "## Filter\n\n- **student wrong**: the distilled student's answer is wrong\n- **improved**: wrong before, right after\n- **regressed**: right before, wrong after\n- **differs from teacher**: the student's answer is not the teacher's"
        self.query_one("#results-stage").HELP = (
            "## Stage and operation\n\nA combined run has a before/after table for each operation after each "
            "stage. Pick which; the sample grid shows that stage's samples of that operation.")
        self.query_one("#stage-row").display = False
        self.query_one("#results-matrix").display = False
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        run_dir = self.app.results_run_dir or self.latest_with_results()
        if run_dir is not None and run_dir != self.shown_run:
            self.show_run(run_dir)

    def latest_with_results(self) -> Path | None:
        for info in runner.list_runs(self.app.project_dir):
            if (info.run_dir / "metrics.json").exists():
                return info.run_dir
        return None

    def commands(self):
        for key, label in FILTERS.items():
            yield SystemCommand(f"Filter samples: {label}", "Results grid filter",
                                lambda key=key: self.set_filter(key))
        yield SystemCommand("Search samples", "Focus the search box (/)", self.action_search)
        yield SystemCommand("Diff selected sample", "Teacher vs student outputs (enter)", self.action_detail)
        yield SystemCommand("Export results", "The table and the shown samples as CSV and JSON in exports/ (x)",
                            self.action_export)

    def show_run(self, run_dir: Path) -> None:
        self.shown_run = Path(run_dir)
        sweep = sweeps.sweep_info(self.shown_run) if sweeps.is_sweep(self.shown_run) else None
        if sweep is not None:  # mean (min–max) over its runs; the samples are each run's own
            self.metrics = metrics = sweep.metrics
            self.samples = []
        else:
            self.metrics = metrics = runner.load_json(self.shown_run / "metrics.json")
            self.samples = runner.load_samples(self.shown_run)
        title = f"results of {self.shown_run.name}"
        if sweep is not None:
            title += f"  mean (min–max) {sweep.over}; samples: open one of its runs on Runs (F8)"
        elif seed := sweeps.seed_label(self.shown_run):
            title += f"  ({seed} of a sweep)"
        if not metrics:
            title += "  (no metrics.json yet)" if sweep is None else "  (no run finished yet)"
        self.query_one("#results-title", Static).update(title)
        self.query_one("#filter-row").display = sweep is None
        self.query_one("#results-samples").display = sweep is None
        combined = bool(metrics.get("combined"))
        self.query_one("#stage-row").display = combined
        matrix = self.query_one("#results-matrix", StageMatrix)
        matrix.display = combined
        if combined:
            stages = list(metrics.get("stages") or {})
            stage_select = self.query_one("#results-stage", Select)
            stage_select.set_options([(f"after stage {name}", name) for name in stages])
            if stages:
                stage_select.value = stages[-1]  # the run's end result first
            matrix.show_matrix(metrics.get("matrix") or {})
        self.show_selected_metrics()
        self.refresh_bindings()

    def selected_stage_operation(self) -> tuple[str | None, str | None]:
        if not self.metrics.get("combined"):
            return None, None
        stage, operation = (self.query_one(f"#results-{which}", Select).value for which in ("stage", "operation"))
        return (None if stage is Select.BLANK else str(stage)), (None if operation is Select.BLANK else str(operation))

    def show_selected_metrics(self) -> None:
        metrics = self.metrics
        stage, operation = self.selected_stage_operation()
        if metrics.get("combined"):
            operations = ((metrics.get("stages") or {}).get(stage) or {}).get("operations") or {}
            metrics = operations.get(operation) or {}
        self.query_one("#results-metrics", MetricsTable).show_metrics(metrics)
        self.query_one("#results-savings", Static).update(savings_line(metrics))
        self.refill()

    @on(Select.Changed, "#results-stage")
    def stage_picked(self) -> None:
        stage, operation = self.selected_stage_operation()
        operations = list((((self.metrics.get("stages") or {}).get(stage) or {}).get("operations") or {}))
        select = self.query_one("#results-operation", Select)
        select.set_options([(name, name) for name in operations])
        if operations:
            select.value = operation if operation in operations else operations[0]
        self.show_selected_metrics()

    @on(Select.Changed, "#results-operation")
    def operation_picked(self) -> None:
        self.show_selected_metrics()

    def shown_samples(self) -> list[tuple[int, dict]]:
        """(position in samples.jsonl, sample) of the selected stage and operation (all of a plain run)."""
        stage, operation = self.selected_stage_operation()
        return [(position, sample) for position, sample in enumerate(self.samples)
                if (stage is None or sample.get("stage_name") == stage)
                and (operation is None or sample.get("operation") == operation)]

    def refill(self) -> None:
        kind = str(self.query_one("#results-filter", Select).value)
        query = self.query_one("#results-search", Input).value.strip()
        candidates = self.shown_samples()
        shown = self.query_one("#results-samples", SampleGrid).show(candidates, kind, query)
        self.query_one("#results-count", Static).update(f"{shown}/{len(candidates)} samples")

    def action_cycle_matrix_metric(self) -> None:
        matrix = self.query_one("#results-matrix", StageMatrix)
        names = matrix_metrics(self.metrics.get("matrix") or {})
        if names:
            matrix.metric = names[(names.index(matrix.metric) + 1) % len(names)] if matrix.metric in names else names[0]
            matrix.show_matrix(self.metrics.get("matrix") or {})

    @on(Select.Changed, "#results-filter")
    @on(Input.Changed, "#results-search")
    def filters_changed(self) -> None:
        self.refill()

    @on(Input.Submitted, "#results-search")
    def search_submitted(self) -> None:
        self.query_one("#results-samples").focus()

    @on(DataTable.RowSelected, "#results-samples")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.open_detail(event.row_key.value)

    def set_filter(self, key: str) -> None:
        self.query_one("#results-filter", Select).value = key

    def action_cycle_filter(self) -> None:
        keys = list(FILTERS)
        current = str(self.query_one("#results-filter", Select).value)
        self.set_filter(keys[(keys.index(current) + 1) % len(keys)])

    def action_search(self) -> None:
        self.query_one("#results-search", Input).focus()

    def action_clear_search(self) -> None:
        self.query_one("#results-search", Input).value = ""
        self.query_one("#results-samples").focus()

    def action_detail(self) -> None:
        grid = self.query_one("#results-samples", SampleGrid)
        if grid.row_count:
            key, _ = grid.coordinate_to_cell_key(grid.cursor_coordinate)
            self.open_detail(key.value)

    def open_detail(self, key: str | None) -> None:
        """The sample with row `key`; n / p there step through the rows the grid shows."""
        keys = [row_key.value for row_key in self.query_one("#results-samples", SampleGrid).rows]
        if key in keys:
            self.app.push_screen(SampleDetailScreen([self.samples[int(k)] for k in keys], keys.index(key)))

    def action_export(self) -> None:
        """The shown table and the samples the grid shows (filter and search applied)."""
        if self.shown_run is None:
            self.notify("no run to export", severity="warning")
            return
        if sweeps.is_sweep(self.shown_run):
            self.notify(f"a sweep's figures are in {self.shown_run.name}/summary.json; export one of its runs "
                        "for samples", severity="warning")
            return
        stage, operation = self.selected_stage_operation()
        metrics = self.metrics
        if metrics.get("combined"):
            metrics = (((metrics.get("stages") or {}).get(stage) or {}).get("operations") or {}).get(operation) or {}
        keys = [row_key.value for row_key in self.query_one("#results-samples", SampleGrid).rows]
        samples = [self.samples[int(key)] for key in keys]
        scope = "-".join(part for part in (stage, operation) if part)
        try:
            written = export_results(self.app.project_dir, self.shown_run.name, metrics, samples, scope)
        except OSError as error:
            self.notify(f"export failed: {error}", severity="error")
            return
        self.last_export = written
        self.notify(f"{len(samples)} samples and the table written to exports/:\n"
                    + "\n".join(path.name for path in written), title="Export", timeout=8)
