"""Operations and stages in the UI (issue 7 item 8): Author per operation, Run stage list, Results per stage."""

from __future__ import annotations

import json
import subprocess

import pytest
import tomlkit

from conftest import (COMBINED_METRICS, combined_events, write_combined_project, write_combined_run, write_project,
                      write_run)
from ctxtui import runner
from ctxtui.app import CtxApp
from ctxtui.project_file import ProjectFile
from ctxtui.screens.results import ResultsScreen
from ctxtui.screens.run import RunScreen
from ctxtui.widgets.template_editor import TemplateEditor
from test_author import SIZE, text_of, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def combined_dir(tmp_path, toy_model_dir):
    return write_combined_project(tmp_path / "demo", model=str(toy_model_dir))


def test_project_file_edits_the_table_the_engine_reads(combined_dir):
    project_file = ProjectFile(combined_dir)
    assert project_file.operation_names() == ["upper", "lower"]
    assert project_file.template_owner("teacher", 0) == "operations.upper.teacher"
    assert project_file.template_owner("teacher", 1) == "teacher"  # inherited
    assert project_file.template_owner("student", 0) == "student"
    project_file.set_template("teacher", "Caps: {{ input }}\n", 0)
    doc = tomlkit.parse(project_file.text())
    assert doc["operations"][0]["teacher"]["template"] == "Caps: {{ input }}\n"
    assert doc["teacher"]["template"].startswith("Reverse the letters.")
    assert project_file.override_template("teacher", 1)
    assert project_file.template_owner("teacher", 1) == "operations.lower.teacher"
    project_file.set_template("teacher", "Lower: {{ input }}\n", 1)
    doc = tomlkit.parse(project_file.text())
    assert doc["operations"][1]["teacher"]["template"] == "Lower: {{ input }}\n"
    assert doc["teacher"]["template"].startswith("Reverse the letters.")


async def test_author_lists_operations_and_edits_the_selected_one(combined_dir):
    app = CtxApp(combined_dir, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.example is not None)
        operations = screen.query_one("#operations")
        assert operations.display and operations.option_count == 2
        teacher = screen.query_one("#teacher-editor", TemplateEditor)
        assert teacher.text.startswith("Write the letters in capitals.")
        assert "operations.upper.teacher" in str(teacher.border_title)
        assert text_of(app, "#teacher-prompt").startswith("Write the letters in capitals.")
        operations.focus()
        await pilot.press("down")
        await pilot.pause()
        assert app.operation_index == 1
        assert teacher.text.startswith("Reverse the letters.")
        assert str(teacher.border_title) == "teacher · teacher" and "shared" in str(teacher.border_subtitle)
        assert not app.project_file.dirty  # switching operations is not an edit
        teacher.replace_text("Backwards: {{ input }}\n")
        await pilot.pause()
        doc = tomlkit.parse(app.project_file.text())
        assert doc["teacher"]["template"] == "Backwards: {{ input }}\n"
        assert doc["operations"][0]["teacher"]["template"].startswith("Write the letters")
        assert app.project is not None and "unsaved" in app.title


async def test_author_shows_an_ensembles_prompts(tmp_path, toy_model_dir):
    project = write_project(tmp_path / "demo", model=str(toy_model_dir), temperature=0.0)
    text = (project / "project.toml").read_text().replace('''[teacher]
# the long prompt
template = """Reverse the letters.
Input: {{ input }}
Output: """''', '''[teacher]
ensemble = 2
vars = {examples = ["abc>cba", "dog>god", "hen>neh", "ox>xo"]}
template = """{% for ex in examples | sample(2) %}{{ ex }}
{% endfor %}Input: {{ input }}
Output: """''')
    (project / "project.toml").write_text(text)
    app = CtxApp(project, attach=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: "ensemble of 2" in str(screen.query_one("#teacher-prompt").border_title),
                       timeout=60)
        shown = text_of(app, "#teacher-prompt")
        assert "teacher prompt 1/2" in shown and "teacher prompt 2/2" in shown


@pytest.fixture
def live_pid():
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process.pid
    process.kill()
    process.wait()


