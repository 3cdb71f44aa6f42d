"""The teacher pass: sample completions, keep sparse soft labels, cache them on disk.

Soft labels are stored for *every* output position (not only the answer), so
changing the extractor or the student template reuses the cache: the key
hashes only what determines the teacher's outputs and labels (model, teacher
template, inputs, generation settings, label kind, seed).

Labels come from the teacher's softmax at temperature 1, conditioned on the
teacher prompt plus its own preceding tokens (paper section 2.4), whatever
temperature was used to sample the trajectory.

| kind      | per position                                     |
| --------- | ------------------------------------------------ |
| `sampled` | unique ids and counts / N of N samples (paper)   |
| `topk`    | top-k ids and probabilities, renormalized        |
| `hard`    | the sampled token id with weight 1               |
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.config import Project
from engine.generation import Generated, generate_all
from engine.templates import apply_chat_template, render

CACHE_FORMAT = 2  # 2: labels sampled batch by batch


@dataclass
class TeacherRecord:
    """One teacher output with sparse labels at each of its positions."""

    input: dict
    prompt: str
    output_ids: list[int]
    text: str
    label_offsets: torch.Tensor  # (len(output_ids) + 1,) int64: labels of position j are [offsets[j], offsets[j+1])
    label_ids: torch.Tensor  # (total,) int64
    label_probs: torch.Tensor  # (total,) float32, summing to 1 per position


def teacher_prompt(project: Project, tokenizer, example: dict) -> str:
    prompt = render(project.teacher.template, "teacher", example)
    return apply_chat_template(tokenizer, prompt) if project.model.chat_template else prompt


def student_prompt(project: Project, tokenizer, example: dict) -> str:
    prompt = render(project.student.template, "student", example)
    return apply_chat_template(tokenizer, prompt) if project.model.chat_template else prompt


def model_fingerprint(project: Project) -> list:
    """Names, sizes and modification times of the model's files: retrained weights in the
    same folder must not reuse stale labels (hashing gigabytes of weights would be too slow)."""
    from engine.models import resolve_model_path

    folder = Path(resolve_model_path(project.model.name, project.dir))
    if not folder.is_dir():
        return []  # a hub id: its name pins the weights in the local cache
    return sorted((path.name, path.stat().st_size, int(path.stat().st_mtime))
                  for path in folder.iterdir() if path.suffix in (".safetensors", ".json"))


def cache_key(project: Project, inputs: list[dict]) -> str:
    determining = {
        "format": CACHE_FORMAT,
        "model": project.model.name, "weights": model_fingerprint(project), "dtype": project.model.dtype, "chat_template": project.model.chat_template,
        "teacher_template": project.teacher.template,
        "inputs": inputs,
        "generate": {k: v for k, v in vars(project.generate).items() if k != "batch_size"},
        "labels": project.distill.labels,
        "num_samples": project.distill.num_samples if project.distill.labels == "sampled" else None,
        "top_k": project.distill.top_k if project.distill.labels == "topk" else None,
        "seed": project.distill.seed,
    }
    return hashlib.sha256(json.dumps(determining, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sparse_labels(logits: torch.Tensor, generated_ids: list[int], kind: str, num_samples: int, top_k: int,
                  generator: torch.Generator):
    """logits: (positions, vocab) raw teacher logits -> (offsets, ids, probs) for those positions."""
    probs = torch.softmax(logits.float(), dim=-1)
    ids_per_position, probs_per_position = [], []
    if kind == "sampled":
        draws = torch.multinomial(probs, num_samples, replacement=True, generator=generator)
        for row in draws:
            unique, counts = torch.unique(row, return_counts=True)
            ids_per_position.append(unique)
            probs_per_position.append(counts.float() / num_samples)
    elif kind == "topk":
        values, indices = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        for row_values, row_indices in zip(values, indices):
            ids_per_position.append(row_indices)
            probs_per_position.append(row_values / row_values.sum())
    else:
        for token in generated_ids:
            ids_per_position.append(torch.tensor([token]))
            probs_per_position.append(torch.ones(1))
    lengths = torch.tensor([0] + [len(ids) for ids in ids_per_position])
    return (lengths.cumsum(0), torch.cat(ids_per_position).long() if ids_per_position else torch.zeros(0, dtype=torch.long),
            torch.cat(probs_per_position).float() if probs_per_position else torch.zeros(0))


def run_teacher(project: Project, model, tokenizer, inputs: list[dict], events=None) -> list[TeacherRecord]:
    """Sample the teacher on every input and compute its sparse labels."""
    config = project.generate
    prompts = [teacher_prompt(project, tokenizer, example) for example in inputs]
    torch.manual_seed(project.distill.seed)
    generator = torch.Generator().manual_seed(project.distill.seed)
    started = time.time()

    def on_batch(done: int, total: int):
        if events is not None:
            elapsed = time.time() - started
            events.emit("progress", step=done, total_steps=total, elapsed_s=round(elapsed, 2),
                        eta_s=round(elapsed / done * (total - done), 2), unit="inputs")

    def to_record(index: int, output: Generated) -> TeacherRecord:
        offsets, ids, probs = sparse_labels(output.logits, output.output_ids, project.distill.labels,
                                            project.distill.num_samples, project.distill.top_k, generator)
        return TeacherRecord(inputs[index], prompts[index], output.output_ids, output.text, offsets, ids, probs)

    records = generate_all(
        model, tokenizer, prompts, batch_size=config.batch_size, on_batch=on_batch, on_output=to_record,
        which="teacher", max_new_tokens=config.max_new_tokens, temperature=config.temperature,
        top_p=config.top_p, top_k=config.top_k, stops=config.stop, keep_logits=True)
    return records


# --- the cache on disk -------------------------------------------------------

LABELS_FILE, OUTPUTS_FILE, KEY_FILE = "labels.pt", "outputs.jsonl", "key.json"


def save_cache(folder: Path, key: str, records: list[TeacherRecord], seconds: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save([{"output_ids": r.output_ids, "label_offsets": r.label_offsets, "label_ids": r.label_ids.int(),
                 "label_probs": r.label_probs.half()} for r in records], folder / LABELS_FILE)
    with open(folder / OUTPUTS_FILE, "w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps({"input": record.input, "prompt": record.prompt, "output": record.text}) + "\n")
    # Written last: a cache without key.json is incomplete (the run was killed) and never reused.
    (folder / KEY_FILE).write_text(json.dumps({"key": key, "count": len(records), "seconds": round(seconds, 2)}))


def load_cache(folder: Path) -> list[TeacherRecord]:
    tensors = torch.load(folder / LABELS_FILE, weights_only=True)
    rows = [json.loads(line) for line in (folder / OUTPUTS_FILE).read_text(encoding="utf-8").splitlines()]
    return [TeacherRecord(row["input"], row["prompt"], list(t["output_ids"]), row["output"], t["label_offsets"],
                          t["label_ids"].long(), t["label_probs"].float()) for row, t in zip(rows, tensors)]


def find_cache(runs_dir: Path, key: str) -> Path | None:
    """A complete teacher cache with this key in any run of the project, newest first."""
    if not runs_dir.exists():
        return None
    for key_file in sorted(runs_dir.glob(f"*/teacher/{KEY_FILE}"), reverse=True):
        try:
            if json.loads(key_file.read_text())["key"] == key:
                return key_file.parent
        except (OSError, ValueError, KeyError):
            continue
    return None


def teacher_pass(project: Project, model, tokenizer, inputs: list[dict], run_dir: Path, events) -> list[TeacherRecord]:
    """Reuse a cached teacher pass with the same key, or run and cache it in `run_dir/teacher`."""
    key = cache_key(project, inputs)
    folder = run_dir / "teacher"
    found = find_cache(run_dir.parent, key)
    if found is not None and found != folder:
        shutil.copytree(found, folder, dirs_exist_ok=True)
    if (folder / KEY_FILE).exists():
        events.emit("status", stage="teacher", message=f"teacher cache hit ({key}), no generation needed",
                    cache="hit", key=key, source=str(found or folder))
        return load_cache(folder)
    events.emit("status", stage="teacher", message=f"teacher generating {len(inputs)} outputs", cache="miss", key=key)
    started = time.time()
    records = run_teacher(project, model, tokenizer, inputs, events)
    save_cache(folder, key, records, time.time() - started)
    return records
