"""Combined projects held to the single-run bar (issue 24): recovery, locks, ensembles, init, launchers.

The input mistakes are cases of the bad-input corpus (bad_inputs/cases.toml); these
are the behaviours a corpus case cannot show: a correction a resume accepts, a run
folder held by a second real process, a project `check` accepts, torchrun's report.
No test here loads a model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.project.loader import load_project
from engine.project.writer import project_to_toml
from engine.runs.lock import LOCK_FILE, RunLock, RunLocked, lock_run_folder
from engine.runs.resume import project_for_resume

from test_bad_inputs import build_project, run_cli

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
TWO_OPERATIONS = ("[[operations]]\nname = \"first\"\n\n"
                  "[[operations]]\nname = \"second\"\neval = { metrics = [\"exact_match\"] }\n\n"
                  "[[stages]]\nname = \"one\"\n\n[[stages]]\nname = \"two\"\n")


def fake_run(project_dir: Path, run_dir: Path) -> Path:
    """A run folder as a launch leaves it: the project as launched and the first event naming its folder."""
    run_dir.mkdir(parents=True)
    (run_dir / "project.toml").write_text(project_to_toml(load_project(project_dir)), encoding="utf-8")
    (run_dir / "events.jsonl").write_text(json.dumps({"type": "status", "project_dir": str(project_dir)}) + "\n")
    return run_dir


def edit(project_dir: Path, old: str, new: str) -> None:
    path = project_dir / "project.toml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


# --- item 1: the safe-key rule covers every operation's and stage's copy ---------------

def test_an_eval_fix_in_a_combined_project_is_taken_by_resume_and_eval(tmp_path):
    project = build_project({"append": TWO_OPERATIONS}, tmp_path / "project", None)
    run_dir = fake_run(project, tmp_path / "run")
    edit(project, 'metrics = ["exact_match"]\nreference', 'metrics = ["rouge_l"]\nreference')  # the top-level [eval]
    edit(project, 'eval = { metrics = ["exact_match"] }', 'eval = { metrics = ["accuracy"] }')  # one operation's own
    edit(project, 'name = "two"\n', 'name = "two"\ndistill = { log_every = 5 }\n')
    current, adopted = project_for_resume(run_dir)
    assert {"eval.metrics", "operations.first.eval.metrics", "operations.second.eval.metrics",
            "stages.two.distill.log_every"} <= set(adopted)
    assert current.operation("second").eval.metrics == ["accuracy"]
    assert 'metrics = ["accuracy"]' in (run_dir / "project.toml").read_text()


def test_an_unsafe_change_in_an_operation_is_still_refused(tmp_path):
    project = build_project({"append": TWO_OPERATIONS}, tmp_path / "project", None)
    run_dir = fake_run(project, tmp_path / "run")
    edit(project, 'name = "second"\n', 'name = "second"\nteacher = { template = "Say it.\\n{{ input }}" }\n')
    with pytest.raises(EngineError, match="operations.second.teacher.template"):
        project_for_resume(run_dir)


# --- item 2: one live process per run folder ----------------------------------------

HOLD = ("import sys, time\nfrom engine.runs.lock import RunLock\n"
        "with RunLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")


@pytest.fixture
def holder(tmp_path):
    """A second real process that holds `tmp_path/run` until killed."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True,
                               env=ENV, cwd=REPO)
    assert process.stdout.readline().strip() == "held"
    yield process, run_dir
    if process.poll() is None:
        process.kill()
        process.wait()


def test_a_second_run_on_a_live_run_folder_stops_at_once_naming_its_pid(holder, tmp_path, capsys):
    process, run_dir = holder
    project = build_project({}, tmp_path / "project", None)
    started = time.time()
    status, output = run_cli(["run", str(project), "--run-dir", str(run_dir), "--quiet"], capsys)
    assert status == 2 and time.time() - started < 30
    (line,) = [line for line in output.splitlines() if line.startswith("error: ")]
    assert f"pid {process.pid}" in line and "in use by a live run" in line
    assert sorted(path.name for path in run_dir.iterdir()) == [LOCK_FILE], "the refused run wrote nothing"
    status, output = run_cli(["eval", str(run_dir)], capsys)
    assert status == 2 and f"pid {process.pid}" in output


def test_under_torchrun_both_processes_stop_on_a_live_run_folder(holder, tmp_path):
    """Only the main process asks for the lock; the other learns the refusal and stops too, never waiting."""
    process, run_dir = holder
    project = build_project({}, tmp_path / "project", None)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "engine.cli", "run", str(project), "--run-dir", str(run_dir), "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=REPO, timeout=180)
    assert done.returncode != 0
    lines = [line for line in done.stdout.splitlines() if line.startswith("error: ")]
    # Both processes print the refusal, but torchrun ends the other once one exits, so one line may be all there is;
    # each line must be whole (two processes share the pipe: a split write once ran two lines into one).
    assert 1 <= len(lines) <= 2, done.stdout
    assert all(line.count("error: ") == 1 and f"in use by a live run (pid {process.pid})" in line for line in lines)
    assert sorted(path.name for path in run_dir.iterdir()) == [LOCK_FILE]


