"""Load a causal LM and its tokenizer from a hub id, a local folder, or `toy-base`.

Safetensors only and no remote code unless the project says so: a project
file should never be able to run code you did not write. A hub id is read from
the local Hugging Face cache only (`hf download <id>` fills it), so
no command ever waits on a network. A LoRA student (an adapter folder, see
engine/training/lora.py) loads as its base with the adapter merged in.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from engine.project.schema import ModelConfig
from engine.errors import EngineError, TemplateError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model_path(name: str, project_dir: Path | None = None) -> str:
    """`toy-base` -> the embedded model folder; a relative folder -> under the project."""
    from engine.toy import resolve_toy_model

    toy = resolve_toy_model(name)
    if toy is not None:
        if not (toy / "config.json").exists():
            raise EngineError(f"`model.name` = {name!r}: the embedded model is missing at {toy}; "
                              "rebuild it with `python -m engine.toy.pretrain` (see engine/toy/TRAINING.md)")
        return str(toy)
    if project_dir is not None and (Path(project_dir) / name).is_dir():
        return str((Path(project_dir) / name).resolve())
    return name


def is_local_reference(name: str) -> bool:
    """A name written as a path (`./m`, `../m`, `/m`, `~/m`): never looked up as a hub id."""
    return name.startswith((".", "/", "~")) or "\\" in name


def local_source(name: str, source: str) -> str:
    """The folder to load from: `source` itself when it is one, else the hub id's snapshot in the local cache.

    Never downloads: a hub id that is not cached is an error saying how to fetch it, at
    once, whether or not `HF_HUB_OFFLINE` is set.
    """
    if Path(source).is_dir():
        return source
    if is_local_reference(source):
        raise EngineError(f"`model.name` = {name!r}: no such folder ({Path(source).expanduser()})")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(source, cache_dir=constants.HF_HUB_CACHE, local_files_only=True)
    except HFValidationError:
        raise EngineError(f"`model.name` = {name!r}: not a folder here and not a hub id (expected `org/name`, "
                          "a local folder, or `toy-base`)") from None
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        raise EngineError(f"`model.name` = {name!r}: not in the local cache ({constants.HF_HUB_CACHE}): run "
                          f"`{download_command(source)}` first (the engine never downloads; set HF_HOME "
                          "or HF_HUB_CACHE if your cache lives elsewhere)") from None


def download_command(repo_id: str) -> str:
    """The command that fills the cache with `repo_id`, as the installed huggingface_hub names it:
    `hf` since 0.34, where `huggingface-cli` was deprecated (1.0 removed it)."""
    import huggingface_hub
    from packaging.version import Version

    new = Version(huggingface_hub.__version__) >= Version("0.34")
    return f"{'hf' if new else 'huggingface-cli'} download {repo_id}"


def resolve_device(device: str) -> torch.device:
    """`model.device` (already checked against auto|cpu|cuda|cuda:N|mps by engine/project/validation.py) on this machine."""
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
    """`model.dtype` on `device`: auto is bf16 on a CUDA card that has it, else float32 (CPU stays float32)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    problem = precision_problem(dtype, device)
    if problem:
        raise EngineError(problem)
    return DTYPES[dtype]


def precision_problem(dtype: str, device: torch.device, key: str = "model.dtype") -> str | None:
    """Why `dtype` (float32, bfloat16, float16; or bf16/fp16 for `distill.mixed_precision`) cannot run on `device`."""
    half = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16", "fp16": "float16"}.get(dtype)
    if half is None:
        return None
    if device.type == "cpu":
        return (f"`{key}` = {dtype!r} on a CPU: CPU runs stay in float32 (half precision there is slow and "
                f"inexact); use \"auto\" or \"float32\", or run on a GPU")
    if device.type == "cuda" and half == "bfloat16" and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name(device)
        return (f"`{key}` = {dtype!r}, but this GPU ({name}) has no bfloat16 support; use \"auto\" "
                "(float32 weights) or float16")
    return None


def load_tokenizer(config: ModelConfig, project_dir: Path | None = None):
    from transformers import AutoTokenizer

    path = local_source(config.name, resolve_model_path(config.name, project_dir))
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
    if config.chat_template:
        from engine.project.templates import require_chat_template

        try:
            require_chat_template(tokenizer)
        except TemplateError as error:
            raise EngineError(str(error)) from None
    return tokenizer


