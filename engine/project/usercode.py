"""Load and call `module:function` references to a project's own python files.

A project is code (docs/trust-model.md): its `tasks.py` runs with the engine's
rights. A reference names a module *inside* the project folder by its Python name
(`tasks`, `helpers.text`); relative dots and paths that leave the folder are refused.

Whatever the user's function does wrong becomes one `UserCodeError` naming the
reference and the config key, the exception, and only the frames in the project's
own files (issue 11): the engine's internals are not the user's business.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
import traceback
from pathlib import Path
from typing import Callable

from engine.errors import EngineError, UserCodeError

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
REFERENCE = re.compile(rf"(?P<module>{_NAME}(?:\.{_NAME})*):(?P<function>{_NAME})")
MAX_FRAMES = 6


def reference_problem(reference: str, key: str) -> str | None:
    """Why `reference` is not a `module:function` inside the project folder (None when it is)."""
    if REFERENCE.fullmatch(reference):
        return None
    module = reference.partition(":")[0]
    if ":" not in reference:
        return f"`{key}` = {reference!r}: expected `module:function`, e.g. \"tasks:make_inputs\""
    if module.startswith(".") or ".." in module or "/" in module or "\\" in module:
        return (f"`{key}` = {reference!r}: a module reference names a Python file inside the project folder by its "
                "module name (`tasks`, `helpers.text`); leading dots and paths that leave the folder are not allowed "
                "(docs/trust-model.md)")
    return f"`{key}` = {reference!r}: expected `module:function` made of Python names, e.g. \"tasks:make_inputs\""


class UserFunction:
    """A project's function; any exception it raises becomes one clear `UserCodeError`.

    `call_as` says how the engine calls it ("function(rng, n, **options)"), for
    messages about a signature that does not fit.
    """

    def __init__(self, function: Callable, reference: str, key: str, project_dir: Path, call_as: str):
        self.function = function
        self.reference = reference
        self.key = key
        self.project_dir = Path(project_dir).resolve()
        self.call_as = call_as
        self.__name__ = getattr(function, "__name__", reference)

    @property
    def name(self) -> str:
        return f"`{self.key}` = {self.reference!r}"

    def __call__(self, *args, **kwargs):
        try:
            return self.function(*args, **kwargs)
        except (Exception, SystemExit) as error:
            if isinstance(error, TypeError) and self.signature_problem(*args, **kwargs):
                raise UserCodeError(f"{self.name} could not be called as {self.call_as}: "
                                    f"{self.signature_problem(*args, **kwargs)}") from error
            raise self.failure(error) from error

    def signature_problem(self, *args, **kwargs) -> str | None:
        """Why the function cannot take these arguments (None when it can, or cannot be told)."""
        try:
            inspect.signature(self.function).bind(*args, **kwargs)
        except TypeError as error:
            return str(error)
        except ValueError:
            return None  # a builtin without a signature
        return None

    def failure(self, error: BaseException, doing: str = "raised") -> UserCodeError:
        """`error`, raised inside the user's code, as one message with the user's frames only."""
        return UserCodeError(f"{self.name} {doing} {describe_exception(error, self.project_dir)}")


def describe_exception(error: BaseException, project_dir: Path) -> str:
    """`ValueError: bad\n  tasks.py, line 4, in make: raise ValueError("bad")` with the project's frames only."""
    message = str(error).strip() if str(error).strip() else "(no message)"
    lines = [f"{type(error).__name__}: {message}"]
    if isinstance(error, SyntaxError) and error.filename:
        where = _relative(Path(error.filename), project_dir) or error.filename
        lines = [f"SyntaxError: {error.msg}", f"  {where}, line {error.lineno}: {(error.text or '').strip()}"]
    frames = [(frame, where) for frame in traceback.extract_tb(error.__traceback__)
              if (where := _relative(Path(frame.filename), project_dir)) is not None]
    shown = []
    for frame, where in frames:
        if shown and (shown[-1][1], shown[-1][0].lineno) == (where, frame.lineno):
            continue  # a comprehension's own frame on the same line says nothing new
        shown.append((frame, where))
    for frame, where in shown[-MAX_FRAMES:]:
        code = f": {frame.line.strip()}" if frame.line else ""
        lines.append(f"  {where}, line {frame.lineno}, in {frame.name}{code}")
    return "\n".join(lines)


def _relative(path: Path, project_dir: Path) -> str | None:
    """`path` relative to the project folder, or None when it is not in it (the engine, a library)."""
    engine_dir = Path(__file__).resolve().parent.parent
    try:
        path = path.resolve()
    except OSError:
        return None
    if path.is_relative_to(engine_dir) or not path.is_relative_to(project_dir):
        return None
    return str(path.relative_to(project_dir))


def load_callable(project_dir: Path, reference: str, key: str, call_as: str = "function(...)") -> UserFunction:
    """`tasks:make_inputs` -> the function `make_inputs` in `PROJECT_DIR/tasks.py`, wrapped as a `UserFunction`.

    `key` is the dotted config key, named in every error.
    """
    problem = reference_problem(reference, key)
    if problem:
        raise EngineError(problem)
    module_name, _, function_name = reference.partition(":")
    project_dir = Path(project_dir).resolve()
    path = project_dir / (module_name.replace(".", "/") + ".py")
    if not path.is_file():
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
        except (Exception, SystemExit) as error:
            raise UserCodeError(f"`{key}` = {reference!r}: importing {path.name} failed: "
                                f"{describe_exception(error, project_dir)}") from error
        sys.modules[unique_name] = module
    function = getattr(module, function_name, None)
    if not callable(function):
        names = [name for name in dir(module) if callable(getattr(module, name)) and not name.startswith("_")]
        raise EngineError(f"`{key}` = {reference!r}: {path.name} has no function {function_name!r} "
                          f"(it has: {', '.join(names) or 'none'})")
    return UserFunction(function, reference, key, project_dir, call_as)
