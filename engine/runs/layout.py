"""Where each stage and operation keeps its files inside a run folder (the one place that knows).

A project with one operation and one stage keeps the layout it always had:

    teacher/  checkpoints/  student/  metrics.json  samples.jsonl

A project that declares operations or stages gets one folder per stage:

    stages/<stage>/teacher/<operation>/   one teacher cache per operation
    stages/<stage>/checkpoints/
    stages/<stage>/student/
    stages/<stage>/metrics.json           this stage's figures (written last: the stage is finished)
    student/                              the last stage's student
    metrics.json, samples.jsonl           every stage, and the overwrite matrix
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.runs.atomic import building_folder
from engine.project.schema import Project, Stage


@dataclass(frozen=True)
class RunLayout:
    run_dir: Path
    combined: bool

    @classmethod
    def of(cls, project: Project, run_dir: Path) -> "RunLayout":
        return cls(Path(run_dir), project.combined)

    def stage_dir(self, stage: Stage) -> Path:
        return self.run_dir / "stages" / stage.name if self.combined else self.run_dir

    def teacher_dir(self, stage: Stage, operation: str) -> Path:
        return self.stage_dir(stage) / "teacher" / operation if self.combined else self.run_dir / "teacher"

    def checkpoints_dir(self, stage: Stage) -> Path:
        return self.stage_dir(stage) / "checkpoints"

    def student_dir(self, stage: Stage) -> Path:
        return self.stage_dir(stage) / "student"

    def stage_metrics(self, stage: Stage) -> Path:
        return self.stage_dir(stage) / "metrics.json"

    def stage_samples(self, stage: Stage) -> Path:
        return self.stage_dir(stage) / "samples.jsonl"

    @property
    def student(self) -> Path:
        return self.run_dir / "student"

    @property
    def metrics(self) -> Path:
        return self.run_dir / "metrics.json"

    @property
    def samples(self) -> Path:
        return self.run_dir / "samples.jsonl"


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "adapter_model.safetensors", "adapter_model.bin")


def is_saved_model(folder: Path) -> bool:
    """A full model folder, or a LoRA student's adapter (engine/training/lora.py follows it back to its base),
    with its weights: a folder cut short (config.json, no weights) is never taken for a trained student."""
    folder = Path(folder)
    if not ((folder / "config.json").exists() or (folder / "adapter_config.json").exists()):
        return False
    if any((folder / name).is_file() for name in WEIGHT_FILES):
        return True
    for index in folder.glob("*.index.json"):  # sharded weights: every shard the index names
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return False
        return bool(shards) and all((folder / shard).is_file() for shard in shards)
    return False


def publish_student(source: Path, target: Path) -> None:
    """Make the last stage's student the run's `student/`: hard links where the disk allows (no second copy of the weights)."""
    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    with building_folder(target) as temporary:
        shutil.copytree(source, temporary, copy_function=link_or_copy, dirs_exist_ok=True)
