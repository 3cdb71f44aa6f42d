"""After a stage: teacher, student before and student after, for every operation seen so far.

"Before" is the stage's starting weights (the base model for the first stage,
the previous stage's student after that), "after" the stage's student, and the
teacher is the stage's teacher (the base model, or the previous student for a
recursive stage) with each operation's teacher template. Operations of earlier
stages are scored again, so the overwrite matrix (every operation after every
stage) shows what a later stage overwrote (paper hypothesis 3).

Models are loaded one at a time, in the order teacher -> before -> after, and the
teacher's outputs are reused across stages when its weights did not change.
"""

from __future__ import annotations

import gc
import random
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

from engine.project.schema import Project
from engine.errors import StopRequested
from engine.evaluation.evaluate import Decoded, answer_kl, decode, mean, references_for, sample_entry, score
from engine.evaluation.ensemble_decode import decode_ensemble
from engine.evaluation.eval_journal import EvalJournal
from engine.evaluation.examples_baseline import read_selection
from engine.teacher.extractors import Extractor
from engine.models import load_model

def operations_so_far(project: Project, index: int) -> list[str]:
    """Every operation trained up to stage `index`, then the ones that stage only evaluates."""
    names = [name for stage in project.stages[: index + 1] for name in stage.operations]
    return list(dict.fromkeys(names + list(project.stages[index].evaluate)))


@contextmanager
def loaded(project: Project, path: Path | None):
    """The model at `path` (None: the project's base model) for the length of a block, then freed."""
    model, tokenizer = load_model(project.model, project.dir, path=str(path) if path else None)
    try:
        yield model, tokenizer
    finally:
        del model
        gc.collect()


