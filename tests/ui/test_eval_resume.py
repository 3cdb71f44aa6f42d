"""A stop during evaluation, then r: the evaluation continues where it stopped (issue 20 item 18)."""

from __future__ import annotations

import pytest

from conftest import write_project
from ctxtui import runner
from ctxtui.app import CtxApp
from engine.runs.events import read_events
from test_author import SIZE, wait_for
from test_real_run import engine_cli_problem

pytestmark = pytest.mark.anyio


@pytest.fixture
def project_with_a_long_evaluation(tmp_path, toy_model_dir):
    problem = engine_cli_problem()
    if problem:
        pytest.skip(problem)
    project = write_project(tmp_path / "demo", model=str(toy_model_dir), count=8, max_steps=2)
    text = (project / "project.toml").read_text()
    # 40 held-out inputs one per batch: the student's evaluation is long enough to stop in.
    (project / "project.toml").write_text(text.replace("[eval]\ncount = 4", "[eval]\ncount = 40\nbatch_size = 1"))
    return project


async def test_a_stop_during_evaluation_resumes_the_evaluation_where_it_stopped(project_with_a_long_evaluation):
    run_dir = None
    try:
        app = CtxApp(project_with_a_long_evaluation, attach=False, start_mode="run")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await pilot.press("n")
            await wait_for(pilot, lambda: screen.watched is not None, timeout=60)
            run_dir = screen.watched
            await wait_for(pilot, lambda: screen.state.stage == "eval" and "after distillation" in screen.state.message,
                           timeout=120)
            await pilot.press("s")
            assert any("evaluation batch (finished batches are kept for the resume)" in str(notice.message)
                       for notice in app._notifications)
            await wait_for(pilot, lambda: screen.status == "stopped" and not screen.alive, timeout=60)
            stopped_at = len(read_events(run_dir / "events.jsonl"))
            assert list((run_dir / "eval-progress").glob("*/batch-*.pt")), "the decoded batches are kept"

            await pilot.press("r")
            await wait_for(pilot, lambda: screen.status == "completed" and not screen.alive, timeout=120)
            resumed = read_events(run_dir / "events.jsonl")[stopped_at:]
            continuing = [event["message"] for event in resumed
                          if event.get("message", "").startswith("continuing the evaluation stopped earlier")]
            assert continuing, "the resumed run says it continues the evaluation"
            log = "\n".join(str(line) for line in screen.query_one("#run-log").lines)
            assert continuing[0] in log
            assert not (run_dir / "eval-progress").exists()  # gone once the stage's metrics are written
            assert runner.run_info(run_dir).status == "completed"
    finally:
        if run_dir is not None:
            runner.kill(run_dir)
