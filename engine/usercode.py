"""Load `module:function` callables from a project's own python files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Callable

from engine.errors import EngineError


def load_callable(project_dir: Path, reference: str, key: str) -> Callable:
    """`tasks:make_inputs` -> the function `make_inputs` in `PROJECT_DIR/tasks.py`.

    `key` is the dotted config key, named in every error.
    """
    module_name, _, function_name = reference.partition(":")
    path = Path(project_dir) / (module_name.replace(".", "/") + ".py")
    if not path.exists():
        raise EngineError(f"`{key}` = {reference!r}: no file {path}")
    # A unique module name per project folder, so two projects' tasks.py never collide; the file's
    # mtime is part of it so a long-lived process (the TUI) picks up edits to tasks.py.
    unique_name = (f"ctxdistill_project_{abs(hash(str(path.resolve())))}_{path.stat().st_mtime_ns}"
                   f"_{module_name.replace('.', '_')}")
    module = sys.modules.get(unique_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(unique_name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise EngineError(f"`{key}`: importing {path} failed: {type(error).__name__}: {error}") from error
        sys.modules[unique_name] = module
    function = getattr(module, function_name, None)
    if not callable(function):
        names = [name for name in dir(module) if callable(getattr(module, name)) and not name.startswith("_")]
        raise EngineError(f"`{key}` = {reference!r}: {path.name} has no function {function_name!r} (it has: {', '.join(names)})")
    return function
