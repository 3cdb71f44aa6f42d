"""project.toml -> a frozen dataclass tree (`schema.py`) that mirrors the TOML tables.

Unknown keys and wrong types are errors that name the file, the dotted key, the
value and what was expected, and suggest the nearest valid key; all problems are
collected and raised together as one `ConfigError`, with those of the cross-field
rules (`validation.py`).
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
import typing
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, EngineError
from engine.project.schema import IMPLICIT, OPERATION_TABLES, PROJECT_FILE, Operation, Project, Stage, TemplateConfig
from engine.project.validation import _project_name_problems, expected_range, safe_folder_name, validate


# --- loading -----------------------------------------------------------------

def load_project(project_dir: Path | str) -> Project:
    """Read and validate `PROJECT_DIR/project.toml` (or a path to a .toml file)."""
    path = Path(project_dir)
    if path.is_file():
        path = path.parent
    file = path / PROJECT_FILE
    if not file.exists():
        raise ConfigError(file, [f"no {PROJECT_FILE} here; a project is a folder holding one (see sample_projects/)"])
    if not file.is_file():
        raise ConfigError(file, [f"{PROJECT_FILE} is a folder, not a file; the project file is a TOML text file"])
    try:
        text = read_text(file)
    except EngineError as error:
        raise ConfigError(file, [str(error)]) from None
    return project_from_toml_text(path, text)


def read_text(path: Path, key: str = "") -> str:
    """A UTF-8 text file the user named; every way it can be unreadable is one clear EngineError.

    A byte-order mark is dropped. A decoding error names the line and byte offset and
    suggests how to convert the file (issue 11).
    """
    path = Path(path)
    named = f"`{key}`: {path}" if key else str(path)
    if path.is_dir():
        raise EngineError(f"{named} is a folder; expected a file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EngineError(f"{named}: no such file") from None
    except OSError as error:
        raise EngineError(f"{named}: cannot be read ({error.strerror or error})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            guess, encoding = "it looks like UTF-16", "utf-16"
        else:
            guess, encoding = "perhaps it is Latin-1 or Windows-1252", "latin1"
        raise EngineError(f"{named} is not UTF-8 text: byte 0x{byte:02x} at byte offset {error.start} (line {line}); "
                          f"{guess}: save it as UTF-8, e.g. `iconv -f {encoding} -t utf-8 {path.name} > utf8-{path.name}`") from None


def project_from_toml_text(project_dir: Path | str, text: str) -> Project:
    """Validate TOML text as the project file of `project_dir` (without writing it)."""
    project_dir = Path(project_dir).resolve()
    file = project_dir / PROJECT_FILE
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(file, [f"not valid TOML: {error}"]) from None
    problems: list[str] = []
    raw_operations, raw_stages = data.pop("operations", None), data.pop("stages", None)
    project = _build(Project, data, "", problems)
    if project.name:
        problems += _project_name_problems(project.name)
    project = replace(project, dir=project_dir, name=project.name or safe_folder_name(project_dir.name))
    project = _resolve_template_files(project, "", problems)
    operations = _build_operations(project, raw_operations, problems)
    stages = _build_stages(project, raw_stages, operations, problems)
    if operations and stages:  # both built: the cross-field rules can run, even beside type problems
        project = replace(project, operations=operations, stages=stages,
                          combined=raw_operations is not None or raw_stages is not None)
        problems += _unrelated(validate(project), problems)
    if problems:
        raise ConfigError(file, problems)
    return project


def _unrelated(rules: list[str], problems: list[str]) -> list[str]:
    """The cross-field problems that name none of the keys already reported (issue 24, item 6).

    A value of the wrong type is left at its default, so a rule about that key would
    only echo the first problem (`distill.max_steps = "x"` -> "set epochs or max_steps").
    """
    reported = {key for problem in problems for key in re.findall(r"`([^`]+)`", problem)}
    return [rule for rule in rules if not reported & set(re.findall(r"`([^`]+)`", rule))]


# --- operations and stages: tables inherited key by key ---------------------------

def _build_operations(project: Project, raw: Any, problems: list[str]) -> tuple[Operation, ...]:
    if raw is None:
        implicit = Operation(name=IMPLICIT, inputs=project.inputs, teacher=project.teacher,
                             student=project.student, extract=project.extract, eval=project.eval)
        return (implicit,)
    if not isinstance(raw, list) or not raw:
        problems.append("`operations` must be an array of tables: [[operations]] with a `name` each")
        return ()
    operations = []
    for index, table in enumerate(raw):
        prefix = _item_prefix("operations", index, table)
        if not isinstance(table, dict):
            problems.append(f"`{prefix}` = {table!r}: expected a table ([[operations]])")
            continue
        own = {key: value for key, value in table.items() if key not in OPERATION_TABLES}
        operation = _build(Operation, own, prefix + ".", problems)
        inherited = {part: _override(getattr(project, part), table.get(part), f"{prefix}.{part}", problems)
                     for part in OPERATION_TABLES}
        operation = replace(operation, **inherited)
        for part in ("teacher", "student"):
            template = _resolve_template_file(project.dir, getattr(operation, part), f"{prefix}.{part}", problems)
            operation = replace(operation, **{part: template})
        operations.append(operation)
    return tuple(operations)


def _build_stages(project: Project, raw: Any, operations: tuple[Operation, ...], problems: list[str]) -> tuple[Stage, ...]:
    every = [operation.name for operation in operations]
    if raw is None:
        return (Stage(name=IMPLICIT, operations=every, distill=project.distill),)
    if not isinstance(raw, list) or not raw:
        problems.append("`stages` must be an array of tables: [[stages]] with a `name` each")
        return ()
    stages = []
    for index, table in enumerate(raw):
        prefix = _item_prefix("stages", index, table)
        if not isinstance(table, dict):
            problems.append(f"`{prefix}` = {table!r}: expected a table ([[stages]])")
            continue
        stage = _build(Stage, {key: value for key, value in table.items() if key != "distill"}, prefix + ".", problems)
        distill = _override(project.distill, table.get("distill"), f"{prefix}.distill", problems)
        stages.append(replace(stage, operations=list(stage.operations) or every, distill=distill))
    return tuple(stages)


def _item_prefix(array: str, index: int, table: Any) -> str:
    """`operations.upper` for a named item, `operations[2]` otherwise (errors name the item the user wrote)."""
    name = table.get("name") if isinstance(table, dict) else None
    return f"{array}.{name}" if isinstance(name, str) and name else f"{array}[{index}]"


# Setting one of these keys replaces the whole group: an operation that sets `template_file`
# must not also inherit the top level's inline `template`, nor a stage's `max_steps` its `epochs`.
EXCLUSIVE_KEYS = ({"template", "template_file"}, {"epochs", "max_steps"})


def _override(parent, raw: Any, prefix: str, problems: list[str]):
    """`parent` (a top-level table) with the keys set in `raw` replaced."""
    if raw is None:
        return parent
    own = _build(type(parent), raw, prefix + ".", problems)
    if not isinstance(raw, dict):
        return parent
    changed = {key: getattr(own, key) for key in raw if hasattr(own, key)}
    for group in EXCLUSIVE_KEYS:
        if group & changed.keys():
            for key in group - changed.keys():
                if hasattr(parent, key):
                    changed[key] = type(getattr(parent, key))()
    return replace(parent, **changed)


def _build(cls, data: Any, prefix: str, problems: list[str]):
    if not isinstance(data, dict):
        problems.append(f"`{prefix.rstrip('.')}` = {data!r}: expected a table")
        return cls()
    known = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}
    values = {}
    for key, value in data.items():
        dotted = prefix + key
        if key not in known:
            suggestion = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            hint = f"; did you mean `{prefix}{suggestion[0]}`?" if suggestion else f"; valid keys: {', '.join(sorted(known))}"
            problems.append(f"unknown key `{dotted}`{hint}")
            continue
        spec = known[key]
        hint_type = typing.get_type_hints(cls)[key]
        if is_dataclass(hint_type):
            values[key] = _build(hint_type, value, dotted + ".", problems)
            continue
        checked = _check_value(dotted, value, hint_type, spec.metadata, problems)
        if checked is not _INVALID:
            values[key] = checked
    return cls(**values)


_INVALID = object()


def _check_value(dotted: str, value: Any, expected: Any, metadata, problems: list[str]):
    """`value` as the field's type, or `_INVALID` after adding a problem; a negative number is refused
    here, stating the field's real lower bound (its schema range) when it has one."""
    choices = metadata.get("choices")

    def wrong(what: str):
        problems.append(f"`{dotted}` = {value!r}: expected {what}")
        return _INVALID

    if expected is bool:
        if not isinstance(value, bool):
            return wrong("true or false")
    elif expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return wrong("an integer")
        if value < min(0, metadata.get("minimum") or 0):  # -1 means "auto" where the schema allows it
            return wrong(expected_range("an integer", metadata) or "a non-negative integer")
    elif expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return wrong("a number")
        value = float(value)
        if not math.isfinite(value):
            return wrong("a finite number")
        if value < 0:
            return wrong(expected_range("a number", metadata) or "a non-negative number")
    elif expected is str:
        if not isinstance(value, str):
            return wrong("a string")
    elif expected is dict:
        if not isinstance(value, dict):
            return wrong("a table, e.g. {digits = 4}")
    elif expected is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return wrong("a list of strings")
    if choices and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return wrong("one of " + ", ".join(repr(c) for c in choices) + hint)
    return value


def _resolve_template_files(project: Project, prefix: str, problems: list[str]) -> Project:
    """Inline the top level's `template_file` contents so every consumer sees `template` text."""
    return replace(project, **{part: _resolve_template_file(project.dir, getattr(project, part), prefix + part, problems)
                               for part in ("teacher", "student")})


def _resolve_template_file(project_dir: Path, config: TemplateConfig, dotted: str, problems: list[str]) -> TemplateConfig:
    if config.template and config.template_file:
        problems.append(f"set `{dotted}.template` or `{dotted}.template_file`, not both")
    elif config.template_file:
        # A template is text, never run as code: it may live outside the project folder (docs/trust-model.md).
        path = project_dir / config.template_file
        if not path.exists():
            problems.append(f"`{dotted}.template_file` = {config.template_file!r}: no such file ({path})")
        else:
            try:
                text = read_text(path, f"{dotted}.template_file")
            except EngineError as error:
                problems.append(str(error))
                return config
            # Cleared once inlined: an operation inheriting this table must not see both keys set.
            return replace(config, template=text, template_file="")
    return config
