"""The teacher pass: sample completions, keep sparse soft labels, cache them on disk.

Soft labels are stored for *every* output position (not only the answer), so
changing the extractor or the student template reuses the cache: the key
hashes only what determines the teacher's outputs and labels (model, teacher
template, inputs, generation settings, label kind, seed).

Labels come from the teacher's softmax at temperature 1, conditioned on the
teacher prompt plus its own preceding tokens (paper section 2.4), whatever
temperature was used to sample the trajectory; engine/teacher/labels.py draws
them, a whole batch per step on the teacher's device.

A teacher ensemble (`teacher.ensemble = K`, paper hypothesis 5) renders K
teacher prompts per input, each drawing its own random subset of examples.
Averaging K distributions needs one shared answer, so the output is sampled
from the first rendering only; then the same output tokens are scored under
all K renderings (one forward pass each), the K softmaxes are averaged at
every output position, and the sparse labels are drawn from that average.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.runs import atomic
from engine.project.schema import Project
from engine.errors import EngineError, StopRequested
from engine.teacher.generation import Generated, generate_all, models_own_sampling
from engine.teacher.labels import BatchLabels, Labels, hard_labels, sampled_labels, seeded_generators, topk_labels, uniforms
from engine.runs.processes import any_process, gathered, shared, whoami
from engine.project.templates import apply_chat_template, render_student, render_system, render_teacher

# 3: labels drawn step by step, one generator per input, every batch reseeded (resumable);
# 4: sampled labels by inverse CDF from each input's uniforms, a batch at a time on the device.
CACHE_FORMAT = 4


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


def teacher_prompt(project: Project, tokenizer, example: dict, index: int = 0) -> str:
    """Teacher prompt `index` of the input's ensemble (the only one when `teacher.ensemble` = 1)."""
    prompt = render_teacher(project, example, index)
    if not project.model.chat_template:
        return prompt
    return apply_chat_template(tokenizer, prompt, render_system(project, "teacher", example, index))


def teacher_prompts(project: Project, tokenizer, example: dict) -> list[str]:
    """All `teacher.ensemble` prompts of one input. Random draws may coincide for one input, even all
    K of them (`shuffle` of 3 examples, K = 3: one input in 36), which only weights that draw more;
    a template that never varies is refused before the run, by rendering it (engine/checks.py)."""
    return [teacher_prompt(project, tokenizer, example, index) for index in range(project.teacher.ensemble)]


def student_prompt(project: Project, tokenizer, example: dict) -> str:
    prompt = render_student(project, example)
    if not project.model.chat_template:
        return prompt
    return apply_chat_template(tokenizer, prompt, render_system(project, "student", example))


def model_fingerprint(project: Project, folder: Path | None = None) -> list:
    """Names, sizes and modification times of the model's files: retrained weights in the
    same folder must not reuse stale labels (hashing gigabytes of weights would be too slow)."""
    from engine.models import resolve_model_path

    folder = Path(folder or resolve_model_path(project.model.name, project.dir))
    if not folder.is_dir():
        return []  # a hub id: its name pins the weights in the local cache
    return sorted((path.name, path.stat().st_size, int(path.stat().st_mtime))
                  for path in folder.iterdir() if path.suffix in (".safetensors", ".json"))


