"""A staged run's results on the dashboard: every operation after the latest stage evaluated, one row each."""

from __future__ import annotations

from textual.widgets import DataTable

from ctxtui.stages import first_score
from ctxtui.widgets.metrics_table import _cell, _gap


class StageSummary(DataTable):
    """The screen calls `show_summary(stage, rows, where)`; a row per operation, named, with its stage in the title."""

    HELP = """\
## Results after a stage

Each operation the student has met so far, scored after the stage named in
the title: the teacher (long prompt), the student before this stage and after
it (short prompt), with the first metric of the project's `eval.metrics`.
While the run evaluates, rows fill in as each evaluation ends. **m** shows
the overwrite matrix instead (every operation after every stage); the full
tables and samples per stage and operation are on Results (**o**).
"""

    DEFAULT_CSS = """
    StageSummary { height: auto; max-height: 12; margin: 0 1; border: round $primary 50%; }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def show_summary(self, stage: str, rows: list[tuple[str, dict]], where: str = "") -> None:
        self.clear(columns=True)
        self.add_columns("operation", "metric", "teacher", "before", "after", "Δ after−before", "answer KL after")
        for operation, tables in rows:
            metric = first_score(tables) or ""
            teacher, before, after = ((tables.get(role) or {}).get(metric)
                                      for role in ("teacher", "student_before", "student_after"))
            kl = (tables.get("answer_kl") or {}).get("after")
            self.add_row(operation, metric, _cell(teacher), _cell(before), _cell(after), _gap(after, before),
                         _cell(kl), key=operation)
        self.border_title = f"after stage {stage}{where}: each operation (m: overwrite matrix)"
