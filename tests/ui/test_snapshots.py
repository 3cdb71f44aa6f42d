"""SVG snapshots that guard the layout of each screen (update with --snapshot-update)."""

from __future__ import annotations

import time

import pytest

from conftest import combined_events, scripted_events, write_combined_project, write_combined_run, write_project, write_run
from ctxtui.app import CtxApp
from test_author import wait_for
from test_on_policy_dashboard import on_policy_events, set_policy
from test_sweeps import with_after, write_sweep

SIZE = (80, 24)  # the smallest terminal every screen must work in (issue 12)
START = 1767225600.0  # 2026-01-01 00:00 UTC: fixed, so dates and durations do not drift


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Dates in the Runs table are local time: pin the zone so the snapshot is the same anywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def finished_project(tmp_path, toy_model_dir):
    project = write_project(tmp_path / "demo", model=str(toy_model_dir), temperature=0.0)
    run_dir = write_run(project, "20260101T000000Z-demo", events=scripted_events(start=START))
    (run_dir / "command").write_text("python -m engine.cli run demo --run-dir runs/20260101T000000Z-demo\n")
    return project, run_dir


def test_author_snapshot(snap_compare, tmp_path, toy_model_dir):
    project, _ = finished_project(tmp_path, toy_model_dir)

    async def until_preview_done(pilot):
        screen = pilot.app.screen
        for widget in screen.query("TextArea, Input"):
            widget.cursor_blink = False  # a blinking cursor would make the snapshot flaky
        await wait_for(pilot, lambda: screen.preview.teacher_done and str(screen.query_one("#student-verdict").render()) != "",
                       timeout=60)
        await pilot.pause()

    assert snap_compare(CtxApp(project, attach=False), terminal_size=SIZE, run_before=until_preview_done)


def test_run_dashboard_snapshot(snap_compare, tmp_path, toy_model_dir):
    project, run_dir = finished_project(tmp_path, toy_model_dir)

    async def open_run(pilot):
        pilot.app.open_run(run_dir)
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "status", "") == "completed")
        await pilot.pause()

    assert snap_compare(CtxApp(project, attach=False, start_mode="runs"), terminal_size=SIZE, run_before=open_run)


def test_on_policy_run_dashboard_snapshot(snap_compare, tmp_path, toy_model_dir):
    """An on-policy run: the policy in the title, the KL chart says on-policy, a step's cost under the stats."""
    project = write_project(tmp_path / "demo", model=str(toy_model_dir), temperature=0.0)
    set_policy(project / "project.toml", 'policy = "on"')
    run_dir = write_run(project, "20260101T000000Z-demo", events=on_policy_events(start=START))
    (run_dir / "command").write_text("python -m engine.cli run demo --run-dir runs/20260101T000000Z-demo\n")

    async def open_run(pilot):
        pilot.app.open_run(run_dir)
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "status", "") == "completed")
        await pilot.pause()

    assert snap_compare(CtxApp(project, attach=False, start_mode="runs"), terminal_size=SIZE, run_before=open_run)


def test_results_snapshot(snap_compare, tmp_path, toy_model_dir):
    project, _ = finished_project(tmp_path, toy_model_dir)
    assert snap_compare(CtxApp(project, attach=False, start_mode="results"), terminal_size=SIZE)


def test_runs_snapshot(snap_compare, tmp_path, toy_model_dir):
    project, _ = finished_project(tmp_path, toy_model_dir)
    assert snap_compare(CtxApp(project, attach=False, start_mode="runs"), terminal_size=SIZE)


def test_sweep_runs_snapshot(snap_compare, tmp_path, toy_model_dir):
    """A sweep of 3 seeds beside a run: one row, mean (min–max), its runs under it (issue 25 item 2)."""
    project, _ = finished_project(tmp_path, toy_model_dir)
    write_sweep(project, [with_after(0.4), with_after(0.6), with_after(0.5)], events=scripted_events(start=START))
    assert snap_compare(CtxApp(project, attach=False, start_mode="runs"), terminal_size=SIZE)


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
def test_staged_run_dashboard_snapshot(snap_compare, tmp_path, toy_model_dir, size):
    """A finished two-stage run: stage list, curves on one step axis with the stage mark, per-operation summary."""
    project = write_combined_project(tmp_path / "demo", model=str(toy_model_dir))
    run_dir = write_combined_run(project, events=combined_events(start=START))
    (run_dir / "command").write_text("python -m engine.cli run demo --run-dir runs/20260101T000000Z-demo\n")

    async def open_run(pilot):
        pilot.app.open_run(run_dir)
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "status", "") == "completed")
        summary = pilot.app.screen.query_one("#run-summary")
        await wait_for(pilot, lambda: summary.row_count == 2 and summary.size.height > 2)  # a DataTable sizes on idle
        await pilot.pause()

    assert snap_compare(CtxApp(project, attach=False, start_mode="runs"), terminal_size=size, run_before=open_run)
