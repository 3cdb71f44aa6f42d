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


def render_system(project, which: str, example: dict, index: int = 0) -> str:
    """The `[teacher] system` or `[student] system` message for one input ("" when the table sets none).

    Seeded apart from the user turn, so `| sample(n)` in both draws independently.
    """
    config = project.teacher if which == "teacher" else project.student
    if not config.system:
        return ""
    seed = render_seed(project.distill.seed, f"{which}-system", index, example)
    return render(config.system, f"{which}.system", template_variables(config, example), seed)


def render_prompts(project, example: dict) -> tuple[str, str]:
    """(teacher prompt, student prompt) for one input dict (the system messages are rendered too, to check them)."""
    render_system(project, "teacher", example)
    render_system(project, "student", example)
    return render_teacher(project, example), render_student(project, example)


# --- chat models (`model.chat_template = true`) ----------------------------------
#
# A rendered template is the user turn and `system` the system message; the tokenizer's own
# chat template joins them and opens the assistant turn, where generation starts. The
# student learns the teacher's assistant-turn token ids, closed by the template's
# end-of-turn token (engine/training/data.py), so the distilled model ends its turn as the chat
# model does.


def apply_chat_template(tokenizer, prompt: str, system: str = "") -> str:
    """One conversation (an optional system message, then `prompt` as the user turn), opened for the assistant.

    The text tokenizes to exactly the template's own token ids with `tokenizer(text)`: a
    template that writes the BOS token itself (Llama 3) loses it here when the tokenizer
    adds one too, so no prompt starts with two.
    """
    require_chat_template(tokenizer)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as error:  # e.g. a template that raises on a system message (some Gemma/Mistral ones)
        hint = " (this template may not take a system message: leave `system` empty)" if system else ""
        raise TemplateError("chat", f"the tokenizer's chat template failed: {type(error).__name__}: {error}{hint}") from None
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and adds_bos(tokenizer):
        text = text[len(bos):]
    return text


def require_chat_template(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("chat", f"`model.chat_template` = true, but the tokenizer of {tokenizer.name_or_path!r} "
                                    "has no chat template (a base model?); set `model.chat_template = false`")


def adds_bos(tokenizer) -> bool:
    """Whether `tokenizer(text)` puts the BOS token in front by itself."""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer("a").input_ids
    return bool(ids) and ids[0] == tokenizer.bos_token_id


END_OF_TURN_PROBE = "ctxdistill-end-of-turn-probe"  # an assistant message no template changes


def end_of_turn_id(tokenizer) -> int | None:
    """The special token the chat template writes right after an assistant message (`<|im_end|>`,
    `<|eot_id|>`, `<end_of_turn>`, `</s>`), or None when it writes none."""
    require_chat_template(tokenizer)
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": END_OF_TURN_PROBE}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:
        return None
    if END_OF_TURN_PROBE not in text:
        return None
    after = text[text.index(END_OF_TURN_PROBE) + len(END_OF_TURN_PROBE):]
    ids = tokenizer(after, add_special_tokens=False).input_ids
    special = set(tokenizer.all_special_ids) | {
        token_id for token_id, token in getattr(tokenizer, "added_tokens_decoder", {}).items() if token.special}
    return ids[0] if ids and ids[0] in special else None
