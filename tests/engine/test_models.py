"""Where models come from (issue 10, item 1): hub ids through the local cache only, folders, pickle weights."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import torch

from engine.project.schema import ModelConfig
from engine.errors import EngineError
from engine.models import load_model, load_tokenizer


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache of our own (the machine's real cache is never read)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def put_in_cache(cache: Path, repo_id: str, folder: Path, commit: str = "0123456789abcdef0123456789abcdef01234567"):
    """Lay `folder` out the way `hf download` leaves a model repository in the cache."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


@pytest.mark.parametrize("offline", ["1", None])
def test_a_hub_id_not_in_the_cache_is_a_clear_error_at_once(hub_cache, monkeypatch, offline):
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    for load in (load_model, load_tokenizer):
        with pytest.raises(EngineError) as raised:
            load(ModelConfig(name="Qwen/Qwen2.5-0.5B-Instruct", device="cpu"))
        message = str(raised.value)
        assert "`model.name` = 'Qwen/Qwen2.5-0.5B-Instruct': not in the local cache" in message
        assert "run `hf download Qwen/Qwen2.5-0.5B-Instruct` first" in message
    assert time.monotonic() - started < 10, "no network wait"


def test_the_download_command_is_the_one_the_installed_huggingface_hub_provides(monkeypatch):
    import sys

    import huggingface_hub

    from engine.models import download_command

    command = download_command("Qwen/Qwen2.5-0.5B-Instruct")
    assert command == "hf download Qwen/Qwen2.5-0.5B-Instruct"  # huggingface_hub >= 0.34 (1.0 removed the old name)
    executable = command.split()[0]
    assert shutil.which(executable) or Path(sys.executable).with_name(executable).exists()
    monkeypatch.setattr(huggingface_hub, "__version__", "0.33.4")
    assert download_command("org/name") == "huggingface-cli download org/name"


def test_a_hub_id_in_the_cache_loads_from_its_snapshot(hub_cache, char_model_dir):
    put_in_cache(hub_cache, "someone/tiny-llama", char_model_dir)
    model, tokenizer = load_model(ModelConfig(name="someone/tiny-llama", device="cpu"))
    reference, _ = load_model(ModelConfig(name=str(char_model_dir), device="cpu"))
    ids = torch.tensor([tokenizer("Input: ab").input_ids])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, reference(input_ids=ids).logits)


def test_names_that_are_neither_folders_nor_hub_ids(hub_cache, tmp_path):
    with pytest.raises(EngineError, match=r"not a folder here and not a hub id"):
        load_model(ModelConfig(name="not a//valid id", device="cpu"))
    with pytest.raises(EngineError, match=r"`model.name` = './missing-model': no such folder"):
        load_model(ModelConfig(name="./missing-model", device="cpu"), tmp_path)


def test_pickle_weights_load_only_when_the_project_opts_in(tmp_path, char_model_dir):
    from transformers import AutoModelForCausalLM

    folder = tmp_path / "pickled"
    shutil.copytree(char_model_dir, folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(EngineError, match=r"holds only pickle weights .* `model.safetensors_only = false`"):
        load_model(ModelConfig(name=str(folder), device="cpu"))
    loaded, _ = load_model(ModelConfig(name=str(folder), device="cpu", safetensors_only=False))
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)


def test_cpu_runs_stay_in_float32(char_model_dir):
    model, _ = load_model(ModelConfig(name=str(char_model_dir), device="cpu", dtype="auto"))
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(EngineError, match=r"`model.dtype` = 'float16' on a CPU"):
        load_model(ModelConfig(name=str(char_model_dir), device="cpu", dtype="float16"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_is_bfloat16_on_a_cuda_card_that_has_it(char_model_dir):
    model, _ = load_model(ModelConfig(name=str(char_model_dir), device="cuda", dtype="auto"))
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    assert next(model.parameters()).dtype == expected


def test_a_model_loads_without_hub_kernels_also_once_in_training_mode(char_model_dir):
    """transformers 5.25 turns hub kernels on by default and re-kernelizes on `.train()`: a layer
    swapped for a downloaded kernel would change the teacher's labels and need the hub."""
    model, _ = load_model(ModelConfig(name=str(char_model_dir), device="cpu"))
    model.train()
    assert getattr(model, "use_kernels", False) is False and getattr(model, "kernels_mode", None) is None