def cache_key(project: Project, inputs: list[dict], teacher_weights: Path | None = None, model=None) -> str:
    """A hash of everything that determines the teacher's outputs and labels.

    `teacher_weights`: a folder of other weights than the project's model (a recursive
    stage's teacher is the previous stage's student); its identity is part of the key.
    `model`, the loaded teacher: where and how it computes (device type, attention kernel,
    weights' dtype) changes the numerics, so the outputs; so does how inputs are batched
    (padding), so `generate.batch_size` and `max_batch_tokens` are in the key too.
    """
    determining = {
        "format": CACHE_FORMAT,
        "model": project.model.name, "weights": model_fingerprint(project), "dtype": project.model.dtype, "chat_template": project.model.chat_template,
        "teacher_template": project.teacher.template,
        "inputs": inputs,
        "generate": vars(project.generate),
        "labels": project.distill.labels,
        "num_samples": project.distill.num_samples if project.distill.labels == "sampled" else None,
        "top_k": project.distill.top_k if project.distill.labels == "topk" else None,
        "seed": project.distill.seed,
    }
    # Only when set, so the caches of projects written before these options stay valid.
    if project.teacher.ensemble > 1:
        determining["ensemble"] = project.teacher.ensemble
    if project.teacher.vars:
        determining["teacher_vars"] = project.teacher.vars
    if project.teacher.system:
        determining["teacher_system"] = project.teacher.system
    if model is not None:
        determining["computed_on"] = computed_on(model)
    if teacher_weights is not None:
        determining["teacher_weights"] = [str(Path(teacher_weights).resolve()), model_fingerprint(project, teacher_weights)]
    return hashlib.sha256(json.dumps(determining, sort_keys=True, default=str).encode()).hexdigest()[:16]


def computed_on(model) -> dict:
    """How the loaded teacher computes: what changes its numerics, so its samples."""
    parameter = next(model.parameters(), None)
    return {"device": model.device.type,
            "dtype": str(parameter.dtype) if parameter is not None else None,
            "attention": getattr(model.config, "_attn_implementation", None)}


def output_labels(probs: torch.Tensor, kind: str, num_samples: int, top_k: int, generator: torch.Generator) -> Labels:
    """Labels at every row of `probs` (positions, vocab), an already averaged distribution (an ensemble's)."""
    if kind == "topk":
        return topk_labels(probs, top_k)
    return sampled_labels(probs, uniforms([generator], len(probs), num_samples)[0])


def run_teacher(project: Project, model, tokenizer, inputs: list[dict], events=None, partial: Path | None = None,
                stop_requested=lambda: False, shard: tuple[int, int] = (0, 1)) -> list[TeacherRecord | None]:
    """Sample the teacher on every input and compute its sparse labels (averaged over an ensemble).

    Labels are drawn as the tokens are generated (no batch keeps its logits), each input
    from its own seeded generator, and every batch is reseeded: so the batches finished
    before a stop, kept in `partial`, are not generated again on resume, and the result
    is the same as an uninterrupted pass. `shard` = (rank, processes): only this process's
    batches (engine.teacher.generation.generate_all); the others' records are None.
    """
    config, distill = project.generate, project.distill
    ensembles = [teacher_prompts(project, tokenizer, example) for example in inputs]
    prompts = [prompts[0] for prompts in ensembles]
    generators = seeded_generators(distill.seed, len(inputs))
    single = project.teacher.ensemble == 1
    kept = KeptBatches(partial, distill.num_samples if distill.labels == "sampled" else None) if partial else None
    started = time.time()

    def batch_labels(indices: list[int]) -> BatchLabels:
        return BatchLabels(distill.labels, distill.num_samples, distill.top_k, [generators[index] for index in indices],
                           config.max_new_tokens)

    def on_batch(done: int, total: int):
        if events is not None:
            elapsed = time.time() - started
            events.emit("progress", step=done, total_steps=total, elapsed_s=round(elapsed, 2),
                        eta_s=round(elapsed / done * (total - done), 2), unit="inputs")
        if stop_requested():  # the batch is kept already: a resume continues after it
            raise StopRequested()

    def to_record(index: int, output: Generated) -> TeacherRecord:
        if distill.labels == "hard":
            labels = hard_labels(output.output_ids)
        elif single:
            labels = output.recorded
        else:
            averaged = ensemble_probs(model, tokenizer, ensembles[index], output.output_ids)
            labels = output_labels(averaged, distill.labels, distill.num_samples, distill.top_k, generators[index])
        return TeacherRecord(inputs[index], prompts[index], output.output_ids, output.text, *labels)

    return generate_all(
        model, tokenizer, prompts, batch_size=config.batch_size, max_batch_tokens=config.max_batch_tokens,
        on_batch=on_batch, on_output=to_record,
        which="teacher", max_new_tokens=config.max_new_tokens, temperature=config.temperature,
        top_p=config.top_p, top_k=config.top_k, stops=config.stop, seed=distill.seed,
        recorder_for=batch_labels if single and distill.labels != "hard" else None,
        reuse_prefix=config.reuse_prefix,
        finished_batch=kept.load if kept else None, on_batch_done=kept.save if kept else None, shard=shard)


