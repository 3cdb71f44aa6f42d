"""LoRA through peft (`[distill.lora]`, r > 0): train small adapters instead of every weight.

The base weights stay frozen and in the model's dtype; only the adapters (float32)
train. The teacher pass, the student-before evaluation and training each hold one
copy of the base model (they are loaded one after another, never side by side).

A LoRA student folder holds the adapter (`adapter_config.json`,
`adapter_model.safetensors`, loadable with `PeftModel.from_pretrained(base,
folder)`) and the tokenizer; with `merge = true` also `merged/`, a full model
folder with the adapter merged in. The adapter's `base_model_name_or_path` names
the weights it was trained on: the project's model (a hub id or `toy-base` as
written, so they hold on any machine; outside the engine `toy-base` is the folder
`engine.toy.resolve_toy_model("toy-base")`; a local folder by its absolute path),
or, in a sequential stage, the previous stage's student folder.

Stages stack on merged weights: stage k loads stage k-1's student merged (its
`merged/` folder, or its base with its adapter merged in memory) and trains a
fresh adapter on top. Loading stage k's student therefore walks the chain of
bases back to the project's model, merging each adapter on the way.

A training checkpoint of a LoRA run holds the adapter (the trainable weights)
with its optimizer state, never the frozen base: a resume loads the base from
where the run did and the adapter from the checkpoint.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path

from engine.project.schema import LoraSettings
from engine.errors import EngineError

ADAPTER_CONFIG = "adapter_config.json"
MERGED_DIR = "merged"
ALL_LINEAR = "all-linear"


@contextmanager
def _quiet_peft():
    """peft asks transformers about gradient checkpointing under its deprecated name, and looks for a
    base's config.json to see whether embeddings changed (they do not: no adapter sits on them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def enabled(settings: LoraSettings) -> bool:
    return settings.r > 0


def is_adapter_folder(folder: Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).exists()


def _target_modules(settings: LoraSettings):
    names = list(settings.target_modules)
    return ALL_LINEAR if names == [ALL_LINEAR] else names


def adaptable_modules(model) -> list[str]:
    """Names of the layers an adapter can wrap (linear and GPT-2's Conv1D), the LM head excluded."""
    import torch
    from transformers.pytorch_utils import Conv1D

    output = model.get_output_embeddings()
    return [name for name, module in model.named_modules()
            if isinstance(module, (torch.nn.Linear, Conv1D)) and module is not output]


def target_problem(model, settings: LoraSettings, key: str = "distill.lora.target_modules") -> str | None:
    """Why the adapter would wrap no module of `model` (peft's rule: a name matches a module's
    full name or its last dotted parts), listing the names there are."""
    if not enabled(settings) or _target_modules(settings) == ALL_LINEAR:
        return None
    candidates = adaptable_modules(model)
    wanted = list(settings.target_modules)
    if any(name == target or name.endswith("." + target) for name in candidates for target in wanted):
        return None
    short = sorted({name.rsplit(".", 1)[-1] for name in candidates})
    return (f"`{key}` = {wanted!r} matches no layer of this model; its linear layers are named "
            f"{', '.join(short) or '(none)'} (or use \"all-linear\")")


def add_adapter(model, settings: LoraSettings):
    """`model` wrapped as a peft model with a fresh LoRA adapter (only the adapter trains)."""
    from peft import LoraConfig, get_peft_model

    problem = target_problem(model, settings)
    if problem:
        raise EngineError(problem)
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=_target_modules(settings), bias="none", task_type="CAUSAL_LM")
    try:
        # autocast_adapter_dtype: the adapters are float32 even on a bf16 base (stable updates).
        with _quiet_peft():
            return get_peft_model(model, config, autocast_adapter_dtype=True)
    except ValueError as error:
        raise EngineError(f"`distill.lora`: peft could not add the adapter: {error}") from None


def _trainable_names(model) -> set[str]:
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def checkpoint_adapter_only(accelerator) -> dict:
    """Make `accelerator.save_state` write only the adapter of each prepared model; returns the keyword
    arguments `accelerator.load_state` needs to read such a checkpoint back.

    A checkpoint with the whole model would copy the frozen base (GBs for a real model) at every save.
    The load hook checks that the checkpoint holds exactly this model's adapter tensors: loading is
    not strict (the base is not in the file), so a mismatch must not pass for a resume.
    FSDP and DeepSpeed write their own sharded checkpoints: those are left whole, as accelerate writes them.
    """
    from accelerate.utils import SAFE_MODEL_NAME, DistributedType

    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM):
        return {}

    def keep_adapter(models, weights, output_dir):
        for index, model in enumerate(models[: len(weights)]):  # weights: the state dicts about to be saved
            trainable = _trainable_names(model)
            weights[index] = {name: tensor for name, tensor in weights[index].items() if name in trainable}

    def check_adapter(models, input_dir):
        from safetensors import safe_open

        for index, model in enumerate(models):
            file = Path(input_dir) / f"{SAFE_MODEL_NAME}{'' if index == 0 else f'_{index}'}.safetensors"
            with safe_open(str(file), framework="pt") as stored:
                names = set(stored.keys())
            trainable = _trainable_names(model)
            if names != trainable:
                raise ValueError(f"{file.name} holds {len(names)} tensors, {len(names - trainable)} of them not this "
                                 f"adapter's, and lacks {len(trainable - names)} of its {len(trainable)}")

    accelerator.register_save_state_pre_hook(keep_adapter)
    accelerator.register_load_state_pre_hook(check_adapter)
    return {"strict": False}


def save_student(model, folder: Path, base: str, merge: bool) -> None:
    """Write the adapter into `folder` (its base recorded as `base`), and `folder/merged/` when `merge`."""
    for config in model.peft_config.values():
        config.base_model_name_or_path = base
    with _quiet_peft():
        model.save_pretrained(folder, safe_serialization=True)
    if merge:
        # merge_and_unload changes the model in place; saving is the last thing training does.
        model.merge_and_unload().save_pretrained(Path(folder) / MERGED_DIR, safe_serialization=True)


def base_of(folder: Path) -> str:
    """The weights an adapter folder was trained on (a folder path or a hub id)."""
    try:
        base = json.loads((Path(folder) / ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError) as error:
        raise EngineError(f"{folder}: a damaged adapter ({ADAPTER_CONFIG}: {error})") from None
    if not base:
        raise EngineError(f"{folder}: the adapter does not name its base model (`base_model_name_or_path`)")
    return base


def load_adapter_model(folder: Path, load_base):
    """The student in `folder` as one plain model: `merged/` when saved, else its base
    (`load_base(base) -> model`, which may itself be an adapter folder) with the adapter merged in."""
    merged = Path(folder) / MERGED_DIR
    if (merged / "config.json").exists():
        return load_base(str(merged))
    from peft import PeftModel

    base_model = load_base(base_of(folder))
    with _quiet_peft():
        model = PeftModel.from_pretrained(base_model, str(folder))
    return model.merge_and_unload().eval()