async def test_run_screen_shows_stages_operation_and_true_counts(combined_dir, live_pid):
    events = combined_events()
    run_dir = write_combined_run(combined_dir, events=events[:3])  # setup, first: teacher 4/8 inputs
    (run_dir / "pid").write_text(f"{live_pid}\n")
    app = CtxApp(combined_dir, start_mode="run")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_for(pilot, lambda: screen.state.step == 4)
        stages = text_of(app, "#run-stages").splitlines()
        assert stages[0].startswith("▶ 1 first   teacher") and "trains upper" in stages[0]
        assert stages[1].startswith("· 2 second  waiting") and "trains lower" in stages[1]
        assert text_of(app, "#run-stage") == "stage 1/2 · first · teacher (upper) 4/8"
        await wait_for(pilot, lambda: "running" in app.sub_title)
        # Into training: counts start afresh in the new stage of the run.
        with open(run_dir / "events.jsonl", "a") as file:
            file.write("".join(json.dumps(e) + "\n" for e in events[3:6]))
        await wait_for(pilot, lambda: screen.state.stage == "train" and screen.state.step == 2)
        assert text_of(app, "#run-stage") == "stage 1/2 · first · train 2/3"
        assert text_of(app, "#run-stages").startswith("▶ 1 first   training")
        elapsed_before = screen.state.elapsed(screen.state.last_event_at, False)
        # The second stage.
        with open(run_dir / "events.jsonl", "a") as file:
            file.write("".join(json.dumps(e) + "\n" for e in events[6:10]))
        await wait_for(pilot, lambda: screen.state.stage_name == "second")
        stages = text_of(app, "#run-stages").splitlines()
        assert stages[0].startswith("✓ 1 first   done") and stages[1].startswith("▶ 2 second  teacher")
        assert screen.state.elapsed(screen.state.last_event_at, False) >= elapsed_before
        # The end: every stage done, a per-operation summary named by its stage, the matrix one key away.
        (run_dir / "metrics.json").write_text(json.dumps(COMBINED_METRICS))
        with open(run_dir / "events.jsonl", "a") as file:
            file.write("".join(json.dumps(e) + "\n" for e in events[10:]))
        await wait_for(pilot, lambda: screen.state.status == "completed")
        await pilot.pause()
        assert [line[:18] for line in text_of(app, "#run-stages").splitlines()] == ["✓ 1 first   done  ",
                                                                                  "✓ 2 second  done  "]
        summary = screen.query_one("#run-summary")
        assert summary.display and not screen.query_one("#run-matrix").display
        assert str(summary.border_title).startswith("after stage second (2/2): exact_match per operation")
        assert [str(cell) for cell in summary.get_row("upper")] == ["upper", "0.900", "0.800", "0.400", "-0.400", "0.900"]
        assert [str(cell) for cell in summary.get_row("lower")] == ["lower", "0.700", "0.000", "0.600", "+0.600", "0.500"]
        await pilot.press("m")
        assert screen.query_one("#run-matrix").display and screen.query_one("#run-matrix").row_count == 2
        assert not summary.display
        assert "run completed" in text_of(app, "#run-message")


async def test_run_screen_lists_the_projects_stages_before_any_run(tmp_path, toy_model_dir):
    project = write_combined_project(tmp_path / "demo", model=str(toy_model_dir))
    text = (project / "project.toml").read_text()
    (project / "project.toml").write_text(text.replace('name = "second"\n', 'name = "second"\nteacher = "previous"\n'))
    app = CtxApp(project, attach=False, start_mode="run")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        lines = text_of(app, "#run-stages").splitlines()
        assert len(lines) == 2
        assert lines[0].startswith("· 1 first") and "teacher base" in lines[0] and lines[0].endswith("trains upper")
        assert "teacher previous student" in lines[1] and lines[1].endswith("trains lower")
        assert app.screen.query_one("#run-stages").display


