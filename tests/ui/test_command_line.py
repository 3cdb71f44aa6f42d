"""`ctxtui`'s command line: --version, help on every argument, and the no-argument rule of ctxdistill (issue 23)."""

from __future__ import annotations

import argparse
from importlib import metadata

import pytest

from ctxtui.app import main, parse_args


def test_version_works_without_a_terminal(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"ctxtui {metadata.version('ctxdistill')} (") and f"textual {metadata.version('textual')}" in line


def test_help_states_the_rule_and_every_argument(monkeypatch):
    caught = []
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", lambda self, args=None: caught.append(self))
    parse_args([])
    (parser,) = caught
    assert all(action.help for action in parser._actions)
    assert "Without PROJECT_DIR: the project in the current folder, as for `ctxdistill run`" in parser.format_help()
