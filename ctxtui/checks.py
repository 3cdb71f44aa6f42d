"""Checks the app runs before saving or launching (no Textual here).

The engine validates a project's keys, but a template is only compiled when a
run renders it; a broken `{% if %}` must be caught before a run is launched
(issue 12), so every template of every operation is parsed here.
"""

from __future__ import annotations

import jinja2


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
    from engine.checks import check_project, project_warnings
    from engine.errors import ConfigError, EngineError

    warnings = project_warnings(project) + unstaged_operation_warnings(project)
    try:
        check_project(project)
    except ConfigError as error:
        return list(error.problems), warnings
    except EngineError as error:
        return [str(error)], warnings
    except Exception as error:  # the project's own code failing in a way the engine did not wrap
        return [f"{type(error).__name__}: {error}"], warnings
    return [], warnings
