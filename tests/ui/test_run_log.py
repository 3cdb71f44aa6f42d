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


async def test_events_log_follows_the_end_unless_scrolled_up_and_jumps_there_when_the_run_ends(project_dir):
    """Issue 20 item 9: `tail -f` behaviour, kept when the pane shrinks, given up while the user reads above."""
    import json
    import subprocess
    import time

    from ctxtui.screens.run import RunScreen

    start = time.time() - 100
    events = scripted_events(total_steps=40, done=False, start=start)
    run_dir = write_run(project_dir, events=events[:30], results=False)
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    (run_dir / "pid").write_text(f"{process.pid}\n")
    try:
        app = CtxApp(project_dir, attach=False, start_mode="run")
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            assert isinstance(screen, RunScreen)
            log = screen.query_one("#run-log")
            await wait_for(pilot, lambda: screen.state.step == 28 and log.line_count == 30)
            await pilot.pause()
            assert log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y  # the newest line in view
            with open(run_dir / "events.jsonl", "a") as file:
                file.write("".join(json.dumps(e) + "\n" for e in events[30:35]))
            await wait_for(pilot, lambda: log.line_count == 35)
            await pilot.pause()
            assert log.scroll_y == log.max_scroll_y  # followed
            log.scroll_home(animate=False, immediate=True)  # the user reads from the top
            await pilot.pause()
            assert not log.following
            with open(run_dir / "events.jsonl", "a") as file:
                file.write("".join(json.dumps(e) + "\n" for e in events[35:]))
            await wait_for(pilot, lambda: log.line_count == len(events))
            await pilot.pause()
            assert log.scroll_y == 0  # left where the user is reading
            with open(run_dir / "events.jsonl", "a") as file:
                file.write(json.dumps({"type": "done", "time": time.time(), "stage": "done", "status": "stopped"}) + "\n")
            process.kill()
            process.wait()
            await wait_for(pilot, lambda: screen.status == "stopped")
            await wait_for(pilot, lambda: log.scroll_y == log.max_scroll_y > 0)  # the run ended: its last lines
    finally:
        process.kill()
        process.wait()


async def test_no_run_yet_shows_no_animated_progress_bar(project_dir):
    """Issue 20 item 13: an indeterminate bar animates forever; with nothing running there is none."""
    app = CtxApp(project_dir, attach=False, start_mode="run")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "no run yet" in str(app.screen.query_one("#run-title").render())
        assert not app.screen.query_one("#run-progress").display
