"""`ctxdistill export RUN_DIR DEST`: a finished run's student as a Hugging Face model folder to publish.

DEST holds full weights (`save_pretrained`, safetensors), the tokenizer with its
chat template, `generation_config.json` and the model card (engine/runs/model_card.py),
so `AutoModelForCausalLM.from_pretrained(DEST)` loads it with nothing else around.
A LoRA student is exported merged: the run's `student/merged/` when it was saved,
else its base with the adapter merged in here, on the CPU, in the base's own dtype.
The adapter itself stays publishable as it is: `student/` carries the same card.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from engine.errors import EngineError
from engine.project.schema import Project
from engine.runs.atomic import building_folder
from engine.runs.layout import RunLayout, is_saved_model
from engine.runs.model_card import CARD, read_metrics, write_model_card
from engine.training import lora


def export_student(run_dir: Path, dest: Path) -> Path:
    """Write the run's student into `dest` (new or empty); returns `dest`."""
    run_dir, dest = Path(run_dir), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise EngineError(f"{dest}: already exists and is not empty; export into a new or empty folder")
    project = finished_run(run_dir)
    student = RunLayout.of(project, run_dir).student
    merged = student / lora.MERGED_DIR
    with building_folder(dest) as temporary:
        if not lora.is_adapter_folder(student):
            copy_model_files(student, temporary)
        elif is_saved_model(merged):
            copy_model_files(merged, temporary)
        else:
            merge_adapter(project, student, temporary)
        ensure_generation_config(temporary)
        write_model_card(temporary, project, run_dir, read_metrics(run_dir))
    return dest


def finished_run(run_dir: Path) -> Project:
    """The project of a run that finished (its metrics and its student are written), else one clear error."""
    from engine.runs.resume import project_of_run

    if not run_dir.is_dir():
        raise EngineError(f"{run_dir}: no such run folder")
    project = project_of_run(run_dir)
    layout = RunLayout.of(project, run_dir)
    if not (layout.metrics.exists() and is_saved_model(layout.student)):
        raise EngineError(f"{run_dir}: not a finished run (no {'metrics.json' if is_saved_model(layout.student) else 'student'}"
                          f" yet); finish it with `ctxdistill run --resume {run_dir}`, then export")
    return project


def copy_model_files(source: Path, target: Path) -> None:
    """The files of a model folder, without its subfolders (a LoRA student's `merged/`) and its old card."""
    for path in source.iterdir():
        if path.is_file() and path.name != CARD:
            shutil.copy2(path, target / path.name)


def merge_adapter(project: Project, student: Path, target: Path) -> None:
    """The adapter merged onto its base (engine/training/lora.py follows stacked stages back), saved in the base's dtype."""
    import torch

    from engine.models import load_model, local_source, resolve_model_path

    # Merged in float32 on the CPU (the engine's CPU precision), then stored as the base model stores its weights.
    model, tokenizer = load_model(replace(project.model, device="cpu", dtype="float32"), project.dir, path=str(student))
    base = Path(local_source(project.model.name, resolve_model_path(project.model.name, project.dir)))
    stored = json.loads((base / "config.json").read_text(encoding="utf-8"))
    dtype = getattr(torch, str(stored.get("dtype") or stored.get("torch_dtype") or "float32"), torch.float32)
    model.to(dtype).save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


def ensure_generation_config(folder: Path) -> None:
    """`generation_config.json` (the model's own, with the end-of-turn stop the run used; else the config's defaults)."""
    if (folder / "generation_config.json").exists():
        return
    from transformers import AutoConfig, GenerationConfig

    GenerationConfig.from_model_config(AutoConfig.from_pretrained(folder)).save_pretrained(folder)
