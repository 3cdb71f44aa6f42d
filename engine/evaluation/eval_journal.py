"""An evaluation's finished batches, kept so that a resume after a stop continues where it stopped.

Evaluation decodes greedily, so a batch's outputs depend only on the weights, the
prompts and how they are batched. Each decode of a stage (the teacher, the student
before, after, a baseline... for each operation) keeps its finished batches in the
stage's `eval-progress/<decode>/`, beside a fingerprint of what they depend on. A
resume whose decode has the same fingerprint loads those batches instead of decoding
them again (as the teacher pass does with its `partial/`); any other fingerprint (a
resume that took a new `eval.batch_size` or `eval.max_new_tokens`) starts that decode
afresh. The folder goes once the stage's metrics are written.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import torch

from engine.runs import atomic
from engine.teacher.generation import Generated

PROGRESS_DIR, KEY_FILE = "eval-progress", "key.json"


class EvalJournal:
    """The kept batches of every decode of one stage's evaluation, under `stage_dir/eval-progress/`."""

    def __init__(self, stage_dir: Path):
        self.folder = Path(stage_dir) / PROGRESS_DIR

    def kept_batches(self) -> int:
        """Batches kept from an evaluation stopped earlier (0 for a fresh one)."""
        return len(list(self.folder.glob("*/batch-*.pt"))) if self.folder.exists() else 0

    def decode(self, name: str, fingerprint: dict) -> "KeptOutputs":
        """The kept batches of the decode `name`, emptied first when they were made under another fingerprint."""
        folder = self.folder / re.sub(r"[^\w.-]", "_", name)
        key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
        key_file = folder / KEY_FILE
        if folder.exists() and (not key_file.exists() or json.loads(key_file.read_text()).get("key") != key):
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_text(key_file, json.dumps({"key": key, "fingerprint": fingerprint}))
        return KeptOutputs(folder)

    def finish(self) -> None:
        """The stage's metrics are written: nothing is left to continue."""
        shutil.rmtree(self.folder, ignore_errors=True)


class KeptOutputs:
    """One decode's finished batches, one file each: `generate_all`'s `finished_batch` and `on_batch_done`."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _file(self, number: int) -> Path:
        return self.folder / f"batch-{number:06d}.pt"

    def save(self, number: int, indices: list[int], results: list[Generated]) -> None:
        rows = [{"index": index, "prompt_ids": result.prompt_ids, "output_ids": result.output_ids, "text": result.text}
                for index, result in zip(indices, results)]
        with atomic.replacing(self._file(number)) as temporary:
            torch.save(rows, temporary)

    def load(self, number: int, indices: list[int]) -> list[Generated] | None:
        try:
            rows = torch.load(self._file(number), weights_only=True)
        except Exception:  # absent, or cut short by a kill: decode this batch again
            return None
        if [row["index"] for row in rows] != list(indices):
            return None
        return [Generated(list(row["prompt_ids"]), list(row["output_ids"]), row["text"]) for row in rows]