def test_elapsed_never_runs_backwards_across_a_resume():
    state = runner.WatchedRun()
    for event in [{"type": "status", "time": 100.0, "stage": "setup", "pid": 1},
                  {"type": "train", "time": 160.0, "stage": "train", "step": 5, "total_steps": 10, "loss": 1.0,
                   "lr": 0.1, "elapsed_s": 55.0},
                  {"type": "done", "time": 161.0, "stage": "done", "status": "stopped"}]:
        runner.apply_event(state, event)
    stopped = state.elapsed(200.0, alive=False)
    assert stopped == 61.0
    for event in [{"type": "status", "time": 1000.0, "stage": "setup", "pid": 2},  # resumed much later
                  {"type": "train", "time": 1010.0, "stage": "train", "step": 6, "total_steps": 10, "loss": 1.0,
                   "lr": 0.1, "elapsed_s": 2.0}]:
        runner.apply_event(state, event)
    assert state.status == "running"
    assert state.elapsed(1010.0, alive=True) == 71.0  # the engine's own elapsed_s restarted at 2 s


async def test_results_show_per_stage_tables_matrix_and_filtered_samples(combined_dir):
    from ctxtui.screens.runs import headline

    run_dir = write_combined_run(combined_dir)
    assert headline(runner.run_info(run_dir)) == ("exact_match (second/upper)", "0.900", "0.800", "0.400")
    app = CtxApp(combined_dir, attach=False, start_mode="results")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ResultsScreen)
        await pilot.pause()
        assert screen.query_one("#stage-row").display
        assert screen.query_one("#results-stage").value == "second"
        assert screen.query_one("#results-operation").value == "upper"
        table = screen.query_one("#results-metrics")
        assert table.get_row("exact_match")[1:4] == ["0.900", "0.800", "0.400"]
        assert str(table.get_row("exact_match")[4]) == "-0.400"
        assert str(table.get_row("answer_kl")[4]) == "-1.100"  # after minus before, like every Δ
        matrix = screen.query_one("#results-matrix")
        assert matrix.display and matrix.row_count == 2
        assert [str(cell) for cell in matrix.get_row("first")] == ["first", "0.800", "–"]
        assert [str(cell) for cell in matrix.get_row("second")] == ["second", "0.400", "0.600"]
        grid = screen.query_one("#results-samples")
        assert grid.row_count == 1  # second stage, operation upper
        screen.query_one("#results-operation").value = "lower"
        await pilot.pause()
        assert grid.row_count == 2
        assert table.get_row("exact_match")[1:4] == ["0.700", "0.000", "0.600"]
        screen.query_one("#results-stage").value = "first"
        await pilot.pause()
        assert screen.query_one("#results-operation").value == "upper" and grid.row_count == 1


def test_curves_run_over_one_step_axis_across_stages():
    state = runner.fold_run_events(combined_events())
    assert [x for x, _ in state.losses] == [1, 2, 3, 4, 5, 6]  # stage "second" counts on from stage "first"'s 3
    assert [x for x, _ in state.kls] == [1, 2, 3, 4, 5, 6] and [x for x, _ in state.lrs] == [1, 2, 3, 4, 5, 6]
    assert state.boundaries == [(3, "second")]
    assert state.trained == (6, 6)


async def test_run_screen_marks_where_each_stage_starts_on_the_curves(combined_dir):
    from ctxtui.widgets.line_chart import LineChart

    write_combined_run(combined_dir)
    app = CtxApp(combined_dir, attach=False, start_mode="run")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.status == "completed")
        await pilot.pause()
        for chart_id in ("#loss-chart", "#kl-chart", "#lr-chart"):
            chart = screen.query_one(chart_id, LineChart)
            assert chart.marks == [(3, "second")]
            assert str(chart.border_subtitle) == "steps 1–6 · ┊ 2 stages"
            rows = str(chart.render()).splitlines()
            columns = {row.index("┊") for row in rows if "┊" in row}
            # One dotted line, top to bottom: the curve is not drawn across it from one stage to the next.
            assert len(columns) == 1 and all("┊" in row for row in rows)
            assert any("second" in row for row in rows)  # named where the curve leaves room


