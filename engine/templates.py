"""Teacher and student prompts: Jinja2 in a sandbox, strict about undefined names.

A template error names the template (teacher/student) and the line, so the TUI
can show it inline while the user types.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import traceback

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from engine.errors import TemplateError

_ENVIRONMENT = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,  # "Output: " must keep its trailing space and newlines exactly
    autoescape=False,
)
RNG_VARIABLE = "__ctxdistill_rng"  # the filters' random source, under a name no input or `vars` key uses


@jinja2.pass_context
def _sample(context, items, n: int):
    """`examples | sample(4)`: a random subset in random order, reproducible from the render's seed."""
    items = list(items)
    if n > len(items):
        raise ValueError(f"sample({n}) from a list of {len(items)} item(s)")
    rng = context.get(RNG_VARIABLE) or random.Random(0)
    return rng.sample(items, n)


@jinja2.pass_context
def _shuffle(context, items):
    """`examples | shuffle`: the same items in a random order, reproducible like `sample`."""
    items = list(items)
    (context.get(RNG_VARIABLE) or random.Random(0)).shuffle(items)
    return items


_ENVIRONMENT.filters["sample"] = _sample
_ENVIRONMENT.filters["shuffle"] = _shuffle


def render_seed(*parts) -> int:
    """A seed from the project seed, the input and the rendering's index: the same prompt every time."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@functools.lru_cache(maxsize=256)
def _compile(source: str, name: str) -> jinja2.Template:
    try:
        return _ENVIRONMENT.from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(name, error.message or str(error), error.lineno) from None


def render(source: str, name: str, variables: dict, seed: int | None = None) -> str:
    """Render one template; every failure becomes a `TemplateError` naming `name`.

    `seed` drives the `sample` and `shuffle` filters; by default it comes from the variables,
    so a template renders the same text for the same input every time.
    """
    template = _compile(source, name)
    rng = random.Random(render_seed(variables) if seed is None else seed)
    try:
        return template.render(**variables, **{RNG_VARIABLE: rng})
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


def template_variables(config, example: dict) -> dict:
    """What a template sees: its table's `vars`, then the input's own keys (which win)."""
    return {**config.vars, **example}


def render_teacher(project, example: dict, index: int = 0) -> str:
    """Teacher prompt number `index` of an ensemble (0 when there is none), seeded by the project and the input."""
    seed = render_seed(project.distill.seed, "teacher", index, example)
    return render(project.teacher.template, "teacher", template_variables(project.teacher, example), seed)


def render_student(project, example: dict) -> str:
    seed = render_seed(project.distill.seed, "student", example)
    return render(project.student.template, "student", template_variables(project.student, example), seed)


def render_prompts(project, example: dict) -> tuple[str, str]:
    """(teacher prompt, student prompt) for one input dict."""
    return render_teacher(project, example), render_student(project, example)


def apply_chat_template(tokenizer, prompt: str) -> str:
    """Wrap a rendered prompt as one user turn for chat models (`model.chat_template`)."""
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("chat", f"`model.chat_template` = true, but the tokenizer of {tokenizer.name_or_path!r} "
                                    "has no chat template (a base model?); set `model.chat_template = false`")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
