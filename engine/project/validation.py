"""Cross-field rules of a loaded project (`validate()`) and the schema's ranges, each problem naming its key."""

from __future__ import annotations

import difflib
import re
from dataclasses import fields

from engine.project.schema import (BASELINES, DEVICE_PATTERN, NAME_PATTERN, EvalConfig, Operation, Project, Stage,
                                   TeacherConfig)
from engine.runs.trackers import tracker_name_problems


def validate(project: Project) -> list[str]:
    """Cross-field rules, each naming the keys involved.

    A project without [[operations]] or [[stages]] is validated under the
    top-level names (`inputs.function`), as it always was.
    """
    problems = []
    for operation in project.operations:
        problems += _validate_operation(project, operation)
    problems += _validate_names(project)
    for index, stage in enumerate(project.stages):
        problems += _validate_stage(project, index, stage)
    for part in ("model", "generate"):
        problems += _range_problems(getattr(project, part), part + ".")
    for operation in project.operations:
        owner = f"operations.{operation.name}." if operation.eval != project.eval else ""
        problems += _range_problems(operation.eval, owner + "eval.") + _metric_problems(operation.eval, owner)
    device = project.model.device
    if not re.fullmatch(DEVICE_PATTERN, device):
        close = difflib.get_close_matches(device, ["auto", "cpu", "cuda", "cuda:0", "mps"], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(f"`model.device` = {device!r}: expected auto, cpu, cuda, cuda:N (e.g. cuda:1) or mps{hint}")
    for operation in project.operations:
        for table in ("teacher", "student"):
            if getattr(operation, table).system and not project.model.chat_template:
                owner = f"operations.{operation.name}." if getattr(operation, table) != getattr(project, table) else ""
                problems.append(f"`{owner}{table}.system` is set, but `model.chat_template` is false: a system message "
                                f"needs the chat template; set `model.chat_template = true`, or move the text into "
                                f"`{owner}{table}.template`")
    if "" in project.generate.stop:
        problems.append("`generate.stop` has an empty string, which would end every teacher output at once; remove it")
    for method in project.baselines.methods:
        if method not in BASELINES:
            problems.append(f"`baselines.methods` has {method!r}: expected one of {', '.join(BASELINES)}")
    if "examples" in project.baselines.methods:
        shown = project.operations[0].teacher.vars.get("examples")
        if not isinstance(shown, list) or not shown or not all(
                isinstance(row, dict) and "input" in row and ("label" in row or "output" in row) for row in shown):
            problems.append("`baselines.methods` has 'examples', which trains on the teacher's worked examples: set "
                            "`teacher.vars.examples` to a list like [{input = \"CAB\", label = \"cs at br\"}, ...]")
    if project.baselines.methods and len(project.stages) > 1:
        problems.append("`baselines.methods`: the supervised baselines run on single-stage projects only "
                        "(they train on the stage's first operation)")
    return list(dict.fromkeys(problems))  # operations inheriting the same faulty table report it once


def _metric_problems(config: EvalConfig, owner: str) -> list[str]:
    from engine.project.usercode import reference_problem

    problems = []
    for metric in config.metrics:
        if ":" in metric:
            problem = reference_problem(metric, f"{owner}eval.metrics")
            if problem:
                problems.append(problem)
        elif metric not in METRICS:
            close = difflib.get_close_matches(metric, METRICS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"`{owner}eval.metrics` has {metric!r}: expected one of {', '.join(METRICS)} or `module:function`{hint}")
    return problems


def _range_problems(config, prefix: str) -> list[str]:
    """The numeric fields of one table that lie outside their schema range (`option(minimum=...)`)."""
    problems = []
    for spec in fields(config):
        value = getattr(config, spec.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        minimum, above, maximum = (spec.metadata.get(bound) for bound in ("minimum", "above", "maximum"))
        if ((minimum is None or value >= minimum) and (above is None or value > above)
                and (maximum is None or value <= maximum)):
            continue
        kind = "an integer" if isinstance(value, int) else "a number"
        why = ""
        if spec.name == "count" and maximum is not None and value > maximum:
            why = ("; every input is drawn at once and passed through the teacher, "
                   "so split a bigger job into several runs")
        if spec.name == "ensemble" and maximum is not None and value > maximum:
            why = ("; every rendering is a teacher forward pass per input, and the paper's ensembles are a "
                   "handful of prompts")
        problems.append(f"`{prefix}{spec.name}` = {value!r}: expected {expected_range(kind, spec.metadata)}{why}")
    return problems


def expected_range(kind: str, metadata) -> str:
    """"an integer of at least 1 and at most 10" from a field's schema range ("" when it has none).

    Every range message is written here, so each states the field's real bounds (issue 24, item 7).
    """
    minimum, above, maximum = (metadata.get(bound) for bound in ("minimum", "above", "maximum"))
    bounds = ([f"at least {minimum:,}"] if minimum is not None else []) + \
             ([f"greater than {above}"] if above is not None else []) + \
             ([f"at most {maximum:,}"] if maximum is not None else [])
    if not bounds:
        return ""
    of = "of " if minimum is not None else ""
    return f"{kind} {of}{' and '.join(bounds)}"


def safe_folder_name(name: str) -> str:
    """`name` made usable as a folder name: unsafe runs become `-`, at most 100 characters."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:100] or "project"


def _project_name_problems(name: str) -> list[str]:
    """The project name becomes `runs/<stamp>-<name>`: a separator or `..` would put the run elsewhere."""
    if re.fullmatch(NAME_PATTERN, name) and len(name) <= 100:
        return []
    shown = name if len(name) <= 60 else name[:57] + "..."
    return [f"`name` = {shown!r}: it names the run folder under runs/, so use at most 100 letters, digits, `_`, `.` "
            f"or `-`, starting with a letter or digit (e.g. {safe_folder_name(name)!r})"]


def _validate_operation(project: Project, operation: Operation) -> list[str]:
    """Each problem names the key where the user wrote it: the operation's own table, or the top level's it inherits."""
    from engine.project.usercode import reference_problem

    def owner(part: str) -> str:
        return f"operations.{operation.name}." if getattr(operation, part) != getattr(project, part) else ""

    problems = []
    inputs, extract, teacher = operation.inputs, operation.extract, operation.teacher
    if project.combined and operation.weight <= 0:
        problems.append(f"`operations.{operation.name}.weight` = {operation.weight}: expected a positive number")
    for part in ("teacher", "student"):
        if not getattr(operation, part).template:
            problems.append(f"`{owner(part)}{part}.template` is missing: the {part} prompt needs a template, "
                            f"e.g. template = \"{{{{ input }}}}\"")
    prefix = owner("inputs")
    needs = {"python": "function", "file": "path", "datasets": "dataset", "fewshot": "fewshot_prompt"}
    if not getattr(inputs, needs[inputs.source]):
        problems.append(f"`{prefix}inputs.source` = {inputs.source!r} needs `{prefix}inputs.{needs[inputs.source]}`")
    for key, reference in (("function", inputs.function if inputs.source == "python" else ""),
                           ("label_function", inputs.label_function)):
        problem = reference and reference_problem(reference, f"{prefix}inputs.{key}")
        if problem:
            problems.append(problem)
    problems += _source_key_problems(operation, prefix, owner("eval"))
    problems += _range_problems(inputs, prefix + "inputs.")
    problems += _range_problems(teacher, owner("teacher") + "teacher.")
    prefix = owner("extract")
    if extract.kind == "regex" and not extract.pattern:
        problems.append(f"`{prefix}extract.kind` = 'regex' needs `{prefix}extract.pattern`")
    if extract.kind == "regex" and extract.pattern:
        import re
        try:
            compiled = re.compile(extract.pattern)
            if extract.group > compiled.groups:
                problems.append(f"`{prefix}extract.group` = {extract.group}: the pattern has only {compiled.groups} group(s)")
        except re.error as error:
            problems.append(f"`{prefix}extract.pattern` = {extract.pattern!r}: not a valid regular expression ({error})")
    if extract.kind == "after_marker" and not extract.marker:
        problems.append(f"`{prefix}extract.kind` = 'after_marker' needs `{prefix}extract.marker`")
    if extract.kind == "callable" and ":" not in extract.function:
        problems.append(f"`{prefix}extract.kind` = 'callable' needs `{prefix}extract.function` = \"module:function\"")
    elif extract.kind == "callable":
        problem = reference_problem(extract.function, f"{prefix}extract.function")
        if problem:
            problems.append(problem)
    problems += _validate_ensemble(teacher, owner("teacher"))
    return problems


def _source_key_problems(operation: Operation, prefix: str, eval_prefix: str) -> list[str]:
    """`inputs.columns`, `inputs.filter` and `eval.split`: keys of the file/datasets sources only (issue 23)."""
    from engine.project.usercode import reference_problem

    inputs, problems = operation.inputs, []
    tabular = inputs.source in ("file", "datasets")
    for key, value in (("columns", inputs.columns), ("filter", inputs.filter)):
        if value and not tabular:
            problems.append(f"`{prefix}inputs.{key}` is set, but `{prefix}inputs.source` = {inputs.source!r}: "
                            "it applies to the file and datasets sources only")
    for variable, column in inputs.columns.items():
        if not isinstance(column, str) or not column:
            problems.append(f"`{prefix}inputs.columns.{variable}` = {column!r}: expected a column name (a string), "
                            f"e.g. columns = {{ input = \"question\" }}")
    problem = inputs.filter and reference_problem(inputs.filter, f"{prefix}inputs.filter")
    if problem:
        problems.append(problem)
    split = operation.eval.split
    if split and inputs.source != "datasets":
        problems.append(f"`{eval_prefix}eval.split` = {split!r} needs `{prefix}inputs.source` = 'datasets' "
                        "(a split of `inputs.dataset`); leave it empty for a seeded share of the inputs")
    elif split and split == inputs.split:
        problems.append(f"`{eval_prefix}eval.split` = {split!r} is `{prefix}inputs.split` too: name another split "
                        "(e.g. \"test\"), or leave it empty for a seeded share of the inputs")
    return problems


def _validate_ensemble(teacher: TeacherConfig, prefix: str) -> list[str]:
    """`| sample(n)` draws that the shared examples cannot give an ensemble.

    Whether the prompts differ at all is decided by rendering them (engine/checks.py), not
    here: `shuffle`, a loop or a macro can vary a prompt as well as `sample` (issue 24, item 3).
    """
    import math
    import re

    if teacher.ensemble <= 1:
        return []  # 0 is out of the schema's range, reported with the others
    draws = re.findall(r"\b(\w+)\s*\|\s*sample\(\s*(\d+)\s*\)", teacher.template)
    problems = []
    for variable, size in draws:
        pool = teacher.vars.get(variable)
        if not isinstance(pool, list):
            continue  # drawn from the input's own keys: checked when the prompts are rendered
        if int(size) > len(pool):
            problems.append(f"`{prefix}teacher.template` draws sample({size}) from `{prefix}teacher.vars.{variable}`, "
                            f"which holds only {len(pool)} item(s)")
        elif math.comb(len(pool), int(size)) < teacher.ensemble:
            problems.append(f"`{prefix}teacher.ensemble` = {teacher.ensemble} is larger than the examples allow: "
                            f"{len(pool)} examples give only {math.comb(len(pool), int(size))} distinct subsets of {size}")
    return problems


def _validate_names(project: Project) -> list[str]:
    import re

    problems = []
    for array, items in (("operations", project.operations), ("stages", project.stages)):
        seen = set()
        for index, item in enumerate(items):
            if not item.name:
                problems.append(f"`{array}[{index}].name` is missing: every item of [[{array}]] needs a unique name")
            elif not re.fullmatch(NAME_PATTERN, item.name) or len(item.name) > 64:
                problems.append(f"`{array}[{index}].name` = {item.name!r}: use at most 64 letters, digits, `_`, `.` or `-` "
                                "(it names a folder of the run)")
            elif item.name in seen:
                problems.append(f"`{array}[{index}].name` = {item.name!r}: two {array} have this name; names must be unique")
            seen.add(item.name)
    return problems


def _validate_stage(project: Project, index: int, stage: Stage) -> list[str]:
    problems = []
    prefix = f"stages.{stage.name}."
    known = [operation.name for operation in project.operations]
    for key, names in (("operations", stage.operations), ("evaluate", stage.evaluate)):
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; operations: {', '.join(known)}"
                problems.append(f"`{prefix}{key}` names {name!r}, which is not an operation{hint}")
    if len(set(stage.operations)) != len(stage.operations):
        problems.append(f"`{prefix}operations` lists an operation twice")
    if stage.teacher == "previous" and index == 0:
        problems.append(f"`{prefix}teacher` = 'previous' on the first stage: there is no previous student yet "
                        "(recursive distillation starts at the second stage)")
    distill = stage.distill
    prefix = prefix if distill != project.distill else ""  # inherited: the fault is in the top-level [distill]
    if distill.epochs and distill.max_steps:
        problems.append(f"set `{prefix}distill.epochs` or `{prefix}distill.max_steps`, not both")
    if not distill.epochs and not distill.max_steps:
        problems.append(f"set `{prefix}distill.epochs` or `{prefix}distill.max_steps` (how long to train)")
    problems += _range_problems(distill, prefix + "distill.")
    problems += _range_problems(distill.lora, prefix + "distill.lora.")
    if distill.lora.r and not distill.lora.target_modules:
        problems.append(f"`{prefix}distill.lora.target_modules` is empty: name the modules that get an adapter, "
                        "or \"all-linear\"")
    if distill.report_to != project.distill.report_to:
        problems.append(f"`{prefix}distill.report_to`: trackers follow the whole run; set `distill.report_to` "
                        "at the top level only")
    else:
        problems += tracker_name_problems(distill.report_to, "distill.report_to")
    if distill.labels == "sampled" and distill.num_samples == 0:
        problems.append(f"`{prefix}distill.num_samples` must be at least 1 for sampled labels")
    if distill.labels == "topk" and distill.top_k == 0:
        problems.append(f"`{prefix}distill.top_k` must be at least 1 for topk labels")
    if distill.policy == "on" and distill.labels == "hard":
        problems.append(f"`{prefix}distill.policy` = \"on\" with `{prefix}distill.labels` = \"hard\": on-policy matches "
                        "the teacher's whole distribution on the student's tokens, and hard labels say the run wants "
                        "one sampled token instead; set labels = \"sampled\" (or \"topk\"), or policy = \"off\"")
    return problems


METRICS = ("exact_match", "exact_match_normalized", "rouge_l", "accuracy", "answer_kl")
