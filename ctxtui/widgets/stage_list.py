"""The stages of a run, one line each: state, name, whose weights teach, what it trains and scores."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from ctxtui.stages import PlannedStage

MARKS = {"done": ("✓", "$text-success"), "waiting": ("·", "$text-muted"), "stopped": ("■", "$warning"),
         "failed": ("✗", "$text-error"), "interrupted": ("✗", "$text-error")}
LIVE = ("▶", "bold $accent")  # setup, teacher, training, evaluating
STATE_WIDTH = len("interrupted")


def stage_lines(planned: list[PlannedStage], states: dict[str, str]) -> Content:
    """`▶ 1 associate  training     teacher base      trains a, b, c · scores 8 more`, a line per stage."""
    name_width = max((len(stage.name) for stage in planned), default=0)
    lines = []
    for number, stage in enumerate(planned, 1):
        state = states.get(stage.name, "")
        mark, style = MARKS.get(state, LIVE) if state else ("·", "$text-muted")
        scored = [op for op in stage.evaluate if op not in stage.operations]
        trains = ", ".join(stage.operations) + (f" · scores {len(scored)} more" if scored else "")
        teacher = "teacher previous student" if stage.teacher == "previous" else "teacher base"
        lines.append(Content.assemble(
            (f"{mark} {number} {stage.name:<{name_width}}  ", style),
            (f"{state:<{STATE_WIDTH}}  " if states else "", style),
            (f"{teacher:<24}", "$text-muted"), f"trains {trains}",
            (f" · {stage.policy}-policy" if stage.policy != "off" else "", "$text-muted")))
    return Content("\n").join(lines)


class StageList(Static):
    """The screen calls `show(planned, states)`; hidden for a run without stages."""

    HELP = """\
## Stages

A staged project (paper section 2.3) runs its stages in order, each starting
from the previous stage's student. A line per stage: its state (waiting,
teacher, training, evaluating, done, stopped, failed), whose weights teach
(the base model, or the previous stage's student: recursive distillation),
the operations it trains together, and how many more it only scores.
"""

    DEFAULT_CSS = """
    StageList { height: auto; max-height: 6; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def show(self, planned: list[PlannedStage], states: dict[str, str]) -> None:
        self.display = bool(planned)
        self.update(stage_lines(planned, states))
