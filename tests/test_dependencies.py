"""Every package the code imports is declared in pyproject.toml (issue 23, item 6).

Two checks: each import in engine/ and ctxtui/ (at any depth, lazy ones included) is the
standard library, the project itself, or a declared dependency's import name; and every
engine and ctxtui module imports in a fresh interpreter where any other third-party
top-level import fails.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "ctxtui")


def declared() -> dict[str, str]:
    """Import name -> distribution, for the dependencies of [project] (not the extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {}
    for requirement in project["dependencies"]:
        distribution = requirement.split(";")[0]
        for stop in "<>=!~[ ":
            distribution = distribution.split(stop)[0]
        for module in import_names(distribution):
            names[module] = distribution
    return names


@functools.cache
def _installed() -> dict[str, list[str]]:
    return metadata.packages_distributions()  # module -> distributions: a scan of every installed package


def import_names(distribution: str) -> set[str]:
    """The top-level modules a distribution installs (`rouge-score` -> rouge_score)."""
    return {module for module, distributions in _installed().items()
            if any(found.lower().replace("_", "-") == distribution.lower().replace("_", "-") for found in distributions)}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def sources():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_every_import_is_declared_or_standard():
    allowed = set(declared()) | set(sys.stdlib_module_names) | set(PACKAGES) | {"__future__"}
    missing = {}
    for path in sources():
        for module in imports_of(path) - allowed:
            missing.setdefault(module, []).append(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_declared_lower_bounds_are_installed():
    """The environment the suite runs in satisfies every declared range (the bounds are what it tested)."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        requirement = Requirement(text)
        installed = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), f"{requirement}: installed {installed}"


GUARD = """
import builtins, importlib, sys
allowed = set(sys.argv[1].split(","))
real_import = builtins.__import__

def guarded(name, globals=None, locals=None, fromlist=(), level=0):
    top = name.split(".")[0]
    caller = (globals or {}).get("__name__", "").split(".")[0]
    # Only the project's own modules are held to its declarations; a library may import what it needs.
    if level == 0 and caller in ("engine", "ctxtui", "__main__") and top not in allowed:
        raise ImportError(f"{caller} imports {top!r}, which pyproject.toml does not declare")
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = guarded
for module in sys.argv[2:]:
    importlib.import_module(module)
print("ok")
"""


def test_every_module_imports_with_only_the_declared_dependencies():
    modules = [".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for path in sources() if path.name != "__main__.py"]  # a __main__ runs when imported
    allowed = set(declared()) | set(sys.stdlib_module_names) | set(PACKAGES)
    result = subprocess.run([sys.executable, "-c", GUARD, ",".join(sorted(allowed)), *modules], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
