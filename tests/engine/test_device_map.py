"""`[model] device_map = "auto"`: one process spreads a teacher too big for one device (issue 19, item 5).

Only the settings path runs here (on a CPU machine accelerate places every layer on the CPU);
it has not run on GPUs.
"""

from __future__ import annotations

import torch

from engine.models import device_map_problem, load_model
from engine.project.loader import load_project

from engine_fixtures import write_project


def project_with_device_map(tmp_path, model_dir):
    project_dir = write_project(tmp_path / "p", model_dir)
    toml = project_dir / "project.toml"
    toml.write_text(toml.read_text().replace('device = "cpu"\n', 'device = "cpu"\ndevice_map = "auto"\n'))
    return load_project(project_dir)


def test_device_map_auto_places_the_teacher_and_computes_what_the_plain_load_does(tmp_path, char_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    asked = []
    original = AutoModelForCausalLM.from_pretrained.__func__
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        classmethod(lambda cls, *args, **kwargs: asked.append(kwargs.get("device_map")) or
                                    original(cls, *args, **kwargs)))
    project = project_with_device_map(tmp_path, char_model_dir)
    assert project.model.device_map == "auto"
    placed, _ = load_model(project.model, project.dir)  # the teacher pass's and evaluation's call: no device given
    plain, _ = load_model(project.model, project.dir, device=torch.device("cpu"))  # training's call: its device
    # accelerate placed the first (on a CPU machine every layer lands on the CPU, so transformers
    # records no hf_device_map); the second was loaded and moved to its device as always.
    assert asked == ["auto", None]
    assert placed.device.type == "cpu"
    ids = torch.tensor([[3, 4, 5, 6]])
    assert torch.allclose(placed(input_ids=ids).logits, plain(input_ids=ids).logits)


def test_device_map_with_several_processes_is_a_clear_error(tmp_path, char_model_dir):
    project = project_with_device_map(tmp_path, char_model_dir)
    assert device_map_problem(project.model, 1) is None
    problem = device_map_problem(project.model, 2)
    assert problem.startswith("`model.device_map` = 'auto' spreads one teacher") and "2 processes" in problem
