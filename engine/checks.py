"""Start-up checks: what can be known before the teacher pass is known in seconds (issue 11, item 6).

A mistake that shows only after the teacher pass or after training (a metric
module that is missing, `eval.reference = "label"` on inputs without labels)
costs the user the whole run. `preflight` finds these before any model is
loaded; `ctxdistill check PROJECT_DIR` runs it on its own.

What it checks, per operation: the project's functions import and take the
arguments the engine passes; a custom metric returns a number on a label; the
held-out inputs have the labels that `eval.reference` and `accuracy` need; the
templates render the first input; `model.device` exists on this machine; and
`model.name` resolves (a hub id is in the local cache) without loading weights.
"""

from __future__ import annotations

import random

from engine.project.schema import Project
from engine.errors import ConfigError, EngineError
from engine.evaluation.evaluate import load_metric, metric_value, references_for
from engine.project.templates import render_prompts, render_system, render_teacher
from engine.project.usercode import load_callable

# {operation name: (distillation inputs, held-out inputs)}, as engine.run.load_all_inputs returns them.
Inputs = dict[str, tuple[list[dict], list[dict]]]


def preflight(project: Project, inputs: Inputs | None = None) -> None:
    """Raise one ConfigError listing every problem found; `inputs` (when drawn) enables the label checks."""
    problems = preflight_problems(project, inputs)
    if problems:
        raise ConfigError(project.file, problems)


def preflight_problems(project: Project, inputs: Inputs | None = None) -> list[str]:
    from engine.models import local_source, precision_problems, resolve_device, resolve_model_path
    from engine.runs.trackers import tracker_problems

    problems = []
    try:
        resolve_device(project.model.device)
        problems += precision_problems(project)  # e.g. bfloat16 asked for on a CPU
    except EngineError as error:
        problems.append(str(error))
    try:  # the model is there (a hub id in the local cache), its weights not read
        local_source(project.model.name, resolve_model_path(project.model.name, project.dir))
    except EngineError as error:
        problems.append(str(error))
    problems += tracker_problems(project)  # `distill.report_to` names a tracker whose package is missing
    for operation in project.operations:
        where = f" (operation {operation.name})" if project.combined else ""
        drawn = (inputs or {}).get(operation.name)
        for problem in _operation_problems(project.for_operation(operation.name), drawn):
            first, newline, rest = problem.partition("\n")
            problems.append(first + where + newline + rest)
    return list(dict.fromkeys(problems))  # metrics are shared: report each once


def _operation_problems(view: Project, drawn: tuple[list[dict], list[dict]] | None) -> list[str]:
    problems = []
    if view.inputs.source == "python" and drawn is None:  # drawing the inputs calls it anyway
        problems += _call_problems(lambda: load_callable(view.dir, view.inputs.function, "inputs.function",
                                                         "function(rng, n, **inputs.options)"),
                                   random.Random(0), 1, **view.inputs.options)
    if view.extract.kind == "callable":
        problems += _call_problems(lambda: load_callable(view.dir, view.extract.function, "extract.function",
                                                         "function(text)"), "text")
    held_out = drawn[1] if drawn else []
    labelled = [example["label"] for example in held_out if example.get("label") is not None]
    for metric in view.eval.metrics:
        if ":" not in metric:
            continue
        unusable = _call_problems(lambda: load_metric(view, metric), "prediction", "reference")
        problems += unusable
        if labelled and not unusable:
            try:  # a perfect prediction, scored the way evaluation will score it
                metric_value(load_metric(view, metric), labelled[0].strip(), labelled[0].strip())
            except EngineError as error:
                problems.append(str(error))
    if drawn:
        if view.eval.reference == "label":
            try:
                references_for(view, held_out, [])
            except EngineError as error:
                problems.append(str(error))
        missing = len(held_out) - len(labelled)
        if "accuracy" in view.eval.metrics and missing:
            problems.append(f"`eval.metrics` has 'accuracy', which compares answers with labels, but {missing} of "
                            f"{len(held_out)} held-out inputs have no label; add labels or remove 'accuracy'")
        if drawn[0]:
            try:
                render_prompts(view, drawn[0][0])
                problems += _ensemble_problems(view, drawn[0][:ENSEMBLE_PROBES])
            except EngineError as error:
                problems.append(f"{error} (rendering the first input, {drawn[0][0].get('input')!r})")
    return problems


