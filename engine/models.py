"""Load a causal LM and its tokenizer from a hub id, a local folder, or `toy-base`.

Safetensors only and no remote code unless the project says so: a project
file should never be able to run code you did not write.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from engine.config import ModelConfig
from engine.errors import EngineError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model_path(name: str, project_dir: Path | None = None) -> str:
    """`toy-base` -> the embedded model folder; a relative folder -> under the project."""
    from engine.toy import resolve_toy_model

    toy = resolve_toy_model(name)
    if toy is not None:
        if not (toy / "config.json").exists():
            raise EngineError(f"`model.name` = {name!r}: the embedded model is missing at {toy}; "
                              "rebuild it with `python -m engine.toy.pretrain` (see engine/toy/toy-base/TRAINING.md)")
        return str(toy)
    if project_dir is not None and (Path(project_dir) / name).is_dir():
        return str((Path(project_dir) / name).resolve())
    return name


def resolve_device(device: str) -> torch.device:
    """`model.device` (already checked against auto|cpu|cuda|cuda:N|mps by config.py) on this machine."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EngineError(f"`model.device` = {device!r}, but CUDA is not available here; use \"auto\" or \"cpu\"")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise EngineError(f"`model.device` = {device!r}, but this machine has {torch.cuda.device_count()} CUDA "
                              f"device(s), numbered from 0; use \"cuda\" or \"cuda:0\"")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EngineError("`model.device` = 'mps', but Apple's MPS is not available here; use \"auto\" or \"cpu\"")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise EngineError(f"`model.device` = {device!r}: not a device torch knows ({error})") from None


REMOTE_CODE_WARNING = ("warning: `model.trust_remote_code` = true: Python code shipped with the model {name!r} will run "
                       "on this machine with your rights; keep it only for a model source you trust")
_warned_remote_code: set[str] = set()


def remote_code_warning(config: ModelConfig) -> str | None:
    """The warning a project that turns `trust_remote_code` on gets (None when it is off)."""
    return REMOTE_CODE_WARNING.format(name=config.name) if config.trust_remote_code else None


def _warn_remote_code(config: ModelConfig) -> None:
    """Once per model per process, on stderr (the run's log when the TUI launched it)."""
    warning = remote_code_warning(config)
    if warning and config.name not in _warned_remote_code:
        _warned_remote_code.add(config.name)
        print(warning, file=sys.stderr)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return DTYPES[dtype]


def load_tokenizer(config: ModelConfig, project_dir: Path | None = None):
    from transformers import AutoTokenizer

    path = resolve_model_path(config.name, project_dir)
    _warn_remote_code(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    except Exception as error:
        raise EngineError(f"`model.name` = {config.name!r}: could not load its tokenizer "
                          f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Batched generation continues each prompt from its last token: pad on the left.
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(config: ModelConfig, project_dir: Path | None = None, path: str | None = None,
               device: torch.device | None = None):
    """(model in eval mode on its device, tokenizer). `path` overrides the config's model (a saved student)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # runs report progress through their events; the TUI owns the screen
    source = path or resolve_model_path(config.name, project_dir)
    device = device or resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    _warn_remote_code(config)
    folder = Path(source)
    if folder.is_dir() and not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin")):
        # Pickled weights can run code when loaded; the engine reads safetensors only (README, "Trust model").
        raise EngineError(f"`model.name` = {config.name!r}: {source} holds only pickle weights (*.bin); the engine loads "
                          "safetensors only. Convert them once: `AutoModelForCausalLM.from_pretrained(folder)"
                          ".save_pretrained(folder, safe_serialization=True)` in a Python you trust")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, use_safetensors=True, trust_remote_code=config.trust_remote_code)
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else ""
        raise EngineError(f"`model.name` = {config.name!r}: could not load {source} ({type(error).__name__}: {message}). "
                          "No model hub is needed for `toy-base` or a local folder; a hub id must already be in the local cache.") from None
    model.to(device).eval()
    tokenizer = load_tokenizer(config, project_dir) if path is None else _tokenizer_at(path, config)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _tokenizer_at(path: str, config: ModelConfig):
    from dataclasses import replace

    return load_tokenizer(replace(config, name=path))


def context_window(model) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)
