"""A model name typo is caught before launch with a "did you mean" (issue 20 item 19)."""

from __future__ import annotations

import pytest

from conftest import write_project
from ctxtui.app import CtxApp
from ctxtui.checks import known_model_names
from test_author import wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A local Hugging Face cache holding one model (its folder is all the suggestion reads)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    (cache / "models--acme--tiny-chat-v1").mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


async def test_a_hub_id_typo_is_refused_at_launch_with_the_cached_name(tmp_path, hub_cache):
    project = write_project(tmp_path / "demo", model="acme/tiny-chat-v2")
    app = CtxApp(project, attach=False, start_mode="run")
    async with app.run_test(size=(140, 44)) as pilot:
        problems, _ = await app.check_now()
        assert any("did you mean 'acme/tiny-chat-v1'?" in problem for problem in problems), problems
        await pilot.press("n")  # launch: refused, the message says which name was meant
        await wait_for(pilot, lambda: any("did you mean" in note.message for note in app._notifications))
        assert not (project / "runs").exists()


async def test_an_embedded_model_typo_suggests_the_embedded_name(tmp_path, hub_cache):
    project = write_project(tmp_path / "demo", model="toy-bse")
    app = CtxApp(project, attach=False, start_mode="settings")
    async with app.run_test(size=(140, 44)) as pilot:
        problems, _ = await app.check_now()
        assert any(problem.startswith("`model.name` = 'toy-bse' (did you mean 'toy-base'?)") for problem in problems), \
            problems
        assert {"toy-base", "acme/tiny-chat-v1"} <= set(known_model_names(project))