# Inputs whose ensemble prompts are rendered at start-up: a template that varies its prompt
# (`sample`, `shuffle`, anything) shows it on one of them; rendering is cheap, a few ms per prompt.
ENSEMBLE_PROBES = 4


def _ensemble_problems(view: Project, examples: list[dict]) -> list[str]:
    """An ensemble whose renderings are all the same on every probe: one teacher K times (issue 24, item 3)."""
    size = view.teacher.ensemble
    if size <= 1:
        return []
    for example in examples:
        renderings = {(render_system(view, "teacher", example, index), render_teacher(view, example, index))
                      for index in range(size)}
        if len(renderings) > 1:
            return []
    return [f"`teacher.ensemble` = {size}, but the teacher template renders the same prompt {size} times for each of "
            f"the first {len(examples)} input(s): nothing in it is drawn at random; vary it with e.g. "
            "`{% for ex in examples | sample(4) %}` or `examples | shuffle`, or set `teacher.ensemble = 1`"]


def _call_problems(load, *args, **kwargs) -> list[str]:
    """A function that does not load, or whose signature does not take `args` (it is not called)."""
    try:
        function = load()
    except EngineError as error:
        return [str(error)]
    problem = function.signature_problem(*args, **kwargs)
    return [f"{function.name} cannot be called as {function.call_as}: {problem}"] if problem else []


def project_warnings(project: Project) -> list[str]:
    """Things that are allowed but deserve a word before a run (shown by `check` and the CLI)."""
    from engine.models import remote_code_warning

    warning = remote_code_warning(project.model)
    return ([warning] if warning else []) + ensemble_cost_warnings(project) + on_policy_ensemble_warnings(project)


# An ensemble above this many renderings gets a warning with its cost; `teacher.ensemble`
# refuses more than schema.MAX_ENSEMBLE.
ENSEMBLE_WARNING = 16


def ensemble_cost_warnings(project: Project) -> list[str]:
    """The teacher forward passes a large ensemble costs (issue 24, item 4): one per rendering and input."""
    from engine.evaluation.stage_eval import SINGLE_TEACHERS_SCORED

    warnings = []
    for operation in project.operations:
        size, count = operation.teacher.ensemble, operation.inputs.count
        if size <= ENSEMBLE_WARNING:
            continue
        where = f" (operation {operation.name})" if project.combined else ""
        warnings.append(f"warning: `teacher.ensemble` = {size}{where}: the teacher pass scores every answer under "
                        f"{size} prompts, {size} x {count:,} inputs = {size * count:,} teacher forward passes, about "
                        f"{size}x the time of a one-prompt teacher pass; evaluation scores "
                        f"{min(size, SINGLE_TEACHERS_SCORED)} of the prompts alone for the mean single-teacher row")
    return warnings


# On-policy scores the student's answers under every rendering at every step.
ON_POLICY_ENSEMBLE_WARNING = 8


def on_policy_ensemble_warnings(project: Project) -> list[str]:
    """On-policy with a large ensemble: K teacher forward passes per answer, every training step."""
    warnings = []
    for stage in project.stages:
        if stage.distill.policy == "off":
            continue
        for name in stage.operations:
            size = project.operation(name).teacher.ensemble
            if size > ON_POLICY_ENSEMBLE_WARNING:
                warnings.append(f"warning: `distill.policy` = \"{stage.distill.policy}\" with `teacher.ensemble` = {size}"
                                f" (operation {name}): every training step scores the student's answers under {size} "
                                f"teacher prompts, about {size}x the teacher cost of a one-prompt on-policy step")
    return warnings


def check_project(project: Project) -> str:
    """`ctxdistill check`: draw the inputs and run the start-up checks, without any model; a summary line per operation."""
    from engine.project.sources import load_inputs

    inputs: Inputs = {}
    lines = []
    for operation in project.operations:
        if operation.inputs.source == "fewshot":
            lines.append(f"operation {operation.name}: inputs are sampled from the model at run time (not checked here)")
            continue
        inputs[operation.name] = load_inputs(project.for_operation(operation.name))
        distill, held_out = inputs[operation.name]
        lines.append(f"operation {operation.name}: {len(distill)} distillation inputs, {len(held_out)} held out")
    preflight(project, inputs)
    return "\n".join(project_warnings(project) + lines + [f"{project.file}: ok"])
