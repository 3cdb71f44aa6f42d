"""`ctxdistill init DIR --template NAME`: a new project folder that runs as it is.

Each template is a folder under `engine/project/scaffold_templates/` holding a commented
`project.toml` and the `tasks.py` it names; `__NAME__` in the project file
becomes the new folder's name. Nothing is ever overwritten.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import EngineError
from engine.project.loader import project_from_toml_text
from engine.project.validation import safe_folder_name

TEMPLATES_DIR = Path(__file__).resolve().parent / "scaffold_templates"
TEMPLATES = ("instructions", "scratchpad", "fewshot", "chat", "empty")
DESCRIPTIONS = {
    "chat": "bake a long system prompt into a chat model, with LoRA (`--model` names it)",
    "instructions": "bake an instruction into the model (paper 3.1)",
    "scratchpad": "answer directly what the teacher works out step by step (paper 3.3)",
    "fewshot": "internalize worked examples (paper 3.2)",
    "empty": "a blank project to fill in",
}


# The chat template's model when none is given: small, and the one the README's chat examples use.
DEFAULT_CHAT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def create_project(folder: Path | str, template: str = "instructions", model: str | None = None) -> Path:
    """Write `template`'s files into `folder` (created if missing); returns the folder.

    `model` (a local folder or hub id) becomes `[model] name`, in place of the template's own.
    """
    folder = Path(folder)
    if template not in TEMPLATES:
        raise EngineError(f"unknown template {template!r}: expected one of {', '.join(TEMPLATES)}")
    source = TEMPLATES_DIR / template
    files = sorted(path for path in source.iterdir() if path.is_file() and path.suffix in (".toml", ".py", ".jsonl"))
    _refuse_bad_target(folder)
    clashes = [path.name for path in files if (folder / path.name).exists()]
    if clashes:
        raise EngineError(f"{folder} already has {', '.join(clashes)}: choose a new folder "
                          "(init never overwrites a file)")
    # The one rule `name` is validated by: `.proj` becomes `proj`, a long name its first 100 characters.
    name = safe_folder_name(folder.resolve().name)
    texts = {path.name: path.read_text(encoding="utf-8").replace("__NAME__", name) if path.name == "project.toml"
             else path.read_text(encoding="utf-8") for path in files}
    texts["project.toml"] = _with_model(texts["project.toml"], model)
    project_from_toml_text(folder, texts["project.toml"])  # init writes only projects `check` accepts (issue 24)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EngineError(f"{folder}: cannot create the folder ({error.strerror}); choose another place") from None
    for file_name, text in texts.items():
        (folder / file_name).write_text(text, encoding="utf-8")
    return folder


def _refuse_bad_target(folder: Path) -> None:
    """A target that is a file, or lies under one, gets one line, not a traceback (issue 24, item 5)."""
    if folder.exists() and not folder.is_dir():
        raise EngineError(f"{folder} is a file, not a folder: give `init` a new folder's path")
    for parent in folder.parents:
        if parent.exists() and not parent.is_dir():
            raise EngineError(f"{folder}: {parent} is a file, not a folder: give `init` a new folder's path")


def _with_model(text: str, model: str | None) -> str:
    """The project file with `[model] name` set to `model` (the chat template's placeholder: its default)."""
    import json
    import re

    if "__MODEL__" in text:
        return text.replace('"__MODEL__"', json.dumps(model or DEFAULT_CHAT_MODEL))
    if model is None:
        return text
    return re.sub(r'^(\[model\]\s*\nname = )"[^"]*"', lambda match: match.group(1) + json.dumps(model), text,
                  count=1, flags=re.M)
