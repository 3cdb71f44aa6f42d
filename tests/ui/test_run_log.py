"""The Run screen's live log pane and evaluation progress bar."""

from __future__ import annotations

import pytest

from conftest import scripted_events, write_run
from ctxtui.app import CtxApp
from test_author import wait_for

pytestmark = pytest.mark.anyio


def eval_events(start: float) -> list[dict]:
    events = scripted_events(total_steps=3, done=False, start=start)
    for which, done in (("teacher", 4), ("student_before", 4), ("student_after", 2)):
        events.append({"type": "progress", "time": start + 10, "stage": "eval", "which": which, "step": done,
                       "total_steps": 4, "unit": "inputs", "elapsed_s": 1.0, "eta_s": 1.0})
    return events


async def test_log_pane_and_evaluation_progress(project_dir):
    run_dir = write_run(project_dir, events=eval_events(1767225600.0), results=False)
    app = CtxApp(project_dir, attach=False, start_mode="runs")
    async with app.run_test(size=(100, 40)) as pilot:
        app.open_run(run_dir)
        await wait_for(pilot, lambda: getattr(app.screen, "logged", 0) == 8)
        screen = app.screen
        lines = screen.query_one("#run-log").lines
        assert len(lines) == 8 and "train 1/3 steps loss 3" in lines[2]
        assert lines[-1].endswith("progress eval 2/4 inputs which student_after")
        bar = screen.query_one("#eval-progress")
        assert screen.query_one("#eval-row").display and (bar.progress, bar.total) == (10, 12)
        assert str(screen.query_one("#eval-label").render()) == "eval student after 2/4"
