"""One context distillation, end to end: inputs -> teacher -> train -> evaluate.

Everything lands in one run folder (design.md, "Run directory and events"),
which is the whole truth about the run.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import torch

from engine.config import Project, load_project, project_from_toml_text, project_to_toml
from engine.data import build_examples
from engine.errors import EngineError, StopRequested
from engine.evaluate import answer_kl, decode, mean, references_for, sample_entry, score
from engine.events import EventWriter, read_events
from engine.extractors import Extractor
from engine.models import load_model, load_tokenizer
from engine.sources import load_inputs
from engine.teacher import KEY_FILE, load_cache, teacher_pass

RUN_FILES = ("project.toml", "events.jsonl", "teacher", "checkpoints", "student", "metrics.json", "samples.jsonl")


def new_run_dir(project: Project, runs_dir: Path | None = None) -> Path:
    # Milliseconds: two runs started in the same second never collide.
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:-3] + "Z"
    return (runs_dir or project.dir / "runs") / f"{stamp}-{project.name}"


def project_of_run(run_dir: Path) -> Project:
    """The project as launched (run_dir/project.toml), with its folder from the run's first event."""
    events = read_events(run_dir / "events.jsonl")
    project_dir = next((event["project_dir"] for event in events if "project_dir" in event), None)
    if project_dir is None:
        raise EngineError(f"{run_dir}: not a run folder (its events.jsonl does not name a project)")
    return project_from_toml_text(project_dir, (run_dir / "project.toml").read_text(encoding="utf-8"))


def run(project: Project, run_dir: Path, resume: bool = False, listeners=()) -> dict | None:
    """Run (or resume) a distillation; returns metrics, or None when stopped."""
    from accelerate import PartialState

    state = PartialState()
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    if not resume and state.is_main_process:
        (run_dir / "project.toml").write_text(project_to_toml(project), encoding="utf-8")
    events = EventWriter(run_dir / "events.jsonl", enabled=state.is_main_process)
    events.listeners.extend(listeners)
    events.emit("status", stage="setup", message="resuming run" if resume else "starting run",
                pid=os.getpid(), command=" ".join(sys.argv), project_dir=str(project.dir),
                run_dir=str(run_dir), processes=state.num_processes)
    try:
        distill_inputs, eval_inputs, records = _teacher_stage(project, run_dir, events, state)
        extractor = Extractor(project.extract, project.dir)
        tokenizer = load_tokenizer(project.model, project.dir)
        examples, missed = build_examples(project, tokenizer, records, extractor, project.distill.max_seq_len)
        events.emit("status", stage="teacher", message=f"{len(examples)} answers extracted, {len(missed)} outputs without one",
                    extracted=len(examples), missed=len(missed))

        from engine.train import train

        student_dir = run_dir / "student"
        if resume and (student_dir / "config.json").exists():
            events.emit("status", stage="train", message="the student was already trained before the stop; not training it again")
        else:
            student_dir = train(project, run_dir, examples, events, resume=resume)
        baselines = {}
        if project.baselines.methods:
            from engine.baselines import train_baselines

            baselines = train_baselines(project, run_dir, tokenizer, records, extractor, events)
        metrics = None
        if state.is_main_process:
            metrics = evaluate_run(project, run_dir, eval_inputs, student_dir, events, baselines)
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
        events.emit("done", stage="done", status="failed", message=f"{type(error).__name__}: {error}")
        raise
    finally:
        (run_dir / "STOP").unlink(missing_ok=True)
        events.close()


def _teacher_stage(project, run_dir, events, state):
    """Inputs and the teacher pass on the main process; the others read its cache."""
    model = tokenizer = None
    if project.inputs.source == "fewshot" or state.is_main_process:
        model, tokenizer = load_model(project.model, project.dir)
    distill_inputs, eval_inputs = load_inputs(project, model, tokenizer)
    events.emit("status", stage="setup", message=f"{len(distill_inputs)} distillation inputs, {len(eval_inputs)} held out")
    records = None
    if state.is_main_process:
        records = teacher_pass(project, model, tokenizer, distill_inputs, run_dir, events)
    del model
    gc.collect()
    state.wait_for_everyone()
    if records is None:
        if not (run_dir / "teacher" / KEY_FILE).exists():
            raise EngineError("the main process did not finish the teacher pass")
        records = load_cache(run_dir / "teacher")
    return distill_inputs, eval_inputs, records


