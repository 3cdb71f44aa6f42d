"""The project's `project.toml` as an editable document (comments and layout kept).

The Author screen edits templates and the extractor here; `text()` is what the
engine validates (`project_from_toml_text`) and `save()` writes it back with
tomlkit, so everything the user did not touch stays byte for byte.

A project may declare `[[operations]]` (issue 7): each one's `[operations.teacher]`
etc. overrides the top-level table. Editing operation `i`'s template writes to
the table the engine actually reads it from: the operation's own table when it
sets a template, else the top-level one it inherits (which every inheriting
operation shares). `template_owner` names that table so the screen can say so.

The file on disk is remembered as loaded or saved, so an edit made by another
editor while the app is open is noticed (`changed_on_disk`) and never
overwritten without asking.
"""

from __future__ import annotations

from pathlib import Path

import tomlkit
from tomlkit.items import Table

TEMPLATE_FILE_KEYS = ("template_file", "file", "path")
EXTRACT_KINDS = ("identity", "regex", "after_marker", "callable")
EXTRACT_PARAMETER = {"regex": "pattern", "after_marker": "marker", "callable": "function"}
# The keys that only mean something for one kind: switching kind drops the others' keys.
EXTRACT_KIND_KEYS = {"regex": ("pattern", "group"), "after_marker": ("marker", "until"), "callable": ("function",)}


def drop_other_kinds_keys(table, kind: str) -> None:
    """Remove the extractor keys only another kind reads (issue 20 item 7); each goes with its inline comment."""
    for other, keys in EXTRACT_KIND_KEYS.items():
        if other != kind:
            for key in keys:
                if key in table:
                    del table[key]


