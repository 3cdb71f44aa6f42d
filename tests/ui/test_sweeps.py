"""Sweeps (`ctxdistill run --seeds N`, issue 25 item 2): grouped on Runs, mean (min–max) on Results and Compare,
"seed 2/3" on the Run screen."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import COMBINED_METRICS, METRICS, write_combined_project, write_combined_run, write_project, write_run
from ctxtui.app import CtxApp
from ctxtui.screens.compare import CompareScreen
from ctxtui.screens.results import ResultsScreen
from ctxtui.screens.run import RunScreen
from engine.runs import sweep as engine_sweep
from test_author import SIZE, text_of, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory, toy_model_dir) -> Path:
    """A project swept over 2 seeds by the engine itself: 2 run folders and the sweep folder."""
    from engine.cli import main

    project = write_project(tmp_path_factory.mktemp("sweep") / "demo", model=str(toy_model_dir), max_steps=2)
    assert main(["run", str(project), "--seeds", "2", "--quiet"]) == 0
    return project


def write_sweep(project: Path, metrics_per_seed: list[dict], combined: bool = False, summary: bool = True,
                events=None) -> Path:
    """A sweep folder and its members, shaped as engine/runs/sweep.py writes them (summary by its summarize)."""
    sweep_dir = project / "runs" / "20260101T000000Z-demo-seeds"
    seeds = list(range(len(metrics_per_seed)))
    engine_sweep.start_sweep(sweep_dir, seeds, same_inputs=False)
    for index, (seed, metrics) in enumerate(zip(seeds, metrics_per_seed)):
        name = f"20260101T00000{index + 1}Z-demo-seed{seed}"
        run_dir = (write_combined_run(project, name, events) if combined else write_run(project, name, events))
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        engine_sweep.join_sweep(sweep_dir, run_dir, seed, index, len(seeds))
    if summary:
        engine_sweep.summarize(sweep_dir)
    return sweep_dir


def with_after(exact_match: float) -> dict:
    metrics = copy.deepcopy(METRICS)
    metrics["student_after"]["exact_match"] = exact_match
    return metrics


async def test_runs_groups_a_real_sweep_and_results_show_its_spread(real_sweep):
    app = CtxApp(real_sweep, attach=False, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#runs-table")
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert len(rows) == 3  # the sweep, then its two runs; the sweep folder is no (broken) run of its own
        assert rows[0][1].startswith("▾ ") and rows[0][1].endswith("-demo-seeds")
        assert rows[0][2] == "2/2 done" and rows[0][4] == "2 runs"
        assert rows[1][1] == "  ├ seed 0 (1/2)" and rows[2][1] == "  └ seed 1 (2/2)"
        assert all(row[2] == "completed" for row in rows[1:])
        assert "(" in rows[0][8] and "–" in rows[0][7]  # after: mean (min–max)
        assert "1 sweep(s) of 2 runs" in text_of(app, "#runs-title")
        await pilot.press("enter")  # folds the sweep
        await pilot.pause()
        assert table.row_count == 1 and table.get_row_at(0)[1].startswith("▸ ")
        await pilot.press("enter", "o")  # unfolds; its results
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ResultsScreen)
        assert "mean (min–max) over 2 of 2 seeds (0, 1)" in text_of(app, "#results-title")
        metrics = screen.query_one("#results-metrics")
        cells = metrics.get_row_at(0)
        assert cells[0] == "exact_match" and all(" (" in cell and "–" in cell for cell in cells[1:4])
        assert not screen.query_one("#results-samples").display  # samples are each run's own
        await pilot.press("f8", "down", "down", "enter")  # the second run's dashboard
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        assert text_of(app, "#run-title").endswith("-seed1 · seed 2/2")
        await wait_for(pilot, lambda: app.screen.status == "completed")


async def test_compare_shows_a_sweep_as_mean_with_min_max(project_dir):
    write_sweep(project_dir, [with_after(0.4), with_after(0.6), with_after(0.5)])
    write_run(project_dir, "20260105T000000Z-demo")
    app = CtxApp(project_dir, attach=False, start_mode="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#runs-table")
        assert table.row_count == 5  # the run, the sweep, its 3 runs (newest first)
        assert table.get_row_at(1)[2] == "3/3 done"
        assert table.get_row_at(1)[8] == "0.500 (0.400–0.600)"
        await pilot.press("space", "down", "space", "c")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [run.name for run in screen.runs] == ["20260101T000000Z-demo-seeds", "20260105T000000Z-demo"]
        compare = screen.query_one("#compare-metrics")
        rows = {row[0]: row[1:] for row in (compare.get_row_at(i) for i in range(compare.row_count))}
        assert rows["student after exact_match"] == ["0.500 (0.400–0.600)", "0.500", "+0.000"]
        assert rows["teacher exact_match"][0] == "0.750 (0.750–0.750)"
        assert rows["status"][:2] == ["3/3 done", "completed"]
        assert rows["training steps"][0] == "3 runs"


async def test_a_sweep_still_running_shows_its_finished_runs_so_far(project_dir):
    sweep_dir = write_sweep(project_dir, [with_after(0.4), with_after(0.6)], summary=False)
    engine_sweep.start_sweep(sweep_dir, [0, 1, 2], same_inputs=False)  # 3 planned, 2 joined so far
    for index, seed in enumerate((0, 1)):
        sweep = json.loads((sweep_dir / "sweep.json").read_text())
        sweep["runs"].append({"seed": seed, "run_dir": str(project_dir / "runs" / f"20260101T00000{index + 1}Z-demo-seed{seed}")})
        (sweep_dir / "sweep.json").write_text(json.dumps(sweep))
    app = CtxApp(project_dir, attach=False, start_mode="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        row = app.screen.query_one("#runs-table").get_row_at(0)
        assert row[2] == "incomplete 2/3" and row[8] == "0.500 (0.400–0.600)"
        app.open_results(sweep_dir)
        await pilot.pause()
        assert "over 2 of 3 seeds (0, 1) so far" in text_of(app, "#results-title")


async def test_results_of_a_staged_sweep_pick_stage_and_operation(tmp_path, toy_model_dir):
    project = write_combined_project(tmp_path / "demo", model=str(toy_model_dir))
    other = copy.deepcopy(COMBINED_METRICS)
    other["stages"]["second"]["operations"]["lower"]["student_after"]["exact_match"] = 0.2
    sweep_dir = write_sweep(project, [COMBINED_METRICS, other], combined=True)
    app = CtxApp(project, attach=False, start_mode="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        app.open_results(sweep_dir)
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#stage-row").display
        assert screen.query_one("#results-stage").value == "second"
        screen.query_one("#results-operation").value = "lower"
        await pilot.pause()
        cells = screen.query_one("#results-metrics").get_row_at(0)
        assert cells[3] == "0.400 (0.200–0.600)"
