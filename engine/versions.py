"""The versions that decide what a run does: this package and the libraries under it (issue 23).

Read from the installed packages' metadata, never by importing them: `--version` stays
instant and the engine never imports `textual` (design.md).
"""

from __future__ import annotations

import argparse
import platform
from importlib import metadata

PACKAGE = "ctxdistill"
LIBRARIES = ("torch", "transformers", "accelerate", "textual")


def versions() -> dict[str, str]:
    """{"ctxdistill": "0.1.0", "python": "3.11.7", "torch": "2.13.0", ...}; "not installed" where one is missing."""
    found = {PACKAGE: _version(PACKAGE), "python": platform.python_version()}
    found.update({name: _version(name) for name in LIBRARIES})
    return found


def version_line(program: str = PACKAGE) -> str:
    """`ctxdistill 0.1.0 (python 3.11.7, torch 2.13.0, ...)`: what --version prints."""
    found = versions()
    package = found.pop(PACKAGE)
    return f"{program} {package} ({', '.join(f'{name} {version}' for name, version in found.items())})"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


class VersionAction(argparse.Action):
    """`--version`: print `version_line` and exit 0, like argparse's own, but read only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the versions of ctxdistill, python, torch, transformers, accelerate and textual, then exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line(parser.prog))  # to stdout, as argparse's own `version` action prints
        parser.exit()