class KeptBatches:
    """The finished batches of an interrupted teacher pass, one file each in `folder` (the cache's `partial/`)."""

    def __init__(self, folder: Path, num_samples: int | None):
        self.folder, self.num_samples = Path(folder), num_samples

    def _file(self, number: int) -> Path:
        return self.folder / f"batch-{number:06d}.pt"

    def save(self, number: int, indices: list[int], records: list[TeacherRecord]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        rows = [{"index": index, **_stored_labels(record, self.num_samples),
                 "input": json.dumps(record.input), "prompt": record.prompt, "output": record.text}
                for index, record in zip(indices, records)]
        with atomic.replacing(self._file(number)) as temporary:
            torch.save(rows, temporary)

    def load(self, number: int, indices: list[int]) -> list[TeacherRecord] | None:
        try:
            rows = torch.load(self._file(number), weights_only=True)
        except Exception:  # absent, or damaged by a kill: generate this batch again
            return None
        if [row["index"] for row in rows] != list(indices):
            return None
        return [TeacherRecord(json.loads(row["input"]), row["prompt"], list(row["output_ids"]), row["output"],
                              row["label_offsets"], row["label_ids"].long(), _stored_probs(row, self.num_samples))
                for row in rows]

    def count(self) -> int:
        return len(list(self.folder.glob("batch-*.pt"))) if self.folder.exists() else 0


@torch.no_grad()
def ensemble_probs(model, tokenizer, prompts: list[str], output_ids: list[int]) -> torch.Tensor:
    """(len(output_ids), vocab) on the model's device: the mean over `prompts` of the teacher's softmax
    at each output position."""
    if not output_ids:
        return torch.zeros(0, model.config.vocab_size, device=model.device)
    sequences = [tokenizer(prompt).input_ids for prompt in prompts]
    width = max(len(ids) for ids in sequences) + len(output_ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(sequences):
        full = ids + output_ids
        input_ids[row, : len(full)] = torch.tensor(full)
        attention_mask[row, : len(full)] = 1
    logits = model(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device)).logits
    total = torch.zeros(len(output_ids), logits.shape[-1], device=logits.device)
    for row, ids in enumerate(sequences):
        # The logits at position t predict token t + 1: output token j is predicted at len(prompt) - 1 + j.
        rows = logits[row, len(ids) - 1: len(ids) - 1 + len(output_ids)]
        total += torch.softmax(rows.float(), dim=-1)
    return total / len(prompts)


# --- the cache on disk -------------------------------------------------------

LABELS_FILE, OUTPUTS_FILE, KEY_FILE, PARTIAL_DIR = "labels.pt", "outputs.jsonl", "key.json", "partial"


def save_cache(folder: Path, key: str, records: list[TeacherRecord], seconds: float, num_samples: int | None = None) -> None:
    """Write the labels and outputs, then `key.json` with their checksums (a cache is whole only with it).

    Sampled labels are kept as counts (probability = count / N, computed the same way on
    load), so a run that reuses the cache trains on bit-identical labels.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(folder / LABELS_FILE) as temporary:
        torch.save([_stored_labels(record, num_samples) for record in records], temporary)
    atomic.write_text(folder / OUTPUTS_FILE, "".join(
        json.dumps({"input": r.input, "prompt": r.prompt, "output": r.text}) + "\n" for r in records))
    checksums = {name: atomic.sha256_of(folder / name) for name in (LABELS_FILE, OUTPUTS_FILE)}
    atomic.write_text(folder / KEY_FILE, json.dumps({"key": key, "count": len(records), "seconds": round(seconds, 2),
                                                     "num_samples": num_samples, "sha256": checksums}))


def _stored_labels(record: TeacherRecord, num_samples: int | None) -> dict:
    stored = {"output_ids": record.output_ids, "label_offsets": record.label_offsets, "label_ids": record.label_ids.int()}
    if num_samples:
        stored["label_counts"] = torch.round(record.label_probs * num_samples).short()
    else:
        stored["label_probs"] = record.label_probs.float()
    return stored


def load_cache(folder: Path) -> list[TeacherRecord]:
    meta = json.loads((folder / KEY_FILE).read_text())
    tensors = torch.load(folder / LABELS_FILE, weights_only=True)
    rows = [json.loads(line) for line in (folder / OUTPUTS_FILE).read_text(encoding="utf-8").splitlines()]
    if len(rows) != len(tensors) or len(rows) != meta.get("count", len(rows)):
        raise EngineError(f"{folder}: the teacher cache is cut short ({len(rows)} outputs, {len(tensors)} label sets, "
                          f"{meta.get('count')} expected); delete the folder to run the teacher again")

    return [TeacherRecord(row["input"], row["prompt"], list(t["output_ids"]), row["output"], t["label_offsets"],
                          t["label_ids"].long(), _stored_probs(t, meta.get("num_samples"))) for row, t in zip(rows, tensors)]


def _stored_probs(stored: dict, num_samples: int | None) -> torch.Tensor:
    if "label_counts" in stored:
        return stored["label_counts"].float() / num_samples
    return stored["label_probs"].float()  # float16 in caches written before counts were kept


def is_whole(folder: Path, key: str) -> bool:
    """A cache with this key whose files match the checksums written with it (never a partial or damaged copy)."""
    try:
        meta = json.loads((folder / KEY_FILE).read_text())
        if meta["key"] != key:
            return False
        checksums = meta.get("sha256")
        if checksums is None:  # written before checksums: trust only that both files are there
            return (folder / LABELS_FILE).exists() and (folder / OUTPUTS_FILE).exists()
        return all(atomic.sha256_of(folder / name) == digest for name, digest in checksums.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def find_cache(runs_dir: Path, key: str) -> Path | None:
    """A complete teacher cache with this key in any run of the project, newest first.

    A run holds its caches in `teacher/` (one operation, one stage) or in
    `stages/<stage>/teacher/<operation>/`.
    """
    if not runs_dir.exists():
        return None
    key_files = [*runs_dir.glob(f"*/teacher/{KEY_FILE}"), *runs_dir.glob(f"*/stages/*/teacher/*/{KEY_FILE}")]
    for key_file in sorted(key_files, key=lambda path: str(path.relative_to(runs_dir)), reverse=True):
        if is_whole(key_file.parent, key):
            return key_file.parent
    return None


def teacher_pass(project: Project, model, tokenizer, inputs: list[dict], folder: Path, runs_dir: Path, events,
                 teacher_weights: Path | None = None, stop_requested=lambda: False, state=None) -> list[TeacherRecord]:
    """Reuse a cached teacher pass with the same key from any run in `runs_dir`, or run it and cache it in `folder`.

    `state` (accelerate's PartialState) with several processes: every process calls this;
    the main one looks for a cache and writes the shared files, and on a miss each process
    generates its share of the batches (engine/runs/processes.py says how they agree).
    """
    from engine.models import model_problems

    problem = model_problems(project, model)  # before any work: precision and LoRA targets on this model
    if problem:
        raise EngineError(problem)
    main = state is None or state.is_main_process
    key = cache_key(project, inputs, teacher_weights, model)
    partial = folder / PARTIAL_DIR
    found = None
    if main:
        found = folder if is_whole(folder, key) else find_cache(runs_dir, key)
        if found is not None and found != folder:
            with atomic.building_folder(folder) as temporary:  # a kill mid-copy leaves no half cache behind
                shutil.copytree(found, temporary, dirs_exist_ok=True)
        if found is None:
            if partial.exists() and (partial / KEY_FILE).exists() and json.loads((partial / KEY_FILE).read_text()).get("key") != key:
                shutil.rmtree(partial)  # batches of another teacher (the project changed): never mixed in
            partial.mkdir(parents=True, exist_ok=True)
            atomic.write_text(partial / KEY_FILE, json.dumps({"key": key}))
    if state is not None:
        found = shared(state, found)  # also the barrier: the cache or `partial/` is in place for everyone
    if found is not None:
        events.emit("status", stage="teacher", message=f"teacher cache hit ({key}), no generation needed",
                    cache="hit", key=key, source=str(found))
        return load_cache(folder)
    num_samples = project.distill.num_samples if project.distill.labels == "sampled" else None
    resumed = KeptBatches(partial, num_samples).count()
    events.emit("status", stage="teacher", message=f"teacher generating {len(inputs)} outputs"
                + (f" ({resumed} batch(es) kept from the interrupted pass)" if resumed else ""), cache="miss", key=key)
    announce_sampling(project, model, events)
    started = time.time()
    if state is None or state.num_processes == 1:
        records = run_teacher(project, model, tokenizer, inputs, events, partial, stop_requested)
    else:
        records = sharded_teacher(project, model, tokenizer, inputs, events, partial, stop_requested, state)
    if main:
        save_cache(folder, key, records, time.time() - started, num_samples)
        shutil.rmtree(partial, ignore_errors=True)
    if state is not None and state.num_processes > 1:
        state.wait_for_everyone()  # the cache is written: the other processes read it
        if not main:
            records = load_cache(folder)
    return records


def announce_sampling(project: Project, model, events) -> None:
    """Record the settings the teacher samples with, and warn about the model's own ones that are off."""
    config = project.generate
    sampling = {"temperature": config.temperature, "top_p": config.top_p, "top_k": config.top_k,
                "max_new_tokens": config.max_new_tokens, "stop": list(config.stop)}
    ignored = models_own_sampling(model)
    message = "teacher samples with the project's [generate] settings only"
    if ignored:
        message += (" (the model's generation_config.json also sets " + ", ".join(f"{k} = {v}" for k, v in ignored.items())
                    + ": off, because the labels are the raw distribution the tokens must be drawn from)")
    events.emit("status", stage="teacher", message=message, sampling=sampling, model_settings_off=ignored)


def sharded_teacher(project: Project, model, tokenizer, inputs: list[dict], events, partial: Path, stop_requested,
                    state) -> list[TeacherRecord] | None:
    """Each process generates its share of the batches into `partial/`; the main process joins them.

    Returns every record on the main process, None on the others (they read the saved cache).
    """
    rank, world = state.process_index, state.num_processes
    stopped = False
    try:
        mine = run_teacher(project, model, tokenizer, inputs, events, partial, stop_requested, shard=(rank, world))
    except StopRequested:  # this process's finished batches are kept; stop only together with the others
        stopped, mine = True, []
    if any_process(state, stopped):
        raise StopRequested()
    work = gathered(state, {**whoami(state), "outputs": sum(record is not None for record in mine)})
    idle = [share["rank"] for share in work if share["outputs"] == 0]
    events.emit("status", stage="teacher", message=f"teacher pass split over {world} processes: "
                + ", ".join(f"rank {share['rank']} {share['outputs']} outputs" for share in work)
                # A batch is never split (the cache must be the 1-process cache): fewer batches than processes idle some.
                + (f"; rank {', '.join(map(str, idle))} had no batch: lower generate.batch_size or max_batch_tokens "
                   f"to make at least {world} batches (the cache key changes)" if idle else ""), ranks=work)
    if not state.is_main_process:
        return None
    # Every batch is kept in `partial/` now: this reads them in order and generates nothing
    # (a batch file lost in between would be generated again here, to the same result).
    return run_teacher(project, model, tokenizer, inputs, None, partial)
