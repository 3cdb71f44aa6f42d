"""Fixing an unknown key inside the app (issue 20 item 6): rename it to the engine's suggestion, or remove it.

No Textual here. The engine names an unknown key by its dotted path
(`distill.lerning_rate`, `operations.upper.teacher.tempalte`, `stages[2].nmae`)
and suggests the nearest valid key; this module finds that key's table in the
edited file, so the fix keeps the line where it was, with its comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNKNOWN_KEY = re.compile(r"unknown key `([^`]+)`(?:; did you mean `([^`]+)`\?)?")
ITEM_BY_INDEX = re.compile(r"(operations|stages)\[(\d+)\]\.(.+)")


@dataclass(frozen=True)
class UnknownKey:
    dotted: str  # as the engine names it
    suggestion: str | None  # the dotted key it suggests, if any
    path: tuple  # the table in the file (ProjectFile.table_at's path)
    key: str

    @property
    def new_key(self) -> str | None:
        return self.suggestion.rsplit(".", 1)[-1] if self.suggestion else None


def locate(dotted: str, project_file) -> tuple[tuple, str] | None:
    """(table path, key) of a dotted key path in the file, or None when it is not there."""
    if match := ITEM_BY_INDEX.fullmatch(dotted):
        prefix, rest = (match.group(1), int(match.group(2))), match.group(3)
    elif dotted.split(".", 1)[0] in ("operations", "stages") and "." in dotted:
        array, rest = dotted.split(".", 1)
        names = project_file.operation_names() if array == "operations" else project_file.stage_names()
        # Names may hold dots: the longest name the path starts with.
        named = sorted((name for name in names if rest.startswith(name + ".")), key=len, reverse=True)
        if not named:
            return None
        prefix, rest = (array, names.index(named[0])), rest[len(named[0]) + 1:]
    else:
        prefix, rest = (), dotted
    *tables, key = rest.split(".")
    path = (*prefix, *tables)
    table = project_file.table_at(path)
    return (path, key) if table is not None and key in table else None


def unknown_keys(problems: list[str], project_file) -> list[UnknownKey]:
    """The unknown keys the problems name that are in the edited file, in the problems' order."""
    found = []
    for problem in problems:
        if not (match := UNKNOWN_KEY.search(problem)):
            continue
        where = locate(match.group(1), project_file)
        if where is not None:
            found.append(UnknownKey(match.group(1), match.group(2), *where))
    return found
