"""`ctxdistill init DIR --template NAME`: a new project folder that runs as it is.

Each template is a folder under `engine/project/scaffold_templates/` holding a commented
`project.toml` and the `tasks.py` it names; `__NAME__` in the project file
becomes the new folder's name. Nothing is ever overwritten.
"""

from __future__ import annotations

import re
from pathlib import Path

from engine.errors import EngineError

TEMPLATES_DIR = Path(__file__).resolve().parent / "scaffold_templates"
TEMPLATES = ("instructions", "scratchpad", "fewshot", "empty")
DESCRIPTIONS = {
    "instructions": "bake an instruction into the model (paper 3.1)",
    "scratchpad": "answer directly what the teacher works out step by step (paper 3.3)",
    "fewshot": "internalize worked examples (paper 3.2)",
    "empty": "a blank project to fill in",
}


def create_project(folder: Path | str, template: str = "instructions") -> Path:
    """Write `template`'s files into `folder` (created if missing); returns the folder."""
    folder = Path(folder)
    if template not in TEMPLATES:
        raise EngineError(f"unknown template {template!r}: expected one of {', '.join(TEMPLATES)}")
    source = TEMPLATES_DIR / template
    files = sorted(path for path in source.iterdir() if path.is_file() and path.suffix in (".toml", ".py"))
    clashes = [path.name for path in files if (folder / path.name).exists()]
    if clashes:
        raise EngineError(f"{folder} already has {', '.join(clashes)}: choose a new folder "
                          "(init never overwrites a file)")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.resolve().name).strip("-") or "project"
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.name == "project.toml":
            text = text.replace("__NAME__", name)
        (folder / path.name).write_text(text, encoding="utf-8")
    return folder
