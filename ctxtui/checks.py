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