def test_a_killed_runs_lock_is_stale(holder):
    process, run_dir = holder
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (run_dir / LOCK_FILE).exists()  # left behind by the killed process: stale, not held
    with RunLock(run_dir):
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (run_dir / LOCK_FILE).exists()


def test_the_lock_is_released_on_any_exit(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with RunLock(tmp_path):
            1 / 0
    with RunLock(tmp_path):
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()


def test_without_flock_a_dead_pid_is_stale_and_a_live_one_holds(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "no locks on this file system")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename}))
    with RunLock(tmp_path):  # the pid is gone: taken over
        pass
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename}))
    with pytest.raises(RunLocked, match=f"pid {os.getppid()}"):
        RunLock(tmp_path).acquire()


class FakeState:
    """Just enough of accelerate's state: the rank, and `shared` passing values through."""

    def __init__(self, main: bool):
        self.is_main_process, self.num_processes = main, 1


def test_only_the_main_process_takes_the_lock(tmp_path):
    other = lock_run_folder(FakeState(main=False), tmp_path)
    assert not (tmp_path / LOCK_FILE).exists()
    main = lock_run_folder(FakeState(main=True), tmp_path)
    assert (tmp_path / LOCK_FILE).exists()
    other.release()
    assert (tmp_path / LOCK_FILE).exists(), "a non-main process never removes the main one's lock"
    main.release()


# --- items 3 and 4: ensembles ------------------------------------------------------

SHUFFLED = ("{% for ex in examples | shuffle %}Input: {{ ex.input }}\nOutput: {{ ex.output }}\n{% endfor %}"
            "Input: {{ input }}\nOutput: ")
EXAMPLES = [{"input": "ab", "output": "ba"}, {"input": "abc", "output": "cba"}, {"input": "cd", "output": "dc"}]


def test_an_ensemble_made_with_shuffle_is_accepted(tmp_path, capsys):
    project = build_project({"set": {"teacher.ensemble": 3, "teacher.template": SHUFFLED,
                                     "teacher.vars": {"examples": EXAMPLES}}}, tmp_path / "project", None)
    status, output = run_cli(["check", str(project)], capsys)
    assert status == 0, output
    assert "would be the same" not in output


def test_an_input_whose_shuffles_all_coincide_does_not_stop_the_teacher_pass(tmp_path):
    """3 examples shuffled 3 times give one input in 36 three equal prompts: a weight, not an error."""
    from engine.project.templates import render_teacher
    from engine.teacher.teacher_pass import teacher_prompts

    project = load_project(build_project({"set": {"teacher.ensemble": 3, "teacher.template": SHUFFLED,
                                                  "teacher.vars": {"examples": EXAMPLES}}}, tmp_path / "project", None))
    unlucky = next(example for example in ({"input": f"w{i}"} for i in range(2000))
                   if len({render_teacher(project, example, index) for index in range(3)}) == 1)
    assert len(teacher_prompts(project, None, unlucky)) == 3


def test_a_large_ensemble_is_warned_about_with_its_cost(tmp_path, capsys):
    examples = [{"input": f"x{i}", "output": f"{i}x"} for i in range(6)]
    project = build_project({"set": {"teacher.ensemble": 20, "teacher.template": SHUFFLED,
                                     "teacher.vars": {"examples": examples}}}, tmp_path / "project", None)
    status, output = run_cli(["check", str(project)], capsys)
    assert status == 0, output
    assert "warning: `teacher.ensemble` = 20" in output and "20 x 8 inputs = 160 teacher forward passes" in output


def test_evaluation_scores_a_sample_of_a_large_ensembles_prompts():
    from engine.evaluation.stage_eval import SINGLE_TEACHERS_SCORED, scored_renderings

    assert scored_renderings(3, seed=0) == [0, 1, 2]
    sampled = scored_renderings(64, seed=0)
    assert len(sampled) == SINGLE_TEACHERS_SCORED == len(set(sampled)) and sampled[0] == 0
    assert sampled == scored_renderings(64, seed=0) != scored_renderings(64, seed=1)


# --- item 5: init writes only projects `check` accepts --------------------------------

@pytest.mark.parametrize("folder", [".proj", "p" * 120, "-- my project --"])
def test_init_writes_a_project_that_check_accepts(tmp_path, capsys, folder):
    target = tmp_path / folder
    status, output = run_cli(["init", str(target)], capsys)
    assert status == 0, output
    status, output = run_cli(["check", str(target)], capsys)
    assert status == 0, output


# --- item 8: under torchrun the engine's line comes last ------------------------------

def test_under_torchrun_the_engines_line_ends_the_report(tmp_path):
    project = build_project({"set": {"distill.learning_rate": 0.0}}, tmp_path / "project", None)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                           "-m", "engine.cli", "check", str(project)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=REPO, timeout=180)
    assert done.returncode != 0
    output = done.stdout
    assert output.startswith("error: ")  # the worker's line first, as without torchrun
    # Then torchrun's own report (and its agent's traceback, which is torchrun's, not the engine's):
    # it ends with the engine's line again, not with "To enable traceback see ...".
    report = output[output.rindex("Root Cause"):]
    assert "`distill.learning_rate` = 0.0: expected a number greater than 0" in report, report
    assert "To enable traceback" not in report
