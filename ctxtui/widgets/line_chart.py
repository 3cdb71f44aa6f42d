"""A braille line chart of one series over a whole run (loss, learning rate), stage starts marked."""

from __future__ import annotations

import math

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

# Braille dot bits indexed [row][column] inside one 2x4 cell.
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_AXIS_WIDTH = 9


def _format(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.2e}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


class LineChart(Widget):
    """Plots `points` ((x, y) pairs) scaled to fit; the y range is labelled on the left."""

    HELP = """\
## Curve

The whole run so far, first step at the left, latest at the right. The
labels on the left are the highest and lowest values seen. In a staged run
the steps count on across stages, and a dotted line `┊` marks where each
later stage starts training (named at the top).
"""

    DEFAULT_CSS = """
    LineChart {
        height: 8;
        border: round $primary 50%;
        border-title-color: $text-muted;
    }
    """

    points: reactive[list[tuple[float, float]]] = reactive(list, always_update=True)
    marks: reactive[list[tuple[float, str]]] = reactive(list)  # (x after which a stage starts, its name)

    def __init__(self, title: str = "", *, name=None, id=None, classes=None):
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = title

    def render(self) -> Content:
        width, height = self.content_size.width, self.content_size.height
        plot_width = max(1, width - _AXIS_WIDTH)
        points = [(x, y) for x, y in self.points if math.isfinite(y)]
        if height < 2 or not points:
            return Content("no data yet".center(width) if height else "")
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x_min, x_max, y_min, y_max = min(xs), max(xs), min(ys), max(ys)
        if y_max == y_min:  # a flat line (a constant learning rate): a band around it, same sign
            pad = abs(y_max) * 0.1 or 0.5
            y_max, y_min = y_max + pad, y_min - pad
        x_span = (x_max - x_min) or 1.0
        cells = [[0] * plot_width for _ in range(height)]
        dots_x, dots_y = plot_width * 2 - 1, height * 4 - 1

        def to_dot(x: float, y: float) -> tuple[float, float]:
            return (x - x_min) / x_span * dots_x, (y_max - y) / (y_max - y_min) * dots_y

        mark_xs = sorted(x for x, _ in self.marks)
        previous, previous_x = None, None
        for x, y in points:
            dot = to_dot(x, y)
            if previous_x is not None and any(previous_x <= mark < x for mark in mark_xs):
                previous = None  # a new stage: its curve starts afresh, never joined to the last one's
            segment = [dot] if previous is None else _interpolate(previous, dot)
            for dx, dy in segment:
                column, row = int(round(dx)), int(round(dy))
                cells[row // 4][column // 2] |= _DOTS[row % 4][column % 2]
            previous, previous_x = dot, x

        # Stage starts: a dotted column half a step after the stage before ends, the stage's name at the top.
        mark_columns: dict[int, str] = {}
        for x, stage in self.marks:
            if x_min <= x < x_max:
                mark_columns[min(plot_width - 1, int(round(to_dot(x + 0.5, y_min)[0])) // 2)] = stage
        label_chars: dict[tuple[int, int], str] = {}  # (row, column) -> a character of a stage's name
        for column, stage in mark_columns.items():
            # The name where the curve leaves room: right of the line at the top, then at the bottom, then left of it.
            for row, start in ((0, column + 1), (height - 1, column + 1), (0, column - len(stage))):
                spots = [(row, start + offset) for offset in range(len(stage))]
                if all(0 <= c < plot_width and not cells[r][c] and c not in mark_columns and (r, c) not in label_chars
                       for r, c in spots):
                    label_chars.update(zip(spots, stage))
                    break

        line_style = "$accent"
        lines = []
        for row_index, row in enumerate(cells):
            if row_index == 0:
                axis = _format(y_max)
            elif row_index == height - 1:
                axis = _format(y_min)
            else:
                axis = ""
            runs: list[list] = []  # [text, style] runs of one style
            for column, bits in enumerate(row):
                if bits:
                    char, style = chr(0x2800 + bits), line_style
                elif column in mark_columns:
                    char, style = "┊", "$text-muted"
                elif (row_index, column) in label_chars:
                    char, style = label_chars[row_index, column], "$text-muted"
                else:
                    char, style = " ", line_style  # one run of the curve's style when nothing is marked
                if runs and runs[-1][1] == style:
                    runs[-1][0] += char
                else:
                    runs.append([char, style])
            lines.append(Content.assemble(f"{axis:>{_AXIS_WIDTH - 1}}│", *((text, style) for text, style in runs)))
        return Content("\n").join(lines)


def _interpolate(start: tuple[float, float], end: tuple[float, float]):
    steps = int(max(abs(end[0] - start[0]), abs(end[1] - start[1]))) + 1
    for i in range(1, steps + 1):
        t = i / steps
        yield start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t
