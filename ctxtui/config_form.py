"""What the Settings screen's forms show, read from engine.project.schema (no Textual here).

Every table of a project is a `Section`: the top-level tables, and each
`[[operations]]` and `[[stages]]` item with its override tables. Each field's
type, choices, default and help come from the config dataclasses, so a new
option in engine/project/schema.py appears in the form by itself. A field left empty is
removed from the file: the default, or for an operation or stage the inherited
top-level value, applies (shown as the placeholder).

Values are checked by the engine, not here: the form writes what was typed
(a number when it reads as one, else the text) and shows the problems of
`project_from_toml_text`, the same messages the CLI prints.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from dataclasses import dataclass

import tomlkit

from engine.project import schema as cfg

# Edited on the Author screen, with the live preview (the forms say so).
AUTHOR_KEYS = {"template"}
# Text fields where `\n` and `\t` stand for a newline and a tab (a one-line input cannot hold them).
ESCAPED_KEYS = {"until", "marker", "fewshot_prompt", "description"}

TOP_TABLES = ("model", "inputs", "teacher", "student", "extract", "generate", "distill", "eval", "baselines")


@dataclass(frozen=True)
class FieldSpec:
    key: str
    kind: str  # bool, int, float, str, list, dict
    help: str
    choices: tuple | None
    default: typing.Any


@dataclass(frozen=True)
class Section:
    """One table of the file: `path` from the document root, `dotted` as the engine's messages name it."""

    title: str
    path: tuple
    dotted: str
    cls: type
    inherits: tuple | None = None  # the top-level table an override table inherits from


def field_specs(cls: type) -> list[FieldSpec]:
    hints = typing.get_type_hints(cls)
    specs = []
    for spec in dataclasses.fields(cls):
        kind = hints[spec.name]
        if spec.metadata.get("internal") or dataclasses.is_dataclass(kind) or spec.name in AUTHOR_KEYS:
            continue
        if spec.default is not dataclasses.MISSING:
            default = spec.default
        else:
            default = spec.default_factory()  # type: ignore[misc]
        specs.append(FieldSpec(spec.name, kind.__name__, spec.metadata.get("help", ""),
                               spec.metadata.get("choices"), default))
    return specs


def item_dotted(array: str, index: int, name) -> str:
    """How the engine's messages name an item: `operations.upper`, or `operations[2]` without a name."""
    return f"{array}.{name}" if isinstance(name, str) and name else f"{array}[{index}]"


def sections(project_file) -> list[Section]:
    """Every table the project may set, in file order: top level, then operations, then stages."""
    found = [Section("project", (), "", cfg.Project)]
    top_classes = typing.get_type_hints(cfg.Project)
    for name in TOP_TABLES:
        found += with_nested(Section(name, (name,), name, top_classes[name]))
    operation_classes = typing.get_type_hints(cfg.Operation)
    for index, name in enumerate(project_file.operation_names()):
        raw_name = project_file.value(("operations", index), "name")
        dotted = item_dotted("operations", index, raw_name)
        found.append(Section(f"op {name}", ("operations", index), dotted, cfg.Operation))
        for part in cfg.OPERATION_TABLES:
            found.append(Section(f"op {name} · {part}", ("operations", index, part), f"{dotted}.{part}",
                                 operation_classes[part], inherits=(part,)))
    for index, name in enumerate(project_file.stage_names()):
        raw_name = project_file.value(("stages", index), "name")
        dotted = item_dotted("stages", index, raw_name)
        found.append(Section(f"stage {name}", ("stages", index), dotted, cfg.Stage))
        found += with_nested(Section(f"stage {name} · distill", ("stages", index, "distill"), f"{dotted}.distill",
                                     cfg.DistillConfig, inherits=("distill",)))
    return found


def with_nested(section: Section) -> list[Section]:
    """`section` and a section for each table inside it (e.g. `[distill.lora]`)."""
    found = [section]
    for spec in dataclasses.fields(section.cls):
        kind = typing.get_type_hints(section.cls)[spec.name]
        if dataclasses.is_dataclass(kind) and not spec.metadata.get("internal"):
            found += with_nested(Section(f"{section.title} · {spec.name}", section.path + (spec.name,),
                                         f"{section.dotted}.{spec.name}", kind,
                                         None if section.inherits is None else section.inherits + (spec.name,)))
    return found


def section_help(section: Section) -> str:
    if len(section.path) == 2 and isinstance(section.path[1], str) or len(section.path) == 4:
        return cfg.field_help(".".join(str(part) for part in section.path[-2:]))
    if section.path == ():
        return "The project's own keys (top of project.toml)."
    if len(section.path) == 1:
        return cfg.field_help(section.path[0])
    if len(section.path) == 2:
        return (cfg.Operation if section.path[0] == "operations" else cfg.Stage).__doc__ or ""
    owner = cfg.Operation if section.path[0] == "operations" else cfg.Stage
    spec = {f.name: f for f in dataclasses.fields(owner)}[section.path[2]]
    return spec.metadata.get("help", "") + " An empty field inherits the top-level value."


# -- text <-> value -----------------------------------------------------------------


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def unescape(text: str) -> str:
    return re.sub(r"\\(\\|n|t)", lambda match: {"\\": "\\", "n": "\n", "t": "\t"}[match.group(1)], text)


def format_value(spec: FieldSpec, value) -> str:
    """How `value` (from the file) shows in a one-line input."""
    if value is None:
        return ""
    if spec.kind == "str" and isinstance(value, str):
        return escape(value) if spec.key in ESCAPED_KEYS else value
    if spec.kind in ("list", "dict") or not isinstance(value, (str, int, float)):
        return tomlkit.item(value).as_string()
    return str(value).lower() if isinstance(value, bool) else str(value)


class Unparsable(ValueError):
    """Text a field cannot turn into a TOML value (the file would not be TOML any more)."""


def parse_text(spec: FieldSpec, text: str):
    """The value to write for `text` typed in field `spec`; None removes the key."""
    if text.strip() == "" and spec.kind != "str":
        return None
    if spec.kind == "str":
        if text == "":
            return None
        return unescape(text) if spec.key in ESCAPED_KEYS else text
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        if spec.kind == "list":  # `exact_match, rouge_l` without the brackets and quotes
            return [item.strip() for item in text.split(",") if item.strip()]
        if spec.kind == "dict":
            raise Unparsable(f"not a TOML inline table, e.g. {{digits = 4}}") from None
        return text  # the engine says what was expected, as the CLI would
    return value


def problems_for(dotted: str, problems: list[str]) -> list[str]:
    """The problems that name `dotted` (a key in backticks, or a value of it)."""
    mark = f"`{dotted}`"
    return [problem for problem in problems if mark in problem]


def default_text(spec: FieldSpec, inherited=None) -> str:
    """The placeholder of an empty field: what applies when the key is not set."""
    if inherited is not None:
        return f"inherits {format_value(spec, inherited) or '(empty)'}"
    said = re.search(r"\(default: ([^)]*)\)", spec.help)  # the help's own word ("default: all") over `[]`
    if said:
        return f"default: {said.group(1)}"
    shown = format_value(spec, spec.default)
    return "default: empty" if not shown or (spec.kind in ("list", "dict") and not spec.default) else f"default {shown}"