def evaluate_stage(project: Project, index: int, inputs: dict, student_dir: Path, previous: Path | None,
                   teacher_weights: Path | None, events, baselines: dict[str, str] | None = None,
                   teacher_memo: dict | None = None, stop_requested=lambda: False, journal: EvalJournal | None = None):
    """({operation: metrics}, sample rows, seconds) for stage `index`.

    `teacher_memo` (one dict per run) keeps the teacher's outputs between stages: the
    base teacher scores an operation the same way after every stage. `stop_requested`
    is checked after every batch; with a `journal`, the batches decoded before a stop
    are kept and a resume decodes only the rest.
    """
    teacher_memo = {} if teacher_memo is None else teacher_memo

    def journaled(name: str) -> dict:
        """decode()'s journal arguments for the decode `name`."""
        return {"journal": journal, "journal_name": name} if journal is not None else {}

    def progress(which: str):
        started = time.time()

        def on_batch(done: int, total: int) -> None:
            elapsed = time.time() - started
            events.emit("progress", stage="eval", which=which, step=done, total_steps=total, unit="inputs",
                        elapsed_s=round(elapsed, 2), eta_s=round(elapsed / done * (total - done), 2))
            if stop_requested():
                raise StopRequested()
        return on_batch

    stage = project.stages[index]
    started = time.time()
    names = operations_so_far(project, index)
    views = {name: project.for_operation(name, stage) for name in names}
    held_out = {name: inputs[name][1] for name in names}
    extractors = {name: Extractor(views[name].extract, project.dir) for name in names}

    def announce(which: str, name: str, metrics: dict) -> None:
        events.set_scope(stage.name, name)
        events.emit("eval", stage="eval", which=which, metrics=metrics)

    teacher, shown, references, results = {}, {}, {}, {name: {} for name in names}
    if journal is not None and journal.kept_batches():
        events.emit("status", stage="eval", message=f"continuing the evaluation stopped earlier: "
                    f"{journal.kept_batches()} batches decoded before the stop are kept")
    events.emit("status", stage="eval", message=f"evaluating the teacher on {sum(map(len, held_out.values()))} held-out inputs")
    with loaded(project, teacher_weights) as (model, tokenizer):
        for name in names:
            events.set_scope(stage.name, name)
            key = (str(teacher_weights), name, stage.distill.seed)
            if key not in teacher_memo:
                # answer_kl needs the teacher's logits at its answer: the most direct test of distillation.
                teacher_memo[key] = decode(views[name], model, tokenizer, held_out[name], "teacher",
                                           extractors[name], keep_logits=True, on_batch=progress("teacher"),
                                           **journaled(f"teacher-{name}"))
            teacher[name] = shown[name] = teacher_memo[key]
            if views[name].teacher.ensemble > 1:
                # The teacher row of an ensemble is its greedy decode from the averaged distribution (B.5);
                # prompt 0 alone (`teacher`, above) stays the single prompt whose logits answer_kl compares.
                if key + ("ensemble",) not in teacher_memo:
                    teacher_memo[key + ("ensemble",)] = decode_ensemble(views[name], model, tokenizer, held_out[name],
                                                                        extractors[name], progress("teacher_ensemble"))
                shown[name] = teacher_memo[key + ("ensemble",)]
                results[name]["teacher_decoding"] = "ensemble-greedy"
            references[name] = references_for(views[name], held_out[name], shown[name])
            results[name]["teacher"] = _score(views[name], shown[name], references[name], held_out[name])
            announce("teacher", name, results[name]["teacher"])
            if views[name].teacher.ensemble > 1:
                results[name].update(single_teachers(views[name], model, tokenizer, held_out[name], references[name],
                                                     extractors[name], teacher[name], teacher_memo, key, progress,
                                                     lambda rendering, name=name: journaled(f"teacher{rendering}-{name}")))
                announce("teacher_single_mean", name, results[name]["teacher_single_mean"])

        events.set_scope(stage.name, None)
        events.emit("status", stage="eval", message="evaluating the student before distillation")
        before, kl_before, per_input_before = {}, {}, {}
        same_weights = previous == teacher_weights
        with (nullcontext((model, tokenizer)) if same_weights else loaded(project, previous)) as (start_model, _):
            for name in names:
                events.set_scope(stage.name, name)
                before[name] = decode(views[name], start_model, tokenizer, held_out[name], "student",
                                      on_batch=progress("student_before"), **journaled(f"before-{name}"))
                results[name]["student_before"] = _score(views[name], before[name], references[name], held_out[name])
                per_input_before[name] = []
                kl_before[name] = answer_kl(views[name], start_model, tokenizer, held_out[name], teacher[name],
                                            per_input=per_input_before[name])
                announce("student_before", name, results[name]["student_before"])

    events.set_scope(stage.name, None)
    events.emit("status", stage="eval", message="evaluating the student after distillation")
    after, kept, per_input_after = {}, {}, {}
    with loaded(project, student_dir) as (model, tokenizer):
        for name in names:
            events.set_scope(stage.name, name)
            view = views[name]
            after[name] = decode(view, model, tokenizer, held_out[name], "student", on_batch=progress("student_after"),
                                 **journaled(f"after-{name}"))
            results[name]["student_after"] = _score(view, after[name], references[name], held_out[name])
            per_input_after[name] = []
            results[name]["answer_kl"] = {"before": kl_before[name],
                                          "after": answer_kl(view, model, tokenizer, held_out[name], teacher[name],
                                                             per_input=per_input_after[name])}
            announce("student_after", name, results[name]["student_after"])
            if view.eval.teacher_template_for_student:
                # How much of the prompted skill (e.g. the scratch-pad) the student keeps (paper 3.3).
                kept[name] = decode(view, model, tokenizer, held_out[name], "teacher", extractors[name],
                                    on_batch=progress("student_after_teacher_template"),
                                    **journaled(f"after-teacher-template-{name}"))
                results[name]["student_after_teacher_template"] = _score(view, kept[name], references[name], held_out[name])
                announce("student_after_teacher_template", name, results[name]["student_after_teacher_template"])

    for method, folder in (baselines or {}).items():
        name = names[0]
        events.set_scope(stage.name, name)
        events.emit("status", stage="eval", message=f"evaluating the {method} baseline")
        with loaded(project, Path(folder)) as (model, tokenizer):
            outputs = decode(views[name], model, tokenizer, held_out[name], "student", **journaled(f"baseline-{method}-{name}"))
        results[name][f"baseline_{method}"] = _score(views[name], outputs, references[name], held_out[name])
        results[name]["baselines_budget"] = project.baselines.budget
        if read_selection(Path(folder)) is not None:  # the examples baseline's epoch and learning rate (B.5)
            results[name].setdefault("baselines_selection", {})[method] = read_selection(Path(folder))
        announce(f"baseline_{method}", name, results[name][f"baseline_{method}"])
    events.set_scope(stage.name, None)

    samples = []
    for name in names:
        results[name].update(token_savings(teacher[name], before[name], after[name]))
        results[name]["count"] = len(held_out[name])
        for position, example in enumerate(held_out[name]):
            reference = references[name][position]
            row = {"stage_name": stage.name, "operation": name, "index": position, "input": example,
                   "label": example.get("label"), "reference": reference,
                   "teacher": sample_entry(shown[name][position], reference),
                   "student_before": sample_entry(before[name][position], reference),
                   "student_after": sample_entry(after[name][position], reference),
                   "answer_kl": {"before": per_input_before[name][position], "after": per_input_after[name][position]}}
            if name in kept:
                row["student_after_teacher_template"] = sample_entry(kept[name][position], reference)
            samples.append(row)
    return results, samples, round(time.time() - started, 1)


