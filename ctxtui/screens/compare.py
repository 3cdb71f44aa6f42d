"""Compare two runs: their configs (a unified diff of project.toml) and metrics side by side."""

from __future__ import annotations

import difflib
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from ctxtui import runner
from ctxtui.widgets.metrics_table import ROLES


def config_diff(old: Path, new: Path) -> Content:
    def lines(run_dir: Path) -> list[str]:
        try:
            return (run_dir / "project.toml").read_text().splitlines()
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
    """Two runs' config differences and metrics."""

    CSS_PATH = "compare.tcss"
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, left: Path, right: Path):
        super().__init__()
        self.left, self.right = Path(left), Path(right)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="compare"):
            yield Static(Content.styled(f"A = {self.left.name}\nB = {self.right.name}", "bold"))
            yield DataTable(id="compare-metrics", cursor_type="row")
            yield Static(Content.styled("config diff (A → B)", "bold"), classes="section")
            yield Static(config_diff(self.left, self.right), id="compare-config")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#compare-metrics", DataTable)
        table.add_columns("metric", "A", "B", "B − A")
        metrics = [runner.load_json(d / "metrics.json") for d in (self.left, self.right)]
        for role in ROLES:
            names = list(dict.fromkeys([*(metrics[0].get(role) or {}), *(metrics[1].get(role) or {})]))
            for name in names:
                a, b = ((m.get(role) or {}).get(name) for m in metrics)
                delta = f"{b - a:+.3f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "–"
                table.add_row(f"{role.replace('_', ' ')} {name}",
                              *(f"{v:.3f}" if isinstance(v, (int, float)) else "–" for v in (a, b)), delta)
        ratios = [(m.get("prompt_tokens") or {}).get("ratio") for m in metrics]
        table.add_row("prompt token ratio", *(f"{r:.2f}" if isinstance(r, (int, float)) else "–" for r in ratios), "")
        states = [runner.run_info(d) for d in (self.left, self.right)]
        table.add_row("status", states[0].status, states[1].status, "")
        table.add_row("steps", *(str(s.state.step) for s in states), "")
