"""A run, end to end: for each stage, the teacher pass of each operation, training, evaluation.

A project is a list of stages (design.md, "Combining distillations"); a project
that declares none is one stage of one operation, and runs exactly as before.
Each stage trains one student on its operations at once (simultaneous
distillation), starting from the previous stage's student (sequential); its
teacher is the base model, or the previous student (recursive). After every
stage, every operation seen so far is evaluated, so the run shows what a later
stage overwrote.

Everything lands in one run folder (engine/runs/layout.py says where), which is the
whole truth about the run. This module holds the only loop over stages.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from engine.runs import atomic
from engine.project.schema import Project, Stage
from engine.project.writer import project_to_toml
from engine.training.data import build_examples
from engine.checks import preflight, project_warnings
from engine.errors import EngineError, MetricError, StopRequested
from engine.runs.events import EventWriter
from engine.versions import versions
from engine.teacher.extractors import Extractor
from engine.runs.layout import RunLayout, is_saved_model, publish_student
from engine.runs.lock import RunLock, lock_run_folder
from engine.runs.model_card import write_student_cards
from engine.models import device_map_problem, load_model, load_tokenizer
from engine.runs.processes import any_process, check_shared_folder, dead_ranks, gathered, process_state, shared, whoami
from engine.runs.resume import project_for_resume
from engine.project.sources import load_inputs
from engine.evaluation.eval_journal import EvalJournal
from engine.evaluation.stage_eval import evaluate_stage, overwrite_matrix
from engine.teacher.cache_lock import teacher_cache_lock
from engine.teacher.teacher_pass import cache_key, teacher_pass
from engine.threads import configure_threads
from engine.runs.trackers import Trackers
from engine.training.train import STOP_FILE, StopSignal, train

RUN_FILES = ("project.toml", "events.jsonl", "teacher", "checkpoints", "student", "metrics.json", "samples.jsonl")


def new_run_dir(project: Project, runs_dir: Path | None = None) -> Path:
    # Milliseconds: two runs started in the same second never collide.
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:-3] + "Z"
    return (runs_dir or project.dir / "runs") / f"{stamp}-{project.name}"


def run(project: Project, run_dir: Path, resume: bool = False, listeners=()) -> dict | None:
    """Run (or resume) every stage of a project; returns metrics, or None when stopped."""
    state = process_state(project.model.device)
    problem = device_map_problem(project.model, state.num_processes)
    if problem:
        raise EngineError(problem)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_shared_folder(state, run_dir)  # several nodes: every one must see what the main process writes
    lock = lock_run_folder(state, run_dir)  # before anything is written: a second run on this folder stops here
    try:
        return _run_locked(project, run_dir, resume, listeners, state)
    finally:
        lock.release()


def _run_locked(project: Project, run_dir: Path, resume: bool, listeners, state) -> dict | None:
    threads = configure_threads(project.model.threads)
    layout = RunLayout.of(project, run_dir)
    if not resume and state.is_main_process:
        atomic.write_text(run_dir / "project.toml", project_to_toml(project))
    events = EventWriter(run_dir / "events.jsonl", enabled=state.is_main_process,
                         trackers=Trackers.for_run(project, run_dir) if state.is_main_process else None)
    events.listeners.extend(listeners)
    events.set_scope(project.stages[0].name, None)
    ranks = gathered(state, whoami(state))
    events.emit("status", stage="setup", message="resuming run" if resume else "starting run",
                pid=os.getpid(), command=" ".join(sys.argv), project_dir=str(project.dir),
                run_dir=str(run_dir), processes=state.num_processes, ranks=ranks, threads=threads,
                stages=[stage.name for stage in project.stages], operations=[op.name for op in project.operations],
                versions=versions())
    stop = StopSignal(run_dir)  # honoured between batches of the teacher pass and evaluation; training has its own
    try:
        # The main process's draw for all: a few-shot source samples its inputs from the model.
        inputs = shared(state, load_all_inputs(project, events))
        preflight(project, inputs)  # user code, labels and templates checked in seconds, before the teacher pass
        for warning in project_warnings(project):
            events.emit("status", stage="setup", message=warning)
        results, previous, teacher_memo = {}, None, {}
        for index, stage in enumerate(project.stages):
            events.set_scope(stage.name, None)
            results[stage.name] = run_stage(project, index, layout, inputs, previous, events, state, resume,
                                            teacher_memo, stop.requested)
            previous = layout.student_dir(stage)
        metrics = None
        if state.is_main_process:
            metrics = write_run_metrics(project, layout, results)
        state.wait_for_everyone()
        events.emit("done", stage="done", status="completed", metrics=metrics)
        return metrics
    except StopRequested:
        events.emit("done", stage="done", status="stopped", message="stopped after saving a checkpoint; resume with --resume")
        return None
    except EngineError as error:
        events.emit("error", message=str(error))
        events.emit("done", stage="done", status="failed", message=str(error))
        raise
    except BaseException as error:
        events.emit("error", message=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
        # A rank killed mid-collective surfaces here as the transport's error: name the rank instead.
        died = dead_ranks(ranks) if state.num_processes > 1 else []
        message = (", ".join(f"rank {rank['rank']} died (pid {rank['pid']})" for rank in died)
                   + f"; resume with `ctxdistill run --resume {run_dir}` under the same launch") if died \
            else f"{type(error).__name__}: {error}"
        events.emit("done", stage="done", status="failed", message=message)
        raise
    finally:
        stop.restore()
        (run_dir / STOP_FILE).unlink(missing_ok=True)
        events.close()


def load_all_inputs(project: Project, events) -> dict[str, tuple[list[dict], list[dict]]]:
    """{operation: (distillation inputs, held-out inputs)}; few-shot sources sample them from the base model."""
    model = tokenizer = None
    if any(operation.inputs.source == "fewshot" for operation in project.operations):
        model, tokenizer = load_model(project.model, project.dir)
    inputs = {}
    for operation in project.operations:
        events.set_scope(events.scope.get("stage_name"), operation.name)
        inputs[operation.name] = load_inputs(project.for_operation(operation.name), model, tokenizer)
        distill, held_out = inputs[operation.name]
        events.emit("status", stage="setup", message=f"{len(distill)} distillation inputs, {len(held_out)} held out"
                    + (f" ({operation.name})" if project.combined else ""))
    events.set_scope(events.scope.get("stage_name"), None)
    del model
    return inputs


def run_stage(project: Project, index: int, layout: RunLayout, inputs: dict, previous: Path | None,
              events, state, resume: bool, teacher_memo: dict, stop_requested) -> dict[str, dict]:
    """One stage: teacher pass per operation, training, evaluation -> {operation: metrics}."""
    stage = project.stages[index]
    student_dir = layout.student_dir(stage)
    if resume and layout.stage_metrics(stage).exists() and is_saved_model(student_dir):
        events.emit("status", stage="setup", message=f"stage {stage.name} finished before the stop; not redoing it")
        return read_stage_metrics(project, layout, stage)
    layout.checkpoints_dir(stage).mkdir(parents=True, exist_ok=True)
    teacher_weights = previous if stage.teacher == "previous" else None
    records = teacher_stage(project, stage, layout, inputs, teacher_weights, events, state, stop_requested)

    tokenizer = load_tokenizer(project.model, project.dir)
    examples = []
    for position, name in enumerate(stage.operations):
        events.set_scope(stage.name, name)
        view = project.for_operation(name, stage)
        built, missed = build_examples(view, tokenizer, records[name], Extractor(view.extract, project.dir),
                                       stage.distill.max_seq_len, operation=position)
        events.emit("status", stage="teacher", message=f"{len(built)} answers extracted, {len(missed)} outputs without one"
                    + (f" ({name})" if project.combined else ""), extracted=len(built), missed=len(missed))
        examples += built
    events.set_scope(stage.name, None)

    if any_process(state, stop_requested()):  # asked during the teacher pass's last batch: stop before training
        raise StopRequested()
    if resume and is_saved_model(student_dir):
        events.emit("status", stage="train", message="the student was already trained before the stop; not training it again")
    else:
        train(replace(project, distill=stage.distill), examples, events, run_dir=layout.run_dir, output_dir=student_dir,
              checkpoints_dir=layout.checkpoints_dir(stage), resume=resume,
              init_from=str(previous) if previous else None,
              weights=[project.operation(name).weight for name in stage.operations],
              teacher_from=str(teacher_weights) if teacher_weights else None)
    baselines = {}
    if project.baselines.methods:
        from engine.evaluation.baselines import train_baselines

        view = project.for_operation(stage.operations[0], stage)
        baselines = train_baselines(view, layout.run_dir, tokenizer, records[stage.operations[0]],
                                    Extractor(view.extract, project.dir), events, held_out=inputs[stage.operations[0]][1])
    metrics = None
    if state.is_main_process:
        try:
            metrics = evaluate_and_save_stage(project, index, layout, inputs, previous, events, baselines, teacher_memo,
                                              stop_requested)
        except MetricError as error:
            raise MetricError(f"{error}\nThe trained student is kept in {student_dir}: fix [eval] in the project file, "
                              f"then `ctxdistill eval {layout.run_dir}` scores it (or `ctxdistill run --resume "
                              f"{layout.run_dir}` finishes the run).") from None
    state.wait_for_everyone()
    return metrics if metrics is not None else read_stage_metrics(project, layout, stage)


def teacher_stage(project: Project, stage: Stage, layout: RunLayout, inputs: dict, teacher_weights: Path | None,
                  events, state, stop_requested=lambda: False) -> dict:
    """{operation: teacher records}; with several processes each generates its share of the batches."""
    records = {}
    # Several processes: each on its own device (accelerate's, e.g. cuda:<local rank>), never all on cuda:0.
    device = state.device if state.num_processes > 1 else None
    model, tokenizer = load_model(project.model, project.dir, path=str(teacher_weights) if teacher_weights else None,
                                  device=device)
    for name in stage.operations:
        events.set_scope(stage.name, name)
        view = project.for_operation(name, stage)
        # Another run of this project generating the same cache: wait for it, then reuse it.
        key = cache_key(view, inputs[name][0], teacher_weights, model)
        waiting = lambda holder: events.emit("status", stage="teacher", message=(
            f"waiting for another run's teacher pass with the same key ({key}, pid {holder.get('pid', '?')}); "
            "this run reuses its cache"))
        with teacher_cache_lock(layout.run_dir.parent, key, waiting, enabled=state.is_main_process):
            records[name] = teacher_pass(view, model, tokenizer, inputs[name][0], layout.teacher_dir(stage, name),
                                         layout.run_dir.parent, events, teacher_weights, stop_requested, state)
    events.set_scope(stage.name, None)
    del model
    gc.collect()
    return records


def evaluate_and_save_stage(project: Project, index: int, layout: RunLayout, inputs: dict, previous: Path | None,
                            events, baselines: dict[str, str] | None = None, teacher_memo: dict | None = None,
                            stop_requested=lambda: False) -> dict[str, dict]:
    """Evaluate a stage and write its metrics and samples (the stage's metrics file marks it finished)."""
    stage = project.stages[index]
    teacher_weights = previous if stage.teacher == "previous" else None
    journal = EvalJournal(layout.stage_dir(stage))  # a stop keeps the decoded batches; a resume continues them
    metrics, samples, seconds = evaluate_stage(project, index, inputs, layout.student_dir(stage), previous,
                                               teacher_weights, events, baselines, teacher_memo, stop_requested, journal)
    rows = samples if project.combined else [
        {key: value for key, value in row.items() if key not in ("stage_name", "operation")} for row in samples]
    atomic.write_text(layout.stage_samples(stage), "".join(json.dumps(row) + "\n" for row in rows))
    figures = {"operations": metrics, "eval_seconds": seconds} if project.combined else {**metrics["main"], "eval_seconds": seconds}
    atomic.write_text(layout.stage_metrics(stage), json.dumps(figures, indent=2))  # last: marks the stage finished
    journal.finish()
    return metrics


def read_stage_metrics(project: Project, layout: RunLayout, stage: Stage) -> dict[str, dict]:
    figures = json.loads(layout.stage_metrics(stage).read_text())
    return figures["operations"] if project.combined else {"main": figures}


def write_run_metrics(project: Project, layout: RunLayout, results: dict[str, dict]) -> dict:
    """The run's metrics.json: one operation's table as always, or every stage plus the overwrite matrix."""
    if not project.combined:
        metrics = json.loads(layout.metrics.read_text())  # the stage's metrics file is the run's
        write_student_cards(project, layout.student, layout.run_dir, metrics)
        return metrics
    last = layout.student_dir(project.stages[-1])
    publish_student(last, layout.student)
    metrics = {"combined": True,
               "stages": {stage: {"operations": operations} for stage, operations in results.items()},
               "matrix": overwrite_matrix(results)}
    atomic.write_text(layout.samples, "".join(layout.stage_samples(stage).read_text(encoding="utf-8")
                                              for stage in project.stages))
    atomic.write_text(layout.metrics, json.dumps(metrics, indent=2))
    write_student_cards(project, layout.student, layout.run_dir, metrics)
    return metrics


def reevaluate(run_dir: Path, listeners=()) -> dict:
    """`ctxdistill eval RUN_DIR`: score a run's saved students again on its held-out inputs.

    Takes safe corrections from the current project file (engine/runs/resume.py), e.g. a fixed metric.
    Under several processes the main one scores, once; the others wait and return its metrics.
    """
    state = process_state()
    metrics = None
    if state.is_main_process:
        with RunLock(run_dir):  # scoring rewrites the run's metrics: never under a live run
            metrics = _reevaluate_locked(run_dir, listeners)
    metrics = shared(state, metrics)
    if state.num_processes > 1:
        # Leaving with gloo's threads alive aborted a process at exit now and then (`terminate called ...`).
        state.wait_for_everyone()
        state.destroy_process_group()
    return metrics


def _reevaluate_locked(run_dir: Path, listeners) -> dict:
    project, _ = project_for_resume(run_dir)
    layout = RunLayout.of(project, run_dir)
    for stage in project.stages:
        if not is_saved_model(layout.student_dir(stage)):
            raise EngineError(f"{run_dir}: no saved student for stage {stage.name!r} (the run did not finish); "
                              "resume it with `ctxdistill run --resume`")
    events = EventWriter(run_dir / "events.jsonl")
    events.listeners.extend(listeners)
    try:
        inputs = load_all_inputs(project, events)
        preflight(project, inputs)
        baselines = {}
        if not project.combined:
            baselines = {path.name: str(path) for path in sorted((run_dir / "baselines").glob("*"))
                         if is_saved_model(path) and not path.name.endswith("-scratch")}
        results, previous, teacher_memo = {}, None, {}
        for index, stage in enumerate(project.stages):
            events.set_scope(stage.name, None)
            results[stage.name] = evaluate_and_save_stage(project, index, layout, inputs, previous, events, baselines,
                                                          teacher_memo)
            previous = layout.student_dir(stage)
        metrics = write_run_metrics(project, layout, results)
        events.emit("done", stage="done", status="completed", metrics=metrics)
        return metrics
    finally:
        events.close()
