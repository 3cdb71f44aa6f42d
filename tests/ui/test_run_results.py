"""Run dashboard on a scripted events.jsonl; Results and Runs screens on scripted run folders."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import METRICS, SAMPLES, scripted_events, write_run
from ctxtui.app import CtxApp
from ctxtui.screens.compare import CompareScreen
from ctxtui.screens.results import ResultsScreen
from ctxtui.screens.run import RunScreen
from ctxtui.screens.runs import RunsScreen
from ctxtui.screens.sample_detail import SampleDetailScreen, inline_diff
from ctxtui.widgets.line_chart import LineChart
from test_author import SIZE, text_of, wait_for


pytestmark = pytest.mark.anyio  # async tests run on asyncio (anyio_backend in conftest)

@pytest.fixture
def live_pid():
    """A process that stands in for a running engine (its pid goes in RUN_DIR/pid)."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process.pid
    process.kill()
    process.wait()


async def test_run_screen_follows_scripted_events_and_shows_final_table(project_dir, live_pid):
    events = scripted_events(total_steps=10)
    run_dir = write_run(project_dir, events=events[:7], results=False)  # 2 status + 5 train events
    (run_dir / "pid").write_text(f"{live_pid}\n")
    (run_dir / "command").write_text("python -m engine.cli run demo\n")
    app = CtxApp(project_dir, start_mode="runs")  # finds the live run and reattaches
    async with app.run_test(size=SIZE) as pilot:
        assert app.run_dir == run_dir
        await pilot.press("f3")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_for(pilot, lambda: screen.state.step == 5)
        assert "python -m engine.cli run demo" in text_of(app, "#run-command")
        assert "train · running" in text_of(app, "#run-stage")
        assert screen.query_one("#run-progress").progress == 5
        assert screen.query_one("#run-progress").total == 10
        assert len(screen.query_one("#loss-chart", LineChart).points) == 5
        timing = text_of(app, "#run-timing")
        assert "5/10" in timing and "ETA 0:05" in timing
        stats = text_of(app, "#run-stats")
        assert "tokens/s 1,234" in stats and "memory 321 MB" in stats and "last event" in stats
        assert not screen.query_one("#run-metrics").display
        # The rest of the run arrives; the dashboard follows and ends with the final table.
        with open(run_dir / "events.jsonl", "a") as file:
            file.write("".join(json.dumps(e) + "\n" for e in events[7:]))
        (run_dir / "metrics.json").write_text(json.dumps(METRICS))
        await wait_for(pilot, lambda: screen.state.status == "completed")
        await pilot.pause()
        assert len(screen.query_one("#loss-chart", LineChart).points) == 10
        table = screen.query_one("#run-metrics")
        assert table.display and table.row_count == 3  # exact_match, rouge_l, answer KL
        assert "2.5×" in text_of(app, "#run-savings")