async def test_runs_and_compare_count_training_steps_and_name_the_stage(combined_dir):
    from ctxtui.screens.compare import CompareScreen
    from ctxtui.screens.runs import RunsScreen

    events = combined_events()
    evaluation = [{"type": "progress", "time": events[-1]["time"], "stage": "eval", "which": which, "step": 64,
                   "total_steps": 64, "unit": "inputs", "elapsed_s": 1.0, "eta_s": 0.0, "stage_name": "second",
                   "operation": "lower"} for which in ("teacher", "student_before", "student_after")]
    write_combined_run(combined_dir, "20260102T000000Z-demo", events=events[:-1] + evaluation + events[-1:])
    write_run(combined_dir, "20260101T000000Z-demo")  # a one-operation run: 10 steps, no stage named
    app = CtxApp(combined_dir, attach=False, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await pilot.pause()
        table = screen.query_one("#runs-table")
        staged, single = table.get_row_at(0), table.get_row_at(1)
        assert staged[4] == "6/6" and staged[5] == "exact_match (second/upper)"  # 3 + 3 steps, not the 64 inputs
        assert single[4] == "10/10" and single[5] == "exact_match"
        await pilot.press("space", "down", "space", "c")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        compare = app.screen.query_one("#compare-metrics")
        rows = {str(row[0]): [str(cell) for cell in row[1:3]]
                for row in (compare.get_row_at(index) for index in range(compare.row_count))}
        assert rows["stage/operation"] == ["–", "second/upper"]  # A is the older, one-operation run
        assert rows["training steps"] == ["10/10", "6/6"]
        assert rows["student after exact_match"] == ["0.500", "0.400"]


async def test_title_bar_never_says_running_once_the_run_has_ended(combined_dir, live_pid):
    """Issue 20 item 12: a process still exiting after its `done` event is not "running: done"."""
    import os

    import time

    events = combined_events(start=time.time())  # ends with done/completed, written after the pid file
    run_dir = write_combined_run(combined_dir, events=events)
    (run_dir / "pid").write_text(f"{live_pid}\n")
    done_at = events[-1]["time"]
    app = CtxApp(combined_dir, start_mode="runs")
    async with app.run_test(size=SIZE) as pilot:
        app.run_dir = run_dir
        assert runner.run_alive(run_dir)  # the process is still exiting
        app.refresh_run_indicator()
        assert app.sub_title == ""
        os.utime(run_dir / "pid", (done_at + 1, done_at + 1))  # a resumed process, no event of its own yet
        app.refresh_run_indicator()
        assert app.sub_title == "▶ running: starting"
        await pilot.pause()


def test_the_stage_list_names_each_stages_policy(tmp_path):
    """Issue 21 item 3: an on-policy or mixed stage says so; an off-policy one (the paper's) stays as it was."""
    from ctxtui.stages import planned_stages
    from ctxtui.widgets.stage_list import stage_lines

    (tmp_path / "project.toml").write_text('''
[distill]
policy = "mixed"

[[operations]]
name = "a"

[[stages]]
name = "first"
[stages.distill]
policy = "off"

[[stages]]
name = "second"
''')
    planned = planned_stages(tmp_path)
    assert [stage.policy for stage in planned] == ["off", "mixed"]
    first, second = stage_lines(planned, {}).plain.splitlines()
    assert "policy" not in first and second.endswith("trains a · mixed-policy")


async def test_a_run_launched_a_moment_ago_shows_its_stages_before_and_after_its_project_toml(combined_dir, live_pid):
    """Seen in tmux on task-ids: at launch the run folder has no project.toml yet (the engine writes
    it once started), so the stage list stayed hidden for the whole run."""
    events = combined_events()
    run_dir = write_combined_run(combined_dir, events=events[:1])
    launched = (run_dir / "project.toml").read_text()
    (run_dir / "project.toml").unlink()
    (run_dir / "pid").write_text(f"{live_pid}\n")
    app = CtxApp(combined_dir, start_mode="run")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.watched == run_dir)
        await pilot.pause()
        assert screen.query_one("#run-stages").display  # from the loaded project, for now
        assert text_of(app, "#run-stages").splitlines()[1].startswith("· 2 second  waiting")
        (run_dir / "project.toml").write_text(launched.replace('name = "second"', 'name = "later"'))
        with open(run_dir / "events.jsonl", "a") as file:
            file.write("".join(json.dumps(e) + "\n" for e in events[1:3]))
        await wait_for(pilot, lambda: screen.state.step == 4)
        assert screen.plan_is_final and "2 later" in text_of(app, "#run-stages")  # the run's own plan, once written
        assert text_of(app, "#run-stage") == "stage 1/2 · first · teacher (upper) 4/8"