def load_model(config: ModelConfig, project_dir: Path | None = None, path: str | None = None,
               device: torch.device | None = None):
    """(model in eval mode on its device, tokenizer). `path` overrides the config's model (a saved student).

    An adapter folder (a LoRA student) loads as its base with the adapter merged in
    (engine/training/lora.py); with `model.chat_template` the template's end-of-turn token
    also ends generation.
    """
    from engine.quiet import quiet_libraries

    quiet_libraries()  # runs report progress through their events; the TUI owns the screen
    # `model.device_map`: only where no device is asked for (the one-process teacher pass, evaluation);
    # training and each of several processes take the device they are given.
    device_map = config.device_map if device is None else ""
    device = device or resolve_device(config.device)
    model = _load_weights(config, project_dir, path or config.name, device, device_map)
    model.project_context_window = config.context_window or None  # a project limit below the model's own
    tokenizer = load_tokenizer(config, project_dir) if path is None else _tokenizer_at(path, config)
    if model.generation_config is not None:
        if model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        if config.chat_template:
            stop_at_end_of_turn(model, tokenizer)
    return model, tokenizer


def _load_weights(config: ModelConfig, project_dir: Path | None, name: str, device: torch.device, device_map: str = ""):
    """The model `name` names (toy-base, a folder, a cached hub id, or an adapter folder, merged onto its base);
    with `device_map` placed by accelerate over the devices there are, else on `device`."""
    from transformers import AutoModelForCausalLM

    from engine.training import lora

    source = local_source(config.name, resolve_model_path(name, project_dir))
    if lora.is_adapter_folder(Path(source)):
        return lora.load_adapter_model(Path(source), lambda base: _load_weights(config, project_dir, base, device, device_map))
    dtype = resolve_dtype(config.dtype, device)
    _warn_remote_code(config)
    folder = Path(source)
    pickle_only = folder.is_dir() and not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin"))
    if pickle_only and config.safetensors_only:
        # Pickled weights can run code when loaded; the engine reads safetensors only (docs/trust-model.md).
        raise EngineError(f"`model.name` = {config.name!r}: {source} holds only pickle weights (*.bin); the engine loads "
                          "safetensors only. Convert them once: `AutoModelForCausalLM.from_pretrained(folder)"
                          ".save_pretrained(folder, safe_serialization=True)` in a Python you trust, or set "
                          "`model.safetensors_only = false` if you trust the folder")
    try:
        # use_kernels=False: transformers 5.25 swaps layers for kernels fetched from the hub by default
        # (on `.train()` too). Labels must come from the model as written, and a run must not need the hub.
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, use_safetensors=not pickle_only, trust_remote_code=config.trust_remote_code,
            use_kernels=False, **({"device_map": device_map} if device_map else {}))
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else ""
        raise EngineError(f"`model.name` = {config.name!r}: could not load {source} ({type(error).__name__}: {message}). "
                          "No model hub is needed for `toy-base` or a local folder; a hub id must already be in the local cache.") from None
    return (model if device_map else model.to(device)).eval()


def device_map_problem(config: ModelConfig, processes: int) -> str | None:
    """`model.device_map` spreads one model over a machine's GPUs from one process: several processes
    would each spread a copy over the same GPUs."""
    if config.device_map and processes > 1:
        return (f"`model.device_map` = {config.device_map!r} spreads one teacher over the GPUs from one process; "
                f"this run has {processes} processes. Launch one process (`ctxdistill run`), or remove "
                "`model.device_map` to give each process its own device")
    return None


def stop_at_end_of_turn(model, tokenizer) -> None:
    """Add the chat template's end-of-turn token to the tokens that end generation (a base
    tokenizer's EOS is often `<|endoftext|>` while the chat turn ends with `<|im_end|>`)."""
    from engine.project.templates import end_of_turn_id

    end = end_of_turn_id(tokenizer)
    if end is None:
        return
    eos = model.generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, (list, tuple)) else [eos] if eos is not None else []
    if end not in ids:
        model.generation_config.eos_token_id = ids + [end]


def _tokenizer_at(path: str, config: ModelConfig):
    from dataclasses import replace

    return load_tokenizer(replace(config, name=path))


def context_window(model) -> tuple[int, str] | None:
    """(tokens, where that limit comes from), the smaller of the model's window and the project's limit."""
    own = getattr(model.config, "max_position_embeddings", None)
    limit = getattr(model, "project_context_window", None)
    if limit and (own is None or limit < own):
        return limit, f"the project's context window (model.context_window = {limit})"
    return (own, f"the model's context window of {own} tokens") if own else None


def precision_problems(project) -> list[str]:
    """`model.dtype` and `distill.mixed_precision` of every stage against this machine (no model needed)."""
    device = resolve_device(project.model.device)
    problems = [precision_problem(project.model.dtype, device)]
    for stage in project.stages or ():
        mixed = stage.distill.mixed_precision
        problems.append(precision_problem(mixed, device, "distill.mixed_precision") if mixed in ("bf16", "fp16") else None)
    return list(dict.fromkeys(problem for problem in problems if problem))


def model_problems(project, model) -> str | None:
    """What cannot work with this loaded model here: half precision the device lacks, LoRA targets it lacks."""
    from engine.training import lora

    mixed = project.distill.mixed_precision
    problem = precision_problem(mixed, model.device, "distill.mixed_precision") if mixed in ("bf16", "fp16") else None
    return problem or lora.target_problem(model, project.distill.lora)
