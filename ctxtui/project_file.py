"""The project's `project.toml` as an editable document (comments and layout kept).

The Author screen edits templates and the extractor here; `text()` is what the
engine validates (`project_from_toml_text`) and `save()` writes it back with
tomlkit, so everything the user did not touch stays byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import tomlkit
from tomlkit.items import Table

TEMPLATE_FILE_KEYS = ("template_file", "file", "path")
EXTRACT_KINDS = ("identity", "regex", "after_marker", "callable")
EXTRACT_PARAMETER = {"regex": "pattern", "after_marker": "marker", "callable": "function"}


class ProjectFile:
    """`PROJECT_DIR/project.toml`, loaded with tomlkit, plus any template files it names."""

    def __init__(self, project_dir: Path):
        self.dir = Path(project_dir)
        self.path = self.dir / "project.toml"
        self.doc = tomlkit.parse(self.path.read_text(encoding="utf-8"))
        self.dirty = False
        # Template text for templates kept in their own files: written on save.
        self._template_files: dict[str, tuple[Path, str]] = {}

    # -- reading -----------------------------------------------------------

    def text(self) -> str:
        return tomlkit.dumps(self.doc)

    def _table(self, name: str) -> Table:
        if name not in self.doc:
            self.doc[name] = tomlkit.table()
        return self.doc[name]

    def _template_file(self, role: str) -> Path | None:
        table = self.doc.get(role, {})
        for key in TEMPLATE_FILE_KEYS:
            if key in table:
                return self.dir / str(table[key])
        return None

    def template(self, role: str) -> str:
        """The template text of `role` ("teacher" or "student"), inline or from its file."""
        if role in self._template_files:
            return self._template_files[role][1]
        table = self.doc.get(role, {})
        if "template" in table:
            return str(table["template"])
        path = self._template_file(role)
        if path is not None and path.exists():
            return path.read_text(encoding="utf-8")
        return ""

    def extract(self) -> tuple[str, str]:
        """(kind, parameter) of the answer extractor."""
        table = self.doc.get("extract", {})
        kind = str(table.get("kind", "identity"))
        key = EXTRACT_PARAMETER.get(kind)
        return kind, str(table.get(key, "")) if key else ""

    # -- editing -----------------------------------------------------------

    def set_template(self, role: str, text: str) -> None:
        if text == self.template(role):
            return
        table = self._table(role)
        path = self._template_file(role)
        if "template" not in table and path is not None:
            self._template_files[role] = (path, text)
        else:
            table["template"] = tomlkit.string(text, multiline="\n" in text)
        self.dirty = True

    def set_extract(self, kind: str, parameter: str) -> None:
        if (kind, parameter) == self.extract():
            return
        table = self._table("extract")
        table["kind"] = kind
        key = EXTRACT_PARAMETER.get(kind)
        if key:
            table[key] = parameter
        self.dirty = True

    def save(self) -> None:
        self.path.write_text(self.text(), encoding="utf-8")
        for path, text in self._template_files.values():
            path.write_text(text, encoding="utf-8")
        self._template_files.clear()
        self.dirty = False
