"""The overwrite matrix of a combined run: each operation's score after each stage (paper 2.3).

Rows are stages in run order, columns operations; a cell is the student's
score on that operation after that stage, so a fall down a column is what a
later stage overwrote (the paper's hypothesis 3).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable


def matrix_metrics(matrix: dict) -> list[str]:
    """Metric names found in the matrix, in first-seen order."""
    names: list[str] = []
    for operations in matrix.values():
        for figures in operations.values():
            for name in figures or {}:
                if name not in names:
                    names.append(name)
    return names


class StageMatrix(DataTable):
    """The screen calls `show_matrix(metrics["matrix"])`; `metric` picks the score shown (m cycles)."""

    HELP = """\
## Overwrite matrix

The distilled student's score on every operation (columns) after every stage
(rows). A fall down a column is what a later stage overwrote; a dash means the
operation was not evaluated after that stage (not trained yet). On Results
**m** cycles the metric shown; on the Run screen **m** goes back to the summary.
"""

    DEFAULT_CSS = """
    StageMatrix { height: auto; max-height: 9; margin: 0 1; border: round $primary 50%; }
    """

    def __init__(self, *, id: str | None = None, key_hint: str = "m: metric"):
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.metric: str | None = None
        self.key_hint = key_hint  # what the screen's m does, named in the title

    def show_matrix(self, matrix: dict) -> None:
        self.clear(columns=True)
        names = matrix_metrics(matrix)
        if self.metric not in names:
            self.metric = names[0] if names else None
        operations = list(dict.fromkeys(name for row in matrix.values() for name in row))
        self.border_title = f"overwrite matrix: student {self.metric or ''} after each stage ({self.key_hint})"
        self.add_columns("after stage", *operations)
        previous: dict = {}
        for stage, row in matrix.items():
            cells = []
            for operation in operations:
                value = (row.get(operation) or {}).get(self.metric)
                if not isinstance(value, (int, float)):
                    cells.append(Text("–"))
                    continue
                earlier = previous.get(operation)
                style = "red" if isinstance(earlier, (int, float)) and value < earlier else ""
                cells.append(Text(f"{value:.3f}", style=style))
                previous[operation] = value
            self.add_row(stage, *cells, key=stage)