async def test_results_table_filters_search_and_diff(project_dir):
    write_run(project_dir)
    app = CtxApp(project_dir, attach=False, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        screen = app.screen
        assert isinstance(screen, ResultsScreen)
        await pilot.pause()
        table = screen.query_one("#results-metrics")
        assert table.get_row("exact_match")[1:4] == ["0.750", "0.250", "0.500"]
        assert str(table.get_row("exact_match")[4]) == "+0.250"
        assert "saves 60%" in text_of(app, "#results-savings")
        grid = screen.query_one("#results-samples")
        assert grid.row_count == 4
        counts = []
        for _ in range(4):  # student wrong, improved, regressed, differs from teacher
            await pilot.press("f")
            await pilot.pause()
            counts.append(grid.row_count)
        assert counts == [2, 1, 1, 2]
        await pilot.press("f")  # back to all
        await pilot.press("slash", *"dog")
        await pilot.pause()
        assert grid.row_count == 1
        await pilot.press("enter")  # to the grid
        await pilot.press("enter")  # open the detail
        await pilot.pause()
        assert isinstance(app.screen, SampleDetailScreen)
        assert app.screen.sample["index"] == 1
        await pilot.press("escape")
        assert isinstance(app.screen, ResultsScreen)


async def test_results_table_shows_baselines_and_the_kept_skill(project_dir):
    """The paper's baselines and the teacher-template score are in metrics.json: the table shows them too."""
    run_dir = write_run(project_dir)
    metrics = dict(METRICS, baselines_budget="paper",
                   **{"baseline_scdir": {"exact_match": 0.375}, "baseline_sc+dir": {"exact_match": 0.125},
                      "student_after_teacher_template": {"exact_match": 0.0}})
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    app = CtxApp(project_dir, attach=False, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        table = app.screen.query_one("#results-metrics")
        scdir = table.get_row("baseline_scdir/exact_match")
        assert str(scdir[0]) == "exact_match · baseline scdir"
        assert scdir[1:4] == ["0.750", "0.250", "0.375"]
        assert str(scdir[4]) == "+0.125" and str(scdir[5]) == "-0.375"
        assert table.get_row("baseline_sc+dir/exact_match")[3] == "0.125"
        kept = table.get_row("student_after_teacher_template/exact_match")
        assert kept[2:4] == ["–", "0.000"] and str(kept[4]) == "–" and str(kept[5]) == "-0.750"
        assert "baselines trained with the paper step budget" in text_of(app, "#results-savings")


def test_inline_diff_marks_changes():
    diff = inline_diff("god", "dgo")
    assert diff.plain == "gdgod" or set(diff.plain) <= set("god")
    assert len(diff.spans) >= 2


async def test_runs_history_open_and_compare(project_dir):
    write_run(project_dir, "20260101T000000Z-demo")
    write_run(project_dir, "20260102T000000Z-demo", config_note="\n# second run\n")
    app = CtxApp(project_dir, attach=False, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f8")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one("#runs-table")
        assert table.row_count == 2
        row = table.get_row_at(0)
        assert row[1] == "20260102T000000Z-demo" and row[2] == "completed" and row[5:] == ["exact_match", "0.750", "0.250", "0.500"]
        await pilot.press("space", "down", "space", "c")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        assert "+# second run" in str(app.screen.query_one("#compare-config").render()) or \
            "-# second run" in str(app.screen.query_one("#compare-config").render())
        await pilot.press("escape")
        await pilot.press("o")  # results of the selected run
        await pilot.pause()
        assert isinstance(app.screen, ResultsScreen)
        assert app.screen.shown_run.name == "20260101T000000Z-demo"
        await pilot.press("f8", "enter")  # its dashboard
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        await wait_for(pilot, lambda: app.screen.state.status == "completed")


async def test_every_screen_action_is_in_the_command_palette(project_dir):
    app = CtxApp(project_dir, attach=False, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"Author", "Run", "Results", "Runs", "Save project", "Toggle light/dark"} <= titles
        await pilot.press("f3")
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"New run", "Stop run", "Kill run", "Resume run"} <= titles
        await pilot.press("ctrl+t")
        assert not app.current_theme.dark
        await pilot.press("f1")  # the workflow page
        await pilot.pause()
        from ctxtui.screens.help import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "question_mark")  # the key map
        await pilot.pause()
        assert app.screen.query("HelpPanel")


async def test_three_marked_runs_are_compared_as_three(project_dir):
    for day in (1, 2, 3):
        write_run(project_dir, f"2026010{day}T000000Z-demo", config_note=f"\n# run {day}\n")
    app = CtxApp(project_dir, attach=False, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("space", "j", "space", "j", "space", "c")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen) and len(screen.runs) == 3
        table = screen.query_one("#compare-metrics")
        assert [str(label) for label in (column.label for column in table.columns.values())] == \
            ["metric", "A", "B", "C", "C − A"]
        assert len(screen.query(".compare-config")) == 2  # A → B and A → C
        assert table.get_row_at(0)[1:4] == ["0.750", "0.750", "0.750"]
