"""The project-file reference (docs/project-file.md), written from the schema itself.

Every key a project file accepts, with its default, its allowed values or range,
and its help text, comes from `engine/project/schema.py`: the page cannot drift
from what the loader accepts. `python -m engine.project.reference > docs/project-file.md`
rewrites it; tests/engine/test_docs.py checks the committed page is current.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, fields, is_dataclass

from engine.project.schema import Operation, Project, Stage

INTRO = """\
# The project file: every key

What this page is for: looking up a key of `project.toml`, its default and what
it does. It is written from the schema (`engine/project/schema.py`) by
`python -m engine.project.reference > docs/project-file.md`, and a test fails when
it is out of date, so it lists exactly what the loader accepts. How the pieces
fit together (inputs from your own data, templates, extractors, combining
distillations) is in [projects.md](projects.md) and [combining.md](combining.md).

A project is one folder holding `project.toml` and, where the file names Python
functions (`module:function`), the modules it names. Unknown keys are refused
with the nearest valid key; every problem is reported at once.
"""


def default_of(spec) -> object:
    if spec.default is not MISSING:
        return spec.default
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    return None


def toml_value(value) -> str:
    """A default as it would be written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '""' if value == "" else '"' + value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + "}"
    return str(value)


def allowed(metadata) -> str:
    """"one of a, b" or the numeric range, from the field's metadata ("" when there is none)."""
    if metadata.get("choices"):
        return "one of " + ", ".join(f"`{choice}`" for choice in metadata["choices"])
    bounds = []
    if metadata.get("minimum") is not None:
        bounds.append(f">= {metadata['minimum']}")
    if metadata.get("above") is not None:
        bounds.append(f"> {metadata['above']}")
    if metadata.get("maximum") is not None:
        bounds.append(f"<= {metadata['maximum']}")
    return ", ".join(bounds)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table_rows(cls, prefix: str) -> tuple[list[str], list[tuple[str, type]]]:
    """The rows for `cls`'s plain keys, and its nested tables (name, class) to list after it."""
    rows, nested = [], []
    hints = typing.get_type_hints(cls)
    for spec in fields(cls):
        if spec.metadata.get("internal"):
            continue
        kind = hints[spec.name]
        if is_dataclass(kind):
            nested.append((f"{prefix}{spec.name}", kind, spec.metadata.get("help", "")))
            continue
        rows.append(f"| `{prefix}{spec.name}` | `{cell(toml_value(default_of(spec)))}` | {cell(allowed(spec.metadata))} | "
                    f"{cell(spec.metadata.get('help', ''))} |")
    return rows, nested


def section(title: str, help_text: str, cls, prefix: str) -> list[str]:
    rows, nested = table_rows(cls, prefix)
    lines = [f"## {title}", ""] + ([help_text, ""] if help_text else [])
    if rows:
        lines += ["| key | default | allowed | what it does |", "| --- | --- | --- | --- |", *rows, ""]
    for name, kind, nested_help in nested:
        inline = prefix.count(".") >= 1  # a table inside a table ([distill] lora): written inline or as [distill.lora]
        lines += section(f"`[{name}]`" + (" (or inline)" if inline else ""), nested_help, kind, f"{name}.")
    return lines


def reference() -> str:
    lines = [INTRO]
    lines += section("Top level", "Keys outside any table.", Project, "")
    lines += section("`[[operations]]`", "Several distillations trained at once; each key not given is the top-level "
                     "table's (paper section 2.3, see combining.md).", Operation, "operations.")
    lines += section("`[[stages]]`", "Stages run one after another, each from the previous stage's student.",
                     Stage, "stages.")
    return "\n".join(lines).rstrip() + "\n"


def all_keys() -> list[str]:
    """Every dotted key the reference lists (for the docs test)."""
    return [line.split("`")[1] for line in reference().splitlines() if line.startswith("| `")]


if __name__ == "__main__":
    print(reference(), end="")
