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
it (short prompt), with the first metric of the project's `eval.metrics`;
**Δ** is after minus before, **KL after** the student's answer KL to the
teacher (lower is better).
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
        metrics = [first_score(tables) or "" for _, tables in rows]
        shared = metrics[0] if len(set(metrics)) == 1 else None  # one metric: named in the title, not per row
        self.add_columns("operation", *([] if shared is not None else ["metric"]), "teacher", "before", "after", "Δ",
                         "KL after")
        for (operation, tables), metric in zip(rows, metrics):
            teacher, before, after = ((tables.get(role) or {}).get(metric)
                                      for role in ("teacher", "student_before", "student_after"))
            kl = (tables.get("answer_kl") or {}).get("after")
            self.add_row(operation, *([] if shared is not None else [metric]), _cell(teacher), _cell(before),
                         _cell(after), _gap(after, before), _cell(kl), key=operation)
        scored = f"{shared} per operation" if shared else "each operation"
        self.border_title = f"after stage {stage}{where}: {scored} (m: overwrite matrix)"