def evaluate_run(project: Project, run_dir: Path, eval_inputs: list[dict], student_dir: Path, events,
                 baselines: dict[str, str] | None = None) -> dict:
    """Teacher, student before and student after on the held-out inputs -> metrics.json, samples.jsonl."""
    extractor = Extractor(project.extract, project.dir)
    labels = [example.get("label") for example in eval_inputs]
    started = time.time()

    events.emit("status", stage="eval", message=f"evaluating the teacher on {len(eval_inputs)} held-out inputs")
    base_model, tokenizer = load_model(project.model, project.dir)
    teacher = decode(project, base_model, tokenizer, eval_inputs, "teacher", extractor, keep_logits=True)  # for answer_kl, the most direct test of distillation
    references = references_for(project, eval_inputs, teacher)
    results = {"teacher": score(project, [d.answer for d in teacher], references, labels)}
    events.emit("eval", which="teacher", metrics=results["teacher"])

    events.emit("status", stage="eval", message="evaluating the student before distillation")
    before = decode(project, base_model, tokenizer, eval_inputs, "student")
    results["student_before"] = score(project, [d.answer for d in before], references, labels)
    kl_before = answer_kl(project, base_model, tokenizer, eval_inputs, teacher)
    events.emit("eval", which="student_before", metrics=results["student_before"])
    del base_model
    gc.collect()

    events.emit("status", stage="eval", message="evaluating the student after distillation")
    student_model, _ = load_model(project.model, project.dir, path=str(student_dir))
    after = decode(project, student_model, tokenizer, eval_inputs, "student")
    results["student_after"] = score(project, [d.answer for d in after], references, labels)
    kl_after = answer_kl(project, student_model, tokenizer, eval_inputs, teacher)
    events.emit("eval", which="student_after", metrics=results["student_after"])

    after_with_teacher_prompt = None
    if project.eval.teacher_template_for_student:
        # How much of the prompted skill (e.g. the scratch-pad) the student keeps (paper 3.3).
        after_with_teacher_prompt = decode(project, student_model, tokenizer, eval_inputs, "teacher", extractor)
        results["student_after_teacher_template"] = score(
            project, [d.answer for d in after_with_teacher_prompt], references, labels)
        events.emit("eval", which="student_after_teacher_template", metrics=results["student_after_teacher_template"])
    del student_model
    gc.collect()

    for method, folder in (baselines or {}).items():
        events.emit("status", stage="eval", message=f"evaluating the {method} baseline")
        baseline_model, _ = load_model(project.model, project.dir, path=folder)
        outputs = decode(project, baseline_model, tokenizer, eval_inputs, "student")
        results[f"baseline_{method}"] = score(project, [d.answer for d in outputs], references, labels)
        events.emit("eval", which=f"baseline_{method}", metrics=results[f"baseline_{method}"])
        del baseline_model

    teacher_prompt_tokens, student_prompt_tokens = mean(d.prompt_tokens for d in teacher), mean(d.prompt_tokens for d in before)
    teacher_total = mean(d.prompt_tokens + d.generated_tokens for d in teacher)
    student_total = mean(d.prompt_tokens + d.generated_tokens for d in after)
    results["prompt_tokens"] = {"teacher": teacher_prompt_tokens, "student": student_prompt_tokens,
                                "ratio": round(teacher_prompt_tokens / max(student_prompt_tokens, 1e-9), 2)}
    results["inference_tokens"] = {"teacher": teacher_total, "student": student_total,
                                   "ratio": round(teacher_total / max(student_total, 1e-9), 2)}
    results["answer_kl"] = {"before": kl_before, "after": kl_after}
    results["count"] = len(eval_inputs)
    results["eval_seconds"] = round(time.time() - started, 1)

    (run_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    with open(run_dir / "samples.jsonl", "w", encoding="utf-8") as file:
        for index, example in enumerate(eval_inputs):
            entry = {"index": index, "input": example, "label": example.get("label"), "reference": references[index],
                     "teacher": sample_entry(teacher[index], references[index]),
                     "student_before": sample_entry(before[index], references[index]),
                     "student_after": sample_entry(after[index], references[index])}
            if after_with_teacher_prompt is not None:
                entry["student_after_teacher_template"] = sample_entry(after_with_teacher_prompt[index], references[index])
            file.write(json.dumps(entry) + "\n")
    return results


def reevaluate(run_dir: Path, listeners=()) -> dict:
    """`ctxdistill eval RUN_DIR`: score a saved student again on the run's held-out inputs."""
    project = project_of_run(run_dir)
    student_dir = run_dir / "student"
    if not (student_dir / "config.json").exists():
        raise EngineError(f"{run_dir}: no saved student (the run did not finish); resume it with `ctxdistill run --resume`")
    events = EventWriter(run_dir / "events.jsonl")
    events.listeners.extend(listeners)
    try:
        model = tokenizer = None
        if project.inputs.source == "fewshot":  # the inputs are sampled from the model, as in the run
            model, tokenizer = load_model(project.model, project.dir)
        _, eval_inputs = load_inputs(project, model, tokenizer)
        del model
        baselines = {path.name: str(path) for path in sorted((run_dir / "baselines").glob("*"))
                     if (path / "config.json").exists() and not path.name.endswith("-scratch")}
        metrics = evaluate_run(project, run_dir, eval_inputs, student_dir, events, baselines)
        events.emit("done", stage="done", status="completed", metrics=metrics)
        return metrics
    finally:
        events.close()
