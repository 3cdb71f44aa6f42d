"""On-policy distillation on the Run screen (issue 21 item 3): which policy, the on-policy KL, what a step costs."""

from __future__ import annotations

import pytest

from conftest import combined_events, scripted_events, write_combined_project, write_combined_run, write_project, write_run
from ctxtui.app import CtxApp
from ctxtui.screens.run import RunScreen
from test_author import SIZE, text_of, wait_for

pytestmark = pytest.mark.anyio

COST = {"policy": "on", "sample_s": 0.4, "score_s": 0.1, "train_s": 0.2}


def on_policy_events(start: float | None = None) -> list[dict]:
    """A finished single run whose training events are on-policy, as engine/training/train.py emits them."""
    events = scripted_events(start=start)
    for event in events:
        if event["type"] == "train":
            event.update(COST, kl=0.5 / event["step"], teacher_tokens=120 * event["step"])
    return events


def set_policy(path, text: str) -> None:
    toml = path.read_text()
    path.write_text(toml.replace('labels = "hard"', f'labels = "sampled"\n{text}', 1))


async def test_an_on_policy_run_says_its_policy_shows_the_on_policy_kl_and_a_steps_cost(tmp_path, toy_model_dir):
    project = write_project(tmp_path / "demo", model=str(toy_model_dir))
    set_policy(project / "project.toml", 'policy = "on"\ndivergence = "forward_kl"')
    app = CtxApp(project, attach=False, start_mode="run")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert text_of(app, "#run-title") == "no run yet: press n to launch one · on-policy (forward_kl)"
        run_dir = write_run(project, events=on_policy_events())
        await pilot.press("f8")
        app.open_run(run_dir)
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_for(pilot, lambda: screen.status == "completed")
        await pilot.pause()
        assert text_of(app, "#run-title").endswith(" · on-policy (forward_kl)")
        chart = screen.query_one("#kl-chart")
        assert chart.border_title == "KL · on-policy" and len(chart.points) == 10  # the divergence minimized
        assert screen.query_one("#run-cost").display
        assert text_of(app, "#run-cost") == "on-policy step: sample 0.40s score 0.10s train 0.20s · teacher 1,200 tok"


async def test_an_off_policy_run_keeps_the_answer_kl_and_no_cost_line(project_dir):
    run_dir = write_run(project_dir)
    app = CtxApp(project_dir, attach=False, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(run_dir)
        await wait_for(pilot, lambda: app.screen.status == "completed")
        await pilot.pause()
        assert app.screen.query_one("#kl-chart").border_title == "answer KL"
        assert not app.screen.query_one("#run-cost").display
        assert text_of(app, "#run-title") == f"run {run_dir.name}"


async def test_a_staged_run_off_then_on_policy(tmp_path, toy_model_dir):
    project = write_combined_project(tmp_path / "demo", model=str(toy_model_dir))
    events = combined_events()
    for event in events:
        if event["type"] == "train" and event["stage_name"] == "second":
            event.update(COST, teacher_tokens=64)
    run_dir = write_combined_run(project, events=events)
    with open(run_dir / "project.toml", "a") as file:
        file.write('[stages.distill]\npolicy = "on"\n')  # the second stage's own [distill]
    app = CtxApp(project, attach=False, start_mode="runs")
    async with app.run_test(size=(160, 45)) as pilot:
        app.open_run(run_dir)
        await wait_for(pilot, lambda: app.screen.status == "completed")
        await pilot.pause()
        assert app.screen.query_one("#kl-chart").border_title == "KL · off + on-policy"
        assert text_of(app, "#run-cost").startswith("on-policy step: sample 0.40s")
        assert text_of(app, "#run-stages").splitlines()[1].endswith("· on-policy")
        assert text_of(app, "#run-title") == f"run {run_dir.name}"  # the stage list says each stage's policy