def single_teachers(view: Project, model, tokenizer, held_out: list[dict], references: list[str], extractor,
                    first: list[Decoded], teacher_memo: dict, key: tuple, progress, journaled=lambda rendering: {}) -> dict:
    """Prompts of a teacher ensemble scored alone, and their mean (paper hypothesis 5: under
    simultaneous distillation no single teacher bounds the student). Prompt 0 is `first`; the
    teacher row is the ensemble's own greedy decode (engine/evaluation/ensemble_decode.py).

    Each prompt scored is a full decode of the held-out inputs, so a large ensemble scores a
    seeded sample of its prompts (`scored_renderings`); the mean is then an estimate.
    """
    renderings = scored_renderings(view.teacher.ensemble, view.distill.seed)
    singles = [_score(view, first, references, held_out)]
    for rendering in renderings[1:]:
        memo_key = key + (rendering,)
        if memo_key not in teacher_memo:
            teacher_memo[memo_key] = decode(view, model, tokenizer, held_out, "teacher", extractor,
                                            on_batch=progress(f"teacher_{rendering}"), rendering=rendering,
                                            **journaled(rendering))
        singles.append(_score(view, teacher_memo[memo_key], references, held_out))
    mean_scores = {metric: round(sum(single[metric] for single in singles) / len(singles), 4) for metric in singles[0]}
    return {"teacher_singles": singles, "teacher_single_mean": mean_scores, "teacher_singles_renderings": renderings}


# Prompts of an ensemble scored alone in evaluation (issue 24, item 4): 2,000 renderings each
# decoding every held-out input ran past 5 minutes on the tiny model.
SINGLE_TEACHERS_SCORED = 8


def scored_renderings(ensemble: int, seed: int) -> list[int]:
    """Prompt 0 (the teacher row), then a seeded sample of the others: all of them in a small ensemble."""
    others = list(range(1, ensemble))
    if len(others) >= SINGLE_TEACHERS_SCORED:
        others = sorted(random.Random(seed).sample(others, SINGLE_TEACHERS_SCORED - 1))
    return [0] + others


def _score(view: Project, decoded: list[Decoded], references: list[str], examples: list[dict]) -> dict:
    extra = [[str(item) for item in example.get("references") or []] for example in examples]
    return score(view, [d.answer for d in decoded], references, [example.get("label") for example in examples], extra)


def token_savings(teacher: list[Decoded], before: list[Decoded], after: list[Decoded]) -> dict:
    """Prompt tokens, and prompt + generated tokens, of the teacher and the student (paper: up to 11x fewer)."""
    teacher_prompt_tokens, student_prompt_tokens = mean(d.prompt_tokens for d in teacher), mean(d.prompt_tokens for d in before)
    teacher_total = mean(d.prompt_tokens + d.generated_tokens for d in teacher)
    student_total = mean(d.prompt_tokens + d.generated_tokens for d in after)
    return {"prompt_tokens": {"teacher": teacher_prompt_tokens, "student": student_prompt_tokens,
                              "ratio": round(teacher_prompt_tokens / max(student_prompt_tokens, 1e-9), 2)},
            "inference_tokens": {"teacher": teacher_total, "student": student_total,
                                 "ratio": round(teacher_total / max(student_total, 1e-9), 2)}}


def overwrite_matrix(results: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """{stage: {operation: the student's scores after that stage}} for every operation seen by then."""
    return {stage: {name: figures["student_after"] for name, figures in operations.items()}
            for stage, operations in results.items()}
