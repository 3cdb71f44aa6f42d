"""`ctxdistill check` finds the model without loading it, and a run that cannot start says why (issue 26, items 3-4).

A hub id is looked up in a temporary Hugging Face cache of the test's own: missing,
it is one clear problem naming the download command the installed huggingface_hub
provides; present (a snapshot holding only a config), `check` passes, which it could
not if it read weights.
"""

from __future__ import annotations

import pytest

from engine.cli import main
from engine.runs.events import read_events

from engine_fixtures import write_project
from test_models import put_in_cache

HUB_ID = "someone/tiny-chat"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def no_weights_read(monkeypatch):
    from transformers import AutoModelForCausalLM

    def refuse(*args, **kwargs):
        raise AssertionError("`check` loaded weights")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)


def test_check_reports_a_hub_id_missing_from_the_cache(tmp_path, hub_cache, no_weights_read, capsys):
    project = write_project(tmp_path / "hub", HUB_ID)
    assert main(["check", str(project)]) == 2
    error = capsys.readouterr().err
    assert f"`model.name` = '{HUB_ID}': not in the local cache ({hub_cache})" in error
    assert f"run `hf download {HUB_ID}` first" in error and "Traceback" not in error


def test_check_passes_a_cached_hub_id_without_reading_its_weights(tmp_path, hub_cache, no_weights_read, capsys):
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "config.json").write_text("{}")  # no weights at all: a check that loaded them would fail
    put_in_cache(hub_cache, HUB_ID, snapshot)
    assert main(["check", str(write_project(tmp_path / "hub", HUB_ID))]) == 0
    assert capsys.readouterr().out.rstrip().endswith(": ok")


def test_check_reports_a_missing_local_folder(tmp_path, capsys):
    assert main(["check", str(write_project(tmp_path / "local", "./no-such-model"))]) == 2
    assert "`model.name` = './no-such-model': no such folder" in capsys.readouterr().err


def test_a_run_that_cannot_start_is_marked_failed_with_the_reason(tmp_path, hub_cache, capsys):
    project = write_project(tmp_path / "hub", HUB_ID)
    assert main(["run", str(project), "--quiet"]) == 2
    assert f"`hf download {HUB_ID}`" in capsys.readouterr().err
    (run_dir,) = (project / "runs").iterdir()
    events = read_events(run_dir / "events.jsonl")
    assert events[-1]["type"] == "done" and events[-1]["status"] == "failed"
    assert "not in the local cache" in events[-1]["message"]  # what the TUI's Runs screen shows
    assert not any(path.is_file() for path in run_dir.rglob("*") if path.parent != run_dir)  # no work was done
