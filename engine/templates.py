"""Teacher and student prompts: Jinja2 in a sandbox, strict about undefined names.

A template error names the template (teacher/student) and the line, so the TUI
can show it inline while the user types.
"""

from __future__ import annotations

import functools
import traceback

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from engine.errors import TemplateError

_ENVIRONMENT = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,  # "Output: " must keep its trailing space and newlines exactly
    autoescape=False,
)


@functools.lru_cache(maxsize=256)
def _compile(source: str, name: str) -> jinja2.Template:
    try:
        return _ENVIRONMENT.from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(name, error.message or str(error), error.lineno) from None


def render(source: str, name: str, variables: dict) -> str:
    """Render one template; every failure becomes a `TemplateError` naming `name`."""
    template = _compile(source, name)
    try:
        return template.render(**variables)
    except jinja2.UndefinedError as error:
        available = ", ".join(sorted(variables)) or "none"
        raise TemplateError(name, f"undefined variable: {error.message} (variables: {available})",
                            _template_line(error)) from None
    except jinja2.TemplateError as error:
        raise TemplateError(name, str(error), _template_line(error)) from None
    except Exception as error:  # a filter or expression failing on this input
        raise TemplateError(name, f"{type(error).__name__}: {error}", _template_line(error)) from None


def _template_line(error: BaseException) -> int | None:
    # Jinja rewrites tracebacks so frames inside the template carry its line numbers.
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename == "<template>":
            return frame.lineno
    return None


def render_prompts(project, example: dict) -> tuple[str, str]:
    """(teacher prompt, student prompt) for one input dict."""
    return (render(project.teacher.template, "teacher", example),
            render(project.student.template, "student", example))


def apply_chat_template(tokenizer, prompt: str) -> str:
    """Wrap a rendered prompt as one user turn for chat models (`model.chat_template`)."""
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("chat", f"`model.chat_template` = true, but the tokenizer of {tokenizer.name_or_path!r} "
                                    "has no chat template (a base model?); set `model.chat_template = false`")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
