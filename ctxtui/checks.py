"""Checks the app runs before saving or launching (no Textual here).

The engine validates a project's keys, but a template is only compiled when a
run renders it; a broken `{% if %}` must be caught before a run is launched
(issue 12), so every template of every operation is parsed here.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import jinja2

from ctxtui.imports import HEAVY_IMPORTS


def project_templates(project) -> list[tuple[str, str]]:
    """(where, template text) of every teacher and student template the project runs."""
    templates = []
    operations = getattr(project, "operations", None) or ()
    if len(operations) > 1 or getattr(project, "combined", False):
        for operation in operations:
            for role in ("teacher", "student"):
                templates.append((f"operations.{operation.name}.{role}", getattr(operation, role).template))
    else:
        templates = [(role, getattr(project, role).template) for role in ("teacher", "student")]
    return templates


def template_syntax_problems(project) -> list[str]:
    """`where` line N: message, for each template that does not parse."""
    environment = jinja2.Environment()
    problems = []
    for where, text in project_templates(project):
        try:
            environment.parse(text)  # syntax only: filters and globals are the engine's business
        except jinja2.TemplateSyntaxError as error:
            problems.append(f"`{where}.template` line {error.lineno}: {error.message}")
    return problems


def unstaged_operation_warnings(project) -> list[str]:
    """An operation no stage trains or scores is never used (issue 20 item 5): a word before the run, not a refusal."""
    if not getattr(project, "combined", False):
        return []
    used = {name for stage in project.stages for name in (*stage.operations, *stage.evaluate)}
    return [f"warning: operation {operation.name} is in no stage, so it is never trained: list it in a stage's "
            f"`operations` (or its `evaluate`, to only score it)" for operation in project.operations
            if operation.name not in used]


def engine_check(project) -> tuple[list[str], list[str]]:
    """(problems, warnings): what `ctxdistill check` finds, by the same code (issue 20 item 5).

    It draws every operation's inputs (running the project's own functions), so a
    missing option of an inherited input function is caught here, not at the run's
    setup. Slow the first time (imports): call it from a thread.
    """
    with HEAVY_IMPORTS:  # it imports the model code and runs the project's tasks.py: never beside the preview's load
        return checked_under_lock(project)


def checked_under_lock(project) -> tuple[list[str], list[str]]:
    from engine.checks import check_project, project_warnings
    from engine.errors import ConfigError, EngineError

    warnings = project_warnings(project) + unstaged_operation_warnings(project)
    try:
        check_project(project)
    except ConfigError as error:
        return with_model_suggestion(list(error.problems), project), warnings
    except EngineError as error:
        return with_model_suggestion([str(error)], project), warnings
    except Exception as error:  # the project's own code failing in a way the engine did not wrap
        return [f"{type(error).__name__}: {error}"], warnings
    return [], warnings


def known_model_names(project_dir: Path | None) -> list[str]:
    """Names `model.name` could mean here: the embedded models, the hub ids in the local Hugging Face cache
    (its `models--org--name` folders; no weights read) and model folders in the project."""
    import engine.toy
    from huggingface_hub import constants

    names = list(getattr(engine.toy, "_TOY_MODELS", {}))  # toy-base, toy-icl, toy-learner
    try:
        names += [entry.name.removeprefix("models--").replace("--", "/")
                  for entry in Path(constants.HF_HUB_CACHE).iterdir() if entry.name.startswith("models--")]
    except OSError:
        pass
    if project_dir is not None and Path(project_dir).is_dir():
        names += [entry.name for entry in Path(project_dir).iterdir() if (entry / "config.json").is_file()]
    return names


def with_model_suggestion(problems: list[str], project) -> list[str]:
    """A `model.name` problem (not cached, no such folder) gets "did you mean" from the names known here (issue 20
    item 19): a typo is caught before launch with the name it was probably meant to be."""
    name = getattr(getattr(project, "model", None), "name", None)
    if not isinstance(name, str):
        return problems
    mark = f"`model.name` = {name!r}"
    if not any(problem.startswith(mark) and "did you mean" not in problem for problem in problems):
        return problems
    known = known_model_names(getattr(project, "dir", None))
    by_lower = {candidate.lower(): candidate for candidate in known if candidate != name}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    if not close:
        return problems
    hint = f" (did you mean {by_lower[close[0]]!r}?)"
    return [problem.replace(mark, mark + hint, 1) if problem.startswith(mark) else problem for problem in problems]
