"""The weights the Author preview may run instead of the base model (no Textual here).

"Try the student" (issue 12): a run's `student/`, a stage's `stages/<stage>/student/`,
or a training checkpoint `checkpoints/step-N/` (also under a stage). A student
folder loads like any model folder (`engine.models.load_model(path=...)`, through
the project's `model.name`); a checkpoint holds only the training state, so its
`model.safetensors` is loaded over the base model's weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ctxtui import runner

BASE = "base"


@dataclass(frozen=True)
class SavedModel:
    label: str  # short, for a picker: "0101T0000 student", "0101T0000 second step-4"
    path: Path
    kind: str  # "student" or "checkpoint"


def _step(folder: Path) -> int:
    try:
        return int(folder.name.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def saved_models(project_dir: Path) -> list[SavedModel]:
    """Every student and checkpoint of the project's runs, newest run first."""
    found = []
    for info in runner.list_runs(project_dir):
        run = info.run_dir
        short = run.name.split("-", 1)[0][4:13]  # 20260101T000000Z -> 0101T0000
        places = [(run, "")] + [(stage, f" {stage.name}") for stage in sorted((run / "stages").glob("*"))
                                if stage.is_dir()]
        for folder, stage in places:
            # A LoRA student without `merge = true` is an adapter only: its `merged/` is the loadable one.
            for student, suffix in ((folder / "student", ""), (folder / "student" / "merged", " merged")):
                if (student / "config.json").exists():
                    found.append(SavedModel(f"{short}{stage} student{suffix}", student, "student"))
            for checkpoint in sorted((folder / "checkpoints").glob("step-*"), key=_step, reverse=True):
                if (checkpoint / "model.safetensors").exists():
                    found.append(SavedModel(f"{short}{stage} {checkpoint.name}", checkpoint, "checkpoint"))
    return found


def project_for(project, saved: SavedModel | None):
    """`project` with its model replaced by a saved student folder (a checkpoint keeps the base model)."""
    if saved is None or saved.kind != "student":
        return project
    return dataclasses.replace(project, model=dataclasses.replace(project.model, name=str(saved.path)))


def load_session(project, saved: SavedModel | None):
    """A `PreviewSession` on the base model, a saved student, or a checkpoint's weights."""
    from engine.errors import EngineError
    from engine.preview import PreviewSession

    session = PreviewSession(project_for(project, saved))
    if saved is not None and saved.kind == "checkpoint":
        from safetensors.torch import load_file

        state = load_file(str(saved.path / "model.safetensors"), device=str(session.model.device))
        missing, unexpected = session.model.load_state_dict(state, strict=False)
        tied = {"lm_head.weight"} if getattr(session.model.config, "tie_word_embeddings", False) else set()
        if unexpected or set(missing) - tied:
            raise EngineError(f"{saved.path} does not fit the project's model ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected tensors): was the run made with another model or LoRA?")
    return session
