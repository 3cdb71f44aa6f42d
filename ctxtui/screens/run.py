"""Run: launch the engine as its own process and watch its `events.jsonl`.

A thread worker tails the file and posts `RunProgressed` (replaceable, so a
fast run never floods the queue); the screen only draws. The run outlives the
app: on restart the app finds the live run and this screen reattaches.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Header, Log, ProgressBar, Static
from textual.worker import get_current_worker

from ctxtui import policy, runner, stages, sweeps
from ctxtui.messages import RunEnded, RunLaunched, RunProgressed
from ctxtui.screens.choice import ChoiceScreen
from ctxtui.widgets.follow_log import FollowLog
from ctxtui.widgets.line_chart import LineChart
from ctxtui.widgets.metrics_table import MetricsTable, savings_line
from ctxtui.widgets.stage_list import StageList
from ctxtui.widgets.stage_matrix import StageMatrix
from ctxtui.widgets.stage_summary import StageSummary
from ctxtui.widgets.key_footer import KeyFooter
from engine.runs.events import EventTail

POLL_S = 0.2
LOG_KEEP = 2000  # lines the log pane keeps
EVAL_ROLES = ("teacher", "student_before", "student_after")

# When a stop request takes effect, by engine stage (the recipe checks STOP between these).
STOP_TAKES_EFFECT = {
    "setup": "when setup ends",
    "teacher": "after the current teacher batch (finished batches are kept for the resume)",
    "train": "after the current step, with a checkpoint",
    "eval": "after the current evaluation batch (finished batches are kept for the resume)",
}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class RunScreen(Screen):
    """The dashboard of one run: stage, progress, curves, throughput, final table."""

    CSS_PATH = "run.tcss"
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]  # 80x24: a staged run's results replace the log

    BINDINGS = [
        Binding("n", "launch", "New"),
        Binding("s", "stop", "Stop"),
        Binding("k", "kill", "Kill", show=False),  # asks first; in the palette, F1 and ?
        Binding("r", "resume", "Resume"),
        Binding("o", "results", "Results", show=False),
        Binding("m", "toggle_matrix", "Matrix"),  # a staged run's results: per-operation summary <-> matrix
    ]

    def __init__(self) -> None:
        super().__init__()
        self.watched: Path | None = None
        self.state = runner.WatchedRun()
        self.alive = False
        self.seen_alive = False
        self.status = "no run"
        self.logged = 0  # events written to the log pane
        self.planned: list[stages.PlannedStage] = []
        self.plan_is_final = True  # the plan came from the run folder (or there is no run): no need to read it again
        self.matrix_shown = False  # a staged run's results: the overwrite matrix instead of the summary (m)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("no run yet: press n to launch one", id="run-title")
        yield Static("", id="run-command", markup=False)
        yield StageList(id="run-stages")
        with Horizontal(id="progress-row"):
            yield Static("", id="run-stage")
            yield ProgressBar(total=None, show_eta=False, id="run-progress")
            yield Static("", id="run-timing")
        with Horizontal(id="eval-row"):
            yield Static("", id="eval-label")
            yield ProgressBar(total=None, show_eta=False, id="eval-progress")
        with Horizontal(id="charts"):
            yield LineChart("loss", id="loss-chart")
            yield LineChart("answer KL", id="kl-chart")
            yield LineChart("learning rate", id="lr-chart")
        yield Static("", id="run-stats")
        yield Static("", id="run-cost")  # an on-policy stage: seconds per step sampling, scoring, training
        yield Static("", id="run-message", markup=False)
        yield MetricsTable(id="run-metrics")
        yield StageSummary(id="run-summary")
        yield StageMatrix(id="run-matrix", key_hint="m: summary")
        yield Static("", id="run-savings")
        yield FollowLog(max_lines=LOG_KEEP, id="run-log")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#run-metrics").display = False
        self.query_one("#run-matrix").display = False
        self.query_one("#run-summary").display = False
        self.query_one("#run-stages").display = False
        self.query_one("#eval-row").display = False
        self.query_one("#run-cost").display = False
        self.query_one("#kl-chart").HELP = LineChart.HELP + (
            "\n**KL**: off-policy, the student's KL to the teacher's labels on the teacher's answers. On-policy "
            "(`distill.policy = \"on\"`), the divergence being minimized (`distill.divergence`) on the student's own "
            "samples as the teacher scores them; mixed, the two by their share of answer tokens. The line under the "
            "stats says what an on-policy step costs: seconds sampling, scoring and training, and teacher tokens.")
        log = self.query_one("#run-log", FollowLog)
        log.border_title = "events"
        log.HELP = "## Events\n\nThe run's `events.jsonl`, one line per event, newest last (the full file is in the run folder)."
        self.query_one("#run-progress").HELP = (
            "## Progress\n\nCounts of the current stage: teacher pass (inputs), training (steps), "
            "evaluation (inputs), with the run's elapsed time (all its processes) and the engine's ETA.")
        self.set_interval(1.0, self.refresh_stats)
        if self.app.run_dir is None:  # nothing live: show the newest run, if any
            runs = runner.list_runs(self.app.project_dir)
            self.app.run_dir = runs[0].run_dir if runs else None
        if self.app.run_dir is not None:
            self.watch_run(self.app.run_dir)
        else:
            self.query_one("#run-progress").display = False  # nothing runs: no animated bar (issue 20 item 13)
            self.show_plan()

    def on_screen_resume(self) -> None:
        if self.app.run_dir is not None and self.app.run_dir != self.watched:
            self.watch_run(self.app.run_dir)
        elif self.watched is None:
            self.show_plan()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """The footer shows m once a staged run has results to switch between (issue 20 item 16)."""
        return self.has_class("-stage-results") if action == "toggle_matrix" else True

    def show_plan(self) -> None:
        """Before any run: the project's stages, what each trains and whose weights teach (issue 20 item 1)."""
        self.planned = stages.project_stages(self.app.project)
        self.query_one("#run-stages", StageList).show(self.planned, {})
        used = "" if self.planned else policy.policy_label(policy.project_distill(self.app.project))
        self.query_one("#run-title", Static).update("no run yet: press n to launch one" + (f" · {used}" if used else ""))

    def commands(self):
        yield SystemCommand("New run", "Launch the engine on this project (n)", self.action_launch)
        yield SystemCommand("Stop run", "Checkpoint, then stop (s)", self.action_stop)
        yield SystemCommand("Kill run", "SIGKILL the run's processes, after asking (k)", self.action_kill)
        yield SystemCommand("Resume run", "Continue a stopped run from its checkpoint (r)", self.action_resume)
        yield SystemCommand("Results of this run", "Open the Results screen (o)", self.action_results)
        yield SystemCommand("Overwrite matrix", "A staged run: summary after the last stage <-> matrix (m)",
                            self.action_toggle_matrix)

    # -- watching ---------------------------------------------------------

    def watch_run(self, run_dir: Path) -> None:
        self.watched = Path(run_dir)
        self.state, self.alive = runner.WatchedRun(), runner.run_alive(self.watched)
        self.logged = 0
        self.query_one("#run-log", FollowLog).clear()
        self.query_one("#eval-row").display = False
        self.seen_alive = self.alive
        self.read_plan()
        seed = sweeps.seed_label(self.watched)  # a member of a sweep: "seed 2/3"
        # A staged run's stage list names each stage's policy; a single run's title does.
        used = "" if self.planned else policy.policy_label(policy.run_distill(self.watched))
        self.query_one("#run-title", Static).update(
            " · ".join(part for part in (f"run {self.watched.name}", seed, used) if part))
        command_file = self.watched / "command"
        command = command_file.read_text().strip() if command_file.exists() else ""
        self.query_one("#run-command", Static).update(f"$ {command}" if command else "")
        self.query_one("#run-metrics").display = False
        self.query_one("#run-matrix").display = False
        self.query_one("#run-summary").display = False
        self.remove_class("-stage-results")
        self.refresh_bindings()
        self.query_one("#run-savings", Static).update("")
        self.tail(self.watched)

    def read_plan(self) -> None:
        """The watched run's stages from its project.toml; a run just launched has none yet (the
        engine writes it once started), so until then the loaded project's, and read again later."""
        self.plan_is_final = (self.watched / "project.toml").exists()
        launched_here = self.app.project is not None and self.watched.parent.resolve() == (self.app.project_dir / "runs").resolve()
        self.planned = (stages.planned_stages(self.watched) if self.plan_is_final or not launched_here
                        else stages.project_stages(self.app.project))

    def tail(self, run_dir: Path) -> None:
        self.run_worker(lambda: self._tail(run_dir), thread=True, exclusive=True, group="tail")

    def _tail(self, run_dir: Path) -> None:
        worker = get_current_worker()
        events = EventTail(run_dir / "events.jsonl")
        state = runner.WatchedRun()
        first = True
        while not worker.is_cancelled:
            new_events = list(events.read_new())
            for event in new_events:
                runner.apply_event(state, event)
            alive = runner.run_alive(run_dir)
            if new_events or first:
                self.post_message(RunProgressed(run_dir, copy.deepcopy(state), alive))
                first = False
            if not alive:
                # Read what the process wrote just before exiting, then report the end.
                for event in events.read_new():
                    runner.apply_event(state, event)
                self.post_message(RunProgressed(run_dir, copy.deepcopy(state), False))
                self.post_message(RunEnded(run_dir, runner.effective_status(state, False)))
                return
            time.sleep(POLL_S)

    def on_run_progressed(self, message: RunProgressed) -> None:
        if message.run_dir != self.watched:
            return
        self.state, self.alive = message.state, message.alive
        self.seen_alive = self.seen_alive or message.alive
        state = self.state
        self.status = runner.effective_status(state, self.alive)
        if state.command and not self.query_one("#run-command", Static).content:
            self.query_one("#run-command", Static).update(f"$ {state.command}")
        if not self.plan_is_final:
            self.read_plan()
        self.show_stage()
        self.show_curves()
        self.show_message()
        self.show_log()
        self.show_eval_progress()
        self.refresh_stats()
        if state.evals or self.status == "completed":
            self.show_final_table()

    def show_stage(self) -> None:
        state = self.state
        self.query_one("#run-stages", StageList).show(self.planned, stages.stage_states(self.planned, state, self.status))
        running = self.status in ("running", "starting")
        label = stages.live_label(self.planned, state, self.status)
        self.query_one("#run-stage", Static).update(
            label or (f"{state.stage} · {self.status}" if running else self.status))
        bar = self.query_one("#run-progress", ProgressBar)
        if state.total_steps:
            bar.update(total=state.total_steps, progress=state.step)
        elif self.status == "completed":
            bar.update(total=1, progress=1)
        else:
            bar.update(total=None, progress=0)  # counts not known yet: indeterminate, never "0/?"
        bar.display = self.status in ("running", "starting", "completed") or bool(state.total_steps)

    def show_curves(self) -> None:
        """Loss, KL and LR over one step axis across stages, each later stage's start marked (issue 20 item 2)."""
        state = self.state
        marks = state.boundaries if len(self.planned) > 1 else []
        for chart_id, points in (("#loss-chart", state.losses), ("#kl-chart", state.kls), ("#lr-chart", state.lrs)):
            chart = self.query_one(chart_id, LineChart)
            chart.marks = list(marks)
            chart.points = list(points)
            steps = f"steps {points[0][0]}–{points[-1][0]}" if points else ""
            chart.border_subtitle = f"{steps} · ┊ {len(marks) + 1} stages" if steps and marks else steps
        self.query_one("#kl-chart", LineChart).border_title = policy.kl_title(state.stage_policies.values())
        cost = policy.cost_line(state.policy, state.step_cost, state.teacher_tokens)
        self.query_one("#run-cost", Static).update(cost)
        self.query_one("#run-cost").display = bool(cost)

    def show_log(self) -> None:
        """Write the events not written yet (the state keeps the newest few hundred)."""
        state = self.state
        new = min(state.log_count - self.logged, len(state.log))
        if new > 0:
            self.query_one("#run-log", FollowLog).follow(list(state.log)[-new:])
        self.logged = state.log_count

    def show_eval_progress(self) -> None:
        """`eval student before 8/16`: inputs decoded by each of the three evaluations, as one bar."""
        progress = self.state.eval_progress
        row = self.query_one("#eval-row")
        row.display = bool(progress)
        if not progress:
            return
        per_role = max(total for _, total in progress.values()) or 1
        roles = list(dict.fromkeys([*EVAL_ROLES, *progress]))
        done = sum(progress.get(role, (0, 0))[0] for role in roles)
        which = list(progress)[-1]
        step, total = progress[which]
        self.query_one("#eval-label", Static).update(f"eval {which.replace('_', ' ')} {step}/{total}")
        self.query_one("#eval-progress", ProgressBar).update(total=per_role * len(roles), progress=done)

    def show_message(self) -> None:
        """The engine's latest status line while running; the outcome once the run has ended."""
        state = self.state
        if self.status in ("running", "starting"):
            lines = [state.message]
            if self.watched is not None and (self.watched / "STOP").exists():
                lines.append(f"stop requested: takes effect {STOP_TAKES_EFFECT.get(state.stage, 'soon')}")
        else:
            outcome = {"completed": "run completed", "stopped": "run stopped: press r to resume",
                       "interrupted": "the run's process ended without saying why: press r to resume",
                       "failed": "run failed"}.get(self.status, self.status)
            lines = [outcome]
        lines += [f"error: {error}" for error in state.errors]
        self.query_one("#run-message", Static).update("\n".join(line for line in lines if line))

    def on_run_ended(self, message: RunEnded) -> None:
        if message.run_dir == self.watched:
            self.status = message.status
            self.alive = False
            self.show_stage()
            self.show_message()
            self.refresh_stats()
            self.show_final_table()
            self.query_one("#run-log", FollowLog).jump_to_end()
            if message.status in ("failed", "interrupted"):
                self.show_log_tail()
            if self.seen_alive:  # news only for a run that ended while we watched
                self.notify(f"run {message.run_dir.name} {message.status}", title="Run")
            self.app.refresh_run_indicator()

    def show_log_tail(self, lines: int = 6) -> None:
        """The end of the process's own output: why a run died without saying so in events."""
        try:
            tail = (self.watched / "stdout.log").read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return
        if tail:
            shown = "\n".join([f"run {self.status}", *self.state.errors, f"stdout.log ({self.watched.name}):", *tail])
            self.query_one("#run-message", Static).update(shown)

    def show_final_table(self) -> None:
        metrics = runner.load_json(self.watched / "metrics.json") if self.watched else {}
        if self.planned or metrics.get("combined"):
            self.show_stage_results(metrics)
            return
        if not metrics and self.state.evals:
            metrics = dict(self.state.evals)
        if not metrics:
            return
        table = self.query_one("#run-metrics", MetricsTable)
        table.show_metrics(metrics)
        table.display = True
        self.query_one("#run-savings", Static).update(savings_line(metrics))

    def show_stage_results(self, metrics: dict) -> None:
        """A staged run: each operation after the latest stage evaluated, or the overwrite matrix (issue 20 item 3)."""
        results = stages.stage_results(metrics, self.state)
        stage, rows = stages.summary_rows(results)
        if not rows:
            return
        names = [planned.name for planned in self.planned]
        where = f" ({names.index(stage) + 1}/{len(names)})" if stage in names else ""
        summary = self.query_one("#run-summary", StageSummary)
        summary.show_summary(stage, rows, where)
        matrix = self.query_one("#run-matrix", StageMatrix)
        matrix.show_matrix(metrics.get("matrix") or stages.overwrite_matrix(results))
        # Sized from the rows (header and border too), capped in run.tcss: a DataTable's auto height can lag its rows.
        summary.styles.height, matrix.styles.height = len(rows) + 3, matrix.row_count + 3
        summary.display, matrix.display = not self.matrix_shown, self.matrix_shown
        if not self.has_class("-stage-results"):
            self.add_class("-stage-results")
            self.refresh_bindings()
        self.query_one("#run-savings", Static).update(
            f"m: {'summary' if self.matrix_shown else 'overwrite matrix'} · every stage and operation: Results (o)")

    def action_toggle_matrix(self) -> None:
        if not (self.query_one("#run-summary").display or self.query_one("#run-matrix").display):
            self.notify("the overwrite matrix is for a staged run, once it has evaluated a stage", severity="warning")
            return
        self.matrix_shown = not self.matrix_shown
        self.show_final_table()

    def refresh_stats(self) -> None:
        state = self.state
        running = self.alive and self.status in ("running", "starting")
        elapsed = state.elapsed(time.time(), running)
        staged = bool(stages.live_label(self.planned, state, self.status))  # the counts are in the stage label
        counts = f"{state.step}/{state.total_steps} {state.unit}  " if state.total_steps and not staged else ""
        eta = f"  ETA {duration(state.eta_s)}" if running and state.total_steps else ""
        self.query_one("#run-timing", Static).update(f"{counts}elapsed {duration(elapsed)}{eta}")
        if not self.alive:
            since = "not running"  # an ended run's age would only tick up
        elif state.last_event_at:
            since = f"last event {time.time() - state.last_event_at:.0f}s ago"
        else:
            since = "no events yet"
        tokens = f"{state.tokens_per_s:,.0f}" if state.tokens_per_s is not None else "–"
        memory = f"{state.memory_mb:,.0f} MB" if state.memory_mb is not None else "–"
        loss = f"{state.losses[-1][1]:.4f}" if state.losses else "–"
        lr = f"{state.lrs[-1][1]:.2e}" if state.lrs else "–"
        self.query_one("#run-stats", Static).update(
            f"loss {loss}  lr {lr}  tokens/s {tokens}  memory {memory}  "
            f"ckpt {len(state.checkpoints)}   {since}")

    # -- actions ----------------------------------------------------------

    def action_launch(self) -> None:
        app = self.app
        if self.watched is not None and runner.run_alive(self.watched):
            self.notify("a run is already running: stop it first (s)", severity="warning")
            return
        if app.project is None or app.project_problems():
            self.refuse_launch(app.project_problems())
            return
        self.run_worker(self.launch_checked(), exclusive=True, group="launch")

    def refuse_launch(self, problems: list[str]) -> None:
        self.notify("cannot launch, the project has problems (shown on the Author screen, F2, and in Settings, F5):\n"
                    + "\n".join(problems[:5]), severity="error", timeout=8)

    async def launch_checked(self) -> None:
        """Launch after `ctxdistill check`'s own checks pass on the edited project (issue 20 item 5)."""
        app = self.app
        self.query_one("#run-message", Static).update("checking the project as `ctxdistill check` does…")
        problems, warnings = await app.check_now()
        self.query_one("#run-message", Static).update("")
        if app.project is None or problems:
            self.refuse_launch(problems)
            return
        if warnings:
            self.notify("\n".join(warnings[:3]), severity="warning", timeout=8)
        if not app.save_before_launch():
            return
        run_dir = runner.new_run_dir(app.project_dir, app.project.name)
        command = runner.build_command(app.project_dir, run_dir, app.project.distill.num_processes)
        self.start(command, run_dir)

    def action_resume(self) -> None:
        if self.watched is None or self.status not in ("stopped", "interrupted", "failed"):
            self.notify("only a stopped run can be resumed", severity="warning")
            return
        if runner.run_alive(self.watched):
            self.notify("the run is still shutting down: resume in a moment", severity="warning")
            return
        processes = self.app.project.distill.num_processes if self.app.project else 1
        command = runner.build_command(self.app.project_dir, self.watched, processes, resume=True)
        self.start(command, self.watched)

    def start(self, command: list[str], run_dir: Path) -> None:
        try:
            runner.launch(command, run_dir)
        except OSError as error:
            self.notify(f"could not launch: {error}", severity="error")
            return
        self.app.run_dir = run_dir
        self.post_message(RunLaunched(run_dir, runner.format_command(command)))
        self.watch_run(run_dir)

    def action_stop(self) -> None:
        if self.watched is None or not runner.run_alive(self.watched):
            self.notify("no running run to stop", severity="warning")
            return
        runner.request_stop(self.watched)
        when = STOP_TAKES_EFFECT.get(self.state.stage, "at the engine's next check")
        self.notify(f"stop requested: takes effect {when}")
        self.show_message()
        self.app.refresh_run_indicator()

    def action_kill(self) -> None:
        if self.watched is None or not runner.run_alive(self.watched):
            self.notify("no running run to kill", severity="warning")
            return
        run_dir = self.watched

        def answered(choice: str | None) -> None:
            if choice != "kill":
                return
            if runner.kill(run_dir):
                self.notify("run killed", severity="warning")
            else:
                self.notify("the run had already ended", severity="warning")

        self.app.push_screen(ChoiceScreen(
            f"Kill run {run_dir.name}?", [("cancel", "Cancel"), ("kill", "Kill it")],
            detail="SIGKILL ends it at once, without a checkpoint; work since the last checkpoint is lost. "
                   "Stop (s) checkpoints first."), answered)

    def action_results(self) -> None:
        if self.watched is not None:
            self.app.open_results(self.watched)