class ProjectFile:
    """`PROJECT_DIR/project.toml`, loaded with tomlkit, plus any template files it names."""

    def __init__(self, project_dir: Path):
        self.dir = Path(project_dir)
        self.path = self.dir / "project.toml"
        self.load()

    def load(self) -> None:
        """(Re)read the file from disk, dropping unsaved edits."""
        self.disk_text = self.path.read_text(encoding="utf-8")
        self.doc = tomlkit.parse(self.disk_text)
        self.dirty = False
        # Template text for templates kept in their own files, keyed by file: written on save.
        self._template_files: dict[Path, str] = {}
        self._template_files_on_disk: dict[Path, str] = {}

    @property
    def dirty(self) -> bool:
        """Unsaved edits: the text differs from the file as loaded or saved (issue 20 item 11: an undo back is clean)."""
        if not self._edited:
            return False
        pending = any(self._template_files_on_disk.get(path) != text for path, text in self._template_files.items())
        return pending or self.text() != self.disk_text

    @dirty.setter
    def dirty(self, edited: bool) -> None:
        self._edited = edited

    # -- the file on disk ---------------------------------------------------

    def changed_on_disk(self) -> bool:
        """Whether project.toml (or a template file read from it) differs from what was loaded or saved."""
        try:
            if self.path.read_text(encoding="utf-8") != self.disk_text:
                return True
            return any(path.read_text(encoding="utf-8") != text
                       for path, text in self._template_files_on_disk.items())
        except OSError:
            return True

    def save(self) -> None:
        text = self.text()
        self.path.write_text(text, encoding="utf-8")
        for path, template in self._template_files.items():
            path.write_text(template, encoding="utf-8")
            self._template_files_on_disk[path] = template
        self._template_files.clear()
        self.disk_text = text
        self.dirty = False

    # -- reading -----------------------------------------------------------

    def text(self) -> str:
        return tomlkit.dumps(self.doc)

    def operation_names(self) -> list[str]:
        """Names of the declared `[[operations]]` (empty when the file declares none)."""
        operations = self.doc.get("operations")
        if not isinstance(operations, list):
            return []
        return [str(op.get("name", f"#{i + 1}")) for i, op in enumerate(operations)]

    def stage_names(self) -> list[str]:
        stages = self.doc.get("stages")
        if not isinstance(stages, list):
            return []
        return [str(stage.get("name", f"#{i + 1}")) for i, stage in enumerate(stages)]

    def _operation(self, operation: int | None) -> Table | None:
        if operation is None:
            return None
        operations = self.doc.get("operations")
        if isinstance(operations, list) and 0 <= operation < len(operations):
            return operations[operation]
        return None

    def _table(self, name: str, operation: int | None = None) -> Table:
        parent = self._operation(operation)
        parent = self.doc if parent is None else parent
        if name not in parent:
            parent[name] = tomlkit.table()
        return parent[name]

    @staticmethod
    def _sets_template(table) -> bool:
        return "template" in table or any(key in table for key in TEMPLATE_FILE_KEYS)

    def template_owner(self, role: str, operation: int | None = None) -> str:
        """The dotted table the template of `role` is read from: `teacher` or `operations.NAME.teacher`.

        An operation's table that sets `template` or `template_file` replaces
        both (the engine's rule); otherwise the operation inherits the top-level one.
        """
        op = self._operation(operation)
        if op is not None and self._sets_template(op.get(role, {})):
            return f"operations.{op.get('name', operation)}.{role}"
        return role

    def _owner_table(self, role: str, operation: int | None) -> Table:
        op = self._operation(operation)
        if op is not None and self._sets_template(op.get(role, {})):
            return op[role]
        return self._table(role)

    def _template_file(self, table) -> Path | None:
        for key in TEMPLATE_FILE_KEYS:
            if key in table:
                return self.dir / str(table[key])
        return None

    def template(self, role: str, operation: int | None = None) -> str:
        """The template text of `role` ("teacher" or "student"), inline or from its file."""
        table = self._owner_table(role, operation)
        if "template" in table:
            return str(table["template"])
        path = self._template_file(table)
        if path is None:
            return ""
        if path in self._template_files:
            return self._template_files[path]
        if path.exists():
            text = path.read_text(encoding="utf-8")
            self._template_files_on_disk.setdefault(path, text)
            return text
        return ""

    def extract(self, operation: int | None = None) -> tuple[str, str]:
        """(kind, parameter) of the answer extractor: the operation's keys over the top-level ones."""
        merged = dict(self.doc.get("extract", {}))
        op = self._operation(operation)
        if op is not None:
            merged.update(op.get("extract", {}))
        kind = str(merged.get("kind", "identity"))
        key = EXTRACT_PARAMETER.get(kind)
        return kind, str(merged.get(key, "")) if key else ""

    def extract_owner(self, operation: int | None = None) -> str:
        op = self._operation(operation)
        if op is not None and "extract" in op:
            return f"operations.{op.get('name', operation)}.extract"
        return "extract"

    # -- editing -----------------------------------------------------------

    def set_template(self, role: str, text: str, operation: int | None = None) -> None:
        if text == self.template(role, operation):
            return
        table = self._owner_table(role, operation)
        path = self._template_file(table)
        if "template" not in table and path is not None:
            self._template_files[path] = text
        else:
            table["template"] = tomlkit.string(text, multiline="\n" in text)
        self.dirty = True

    def override_template(self, role: str, operation: int) -> bool:
        """Give operation `operation` its own copy of the template it inherits; False if it has one."""
        op = self._operation(operation)
        if op is None or self._sets_template(op.get(role, {})):
            return False
        text = self.template(role, operation)
        table = self._table(role, operation)
        table["template"] = tomlkit.string(text, multiline="\n" in text)
        self.dirty = True
        return True

    def set_extract(self, kind: str, parameter: str, operation: int | None = None) -> None:
        if (kind, parameter) == self.extract(operation):
            return
        op = self._operation(operation)
        table = op["extract"] if op is not None and "extract" in op else self._table("extract")
        table["kind"] = kind
        drop_other_kinds_keys(table, kind)
        key = EXTRACT_PARAMETER.get(kind)
        if key:
            table[key] = parameter
        self.dirty = True

    # -- any key of any table (the Settings screen's forms) -------------------
    #
    # A table is named by a path from the document root: () for the top-level keys,
    # ("distill",), ("operations", 0), ("operations", 0, "teacher"), ("stages", 1, "distill").

    def table_at(self, path: tuple, create: bool = False):
        """The table at `path`, or None when it is not in the file (created when `create`)."""
        node = self.doc
        for part in path:
            if isinstance(part, int):
                if not isinstance(node, list) or not 0 <= part < len(node):
                    return None
                node = node[part]
            elif part in node:
                node = node[part]
            elif create:
                node[part] = tomlkit.table()
                node = node[part]
            else:
                return None
        return node

    def value(self, path: tuple, key: str):
        """The value the file sets for `key` in the table at `path` (plain Python), or None when unset."""
        table = self.table_at(path)
        if table is None or key not in table:
            return None
        item = table[key]
        return item.unwrap() if hasattr(item, "unwrap") else item

    def set_value(self, path: tuple, key: str, value) -> None:
        """Set `key` (None: remove it, so the default or the inherited value applies)."""
        if value == self.value(path, key) and (value is not None or self.table_at(path) is None
                                               or key not in self.table_at(path)):
            return
        if value is None:
            table = self.table_at(path)
            if table is None or key not in table:
                return
            del table[key]
            # An operation's or stage's override table left empty says nothing: drop it.
            if len(path) == 3 and not table:
                del self.table_at(path[:2])[path[2]]
        else:
            table = self.table_at(path, create=True)
            if isinstance(value, str):
                value = tomlkit.string(value, multiline="\n" in value and len(value) > 1)
            table[key] = value  # an existing key keeps its place and its inline comment
            if path[-1:] == ("extract",) and key == "kind":
                drop_other_kinds_keys(table, str(value))  # Settings switching the kind: as the Author screen does
        self.dirty = True

    def rename_key(self, path: tuple, old: str, new: str) -> bool:
        """Rename a key in place: its line stays where it is, with its comments (an unknown key's fix)."""
        table = self.table_at(path)
        if table is None or old not in table or new in table:
            return False
        container = table if hasattr(table, "_replace") else table.value
        container._replace(old, new, table[old])
        self.dirty = True
        return True

    def add_item(self, array: str, name: str) -> int:
        """Append a `[[operations]]` or `[[stages]]` table named `name`; returns its index."""
        if not isinstance(self.doc.get(array), list):
            self.doc[array] = tomlkit.aot()
        item = tomlkit.table()
        item["name"] = name
        self.doc[array].append(item)
        self.dirty = True
        return len(self.doc[array]) - 1

    def remove_item(self, array: str, index: int) -> None:
        items = self.doc.get(array)
        if isinstance(items, list) and 0 <= index < len(items):
            del items[index]
            if not len(items):
                del self.doc[array]
            self.dirty = True
