"""Against a real short run of the engine on a tiny model: launch, quit, reattach, stop."""

from __future__ import annotations

import importlib.util

import pytest

from conftest import write_project
from ctxtui import runner
from ctxtui.app import CtxApp
from ctxtui.screens.run import RunScreen
from test_author import SIZE, wait_for


pytestmark = pytest.mark.anyio  # async tests run on asyncio (anyio_backend in conftest)

def engine_cli_problem() -> str | None:
    """Why the real engine CLI cannot run here, or None when it can."""
    if importlib.util.find_spec("engine.cli") is None:
        return "engine.cli is not there yet"
    try:
        import engine.cli  # noqa: F401
        import engine.training.train  # noqa: F401
    except Exception as error:  # the engine is still being written
        return f"engine.cli does not import: {error}"
    return None


@pytest.fixture
def long_project(tmp_path, toy_model_dir):
    problem = engine_cli_problem()
    if problem:
        pytest.skip(problem)
    # Many steps, so the run is still training whenever the test looks.
    return write_project(tmp_path / "demo", model=str(toy_model_dir), count=16, max_steps=5000)


async def test_launch_quit_reattach_then_stop(long_project):
    run_dir = None
    try:
        app = CtxApp(long_project, attach=False, start_mode="run")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, RunScreen)
            await pilot.press("n")  # launches once `ctxdistill check`'s checks pass (a thread)
            await wait_for(pilot, lambda: screen.watched is not None, timeout=60)
            run_dir = screen.watched
            assert run_dir is not None and run_dir.parent == long_project / "runs"
            assert "engine.cli run" in str(screen.query_one("#run-command").render())
            await wait_for(pilot, lambda: screen.state.step >= 2, timeout=60)
            await pilot.press("ctrl+q")
        # The run outlives the app ...
        assert runner.run_alive(run_dir)

        # ... and a restarted app reattaches to it.
        app = CtxApp(long_project, start_mode="run")
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await wait_for(pilot, lambda: screen.watched == run_dir and screen.state.step > 0)
            step = screen.state.step
            await wait_for(pilot, lambda: screen.state.step > step)  # still tailing live events
            await pilot.press("s")  # graceful: checkpoint, then stop
            await wait_for(pilot, lambda: screen.status == "stopped" and not screen.alive, timeout=60)
            assert screen.state.checkpoints, "a stopped run leaves a checkpoint"
            assert runner.run_info(run_dir).status == "stopped"
        assert not runner.run_alive(run_dir)
    finally:
        if run_dir is not None:
            runner.kill(run_dir)
