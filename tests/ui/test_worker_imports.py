"""The app's workers take turns at the first heavy import (transformers' lazy module is not thread-safe)."""

from __future__ import annotations

import threading

from ctxtui import imports
from ctxtui.checks import engine_check
from ctxtui.widgets import preview_pane
from engine.project.loader import load_project


def test_the_project_check_waits_its_turn_behind_the_preview_load(project_dir):
    # Seen in tmux: the check and the preview's model load started together and one failed with
    # "cannot import name 'LogitsProcessorList' from 'transformers'".
    project = load_project(project_dir)
    assert engine_check(project) == ([], [])  # imports done: the check below is quick unless it waits
    result: list = []
    with imports.HEAVY_IMPORTS:  # what the preview's load (and the inputs' loader) holds
        checker = threading.Thread(target=lambda: result.append(engine_check(project)))
        checker.start()
        checker.join(timeout=2.0)
        assert checker.is_alive() and not result, "the check ran beside a heavy import"
    checker.join(timeout=120)
    assert result == [([], [])]


def test_every_worker_shares_one_lock():
    from ctxtui.screens import author

    assert preview_pane.HEAVY_IMPORTS is imports.HEAVY_IMPORTS and author.HEAVY_IMPORTS is imports.HEAVY_IMPORTS
