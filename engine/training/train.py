"""The distillation recipe: the student learns the teacher's answers without its context.

Reads top to bottom: setup -> loop -> checkpoint -> cleanup. The student starts
from the same weights as the teacher, sees the student prompt plus the teacher's
answer token ids, and minimizes the soft-label cross-entropy to the teacher's
stored sparse labels (paper equation 1, section 2.4).

Runs as one process or under `torchrun` / `accelerate launch` (data parallel, or FSDP with
accelerate's FSDP settings): `distill.batch_size` is the global batch, dealt out over the
processes, and the loss is normalized by the answer tokens of all of them, so N processes
train as one does (issue 19). Stopping (a `STOP` file in the run
folder, SIGTERM or SIGINT) is checked between steps and saves a checkpoint
first; `resume=True` continues from the newest checkpoint, on the same batches.

Examples of several operations (simultaneous distillation) are mixed by
`engine.training.batches.BatchPlan` and their losses weighted by `losses.weighted_by_operation`.

`distill.policy` = "on" or "mixed": the student samples (some of) its answers itself each
step and the teacher scores them (engine/training/on_policy.py); "off" is the paper's method.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import shutil
import signal
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from engine.runs import atomic
from engine.runs.atomic import building_folder
from engine.training.batches import BatchPlan
from engine.project.schema import Project
from engine.training.data import DistillExample, collate
from engine.errors import EngineError, StopRequested
from engine.training.student_forward import answer_cross_entropy, vocab_chunk_for
from engine.training import on_policy
from engine.training import lora
from engine.models import load_model, precision_problem, resolve_model_path
from engine.runs.processes import any_process, gathered, parallelism, parameter_bytes, training_accelerator

STOP_FILE = "STOP"
KEEP_CHECKPOINTS = 2


# --- small named pieces --------------------------------------------------------

def get_lr(step: int, total_steps: int, peak: float, warmup_steps: int) -> float:
    """Linear warmup, then cosine decay to 10% of the peak."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def total_steps_for(project: Project, num_examples: int) -> int:
    config = project.distill
    if config.max_steps:
        return config.max_steps
    per_step = config.batch_size * config.grad_accum  # the global batch, whatever the number of processes
    return config.epochs * max(1, math.ceil(num_examples / per_step))


def memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class StopSignal:
    """Turns SIGTERM/SIGINT and a STOP file into a flag checked between steps."""

    def __init__(self, run_dir: Path):
        self.stop_file = Path(run_dir) / STOP_FILE
        self.signalled = False
        self._previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside a UI worker)
                pass

    def _handle(self, signum, frame):
        self.signalled = True

    def requested(self) -> bool:
        return self.signalled or self.stop_file.exists()

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def complete_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """Checkpoints whose state file was written (the last thing a save writes), newest first."""
    found = sorted(checkpoints_dir.glob("step-*"), key=lambda path: int(path.name.split("-")[1]), reverse=True)
    return [path for path in found if (path / "trainer_state.json").exists()]


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    complete = complete_checkpoints(checkpoints_dir)
    return complete[0] if complete else None


def checkpoint_damage(folder: Path) -> str | None:
    """Why a complete-looking checkpoint cannot be trusted (a file shorter than when it was saved), or None."""
    state = json.loads((folder / "trainer_state.json").read_text())
    for name, size in state.get("files", {}).items():
        path = folder / name
        if not path.exists() or path.stat().st_size != size:
            return f"{name} is {path.stat().st_size if path.exists() else 'missing'} bytes, saved as {size}"
    return None


def save_checkpoint(accelerator: Accelerator, checkpoints_dir: Path, step: int, events) -> Path:
    folder = checkpoints_dir / f"step-{step}"
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()  # every process's files (its RNG state) are written before their sizes are taken
    if accelerator.is_main_process:
        # Written last: a checkpoint without trainer_state.json is incomplete and skipped on resume;
        # the sizes of its files tell a later truncation apart.
        files = {str(path.relative_to(folder)): path.stat().st_size for path in folder.rglob("*") if path.is_file()}
        atomic.write_text(folder / "trainer_state.json", json.dumps({"step": step, "files": files}))
        older = sorted(checkpoints_dir.glob("step-*"), key=lambda path: int(path.name.split("-")[1]))
        for stale in older[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(stale, ignore_errors=True)
        events.emit("checkpoint", step=step, path=str(folder))
    accelerator.wait_for_everyone()
    return folder


def resume_from_checkpoints(accelerator: Accelerator, checkpoints_dir: Path, events, load_kwargs: dict | None = None) -> int:
    """Load the newest intact checkpoint (a damaged one falls back to the one before it); returns its step, or 0."""
    for checkpoint in complete_checkpoints(checkpoints_dir):
        try:
            damage = checkpoint_damage(checkpoint)
            if damage:
                raise ValueError(damage)
            # Loads every piece (weights, optimizer, RNG states), so an older checkpoint fully replaces a failed one.
            accelerator.load_state(str(checkpoint), **(load_kwargs or {}))
        except Exception as error:
            events.emit("status", stage="train", message=f"checkpoint {checkpoint.name} is damaged "
                        f"({type(error).__name__}: {error}); trying the one before it")
            continue
        step = json.loads((checkpoint / "trainer_state.json").read_text())["step"]
        events.emit("status", stage="train", message=f"resumed from {checkpoint.name}", step=step)
        return step
    return 0


def micro_batch_counts(plan: BatchPlan, examples: list[DistillExample], micro_step: int, operations: int) -> torch.Tensor:
    """(operations,) answer tokens of the whole micro-batch `micro_step`, every process's share: the
    plan is a function of the step, so each process counts them alone, with no collective."""
    counts = torch.zeros(operations)
    for index in plan.micro_batch(micro_step):
        counts[examples[index].operation] += len(examples[index].label_ids)
    return counts


def on_policy_share(policy: str, fraction: float, count: int) -> int:
    """How many of a micro-batch's examples the student samples itself."""
    if policy == "mixed":
        return on_policy.on_policy_rows(count, fraction)
    return count if policy == "on" else 0


@contextlib.contextmanager
def scoring_teacher(student, frozen):
    """The model that scores on-policy answers: a frozen copy, or the LoRA student with its adapter off."""
    if frozen is not None:
        yield frozen
    else:
        with on_policy.adapter_off(student):
            yield student


def _base_reference(project: Project) -> str:
    """How a LoRA adapter names the project's model: `toy-base` or a hub id as written, a folder by its absolute path."""
    resolved = resolve_model_path(project.model.name, project.dir)
    return project.model.name if resolved == project.model.name or project.model.name == "toy-base" else resolved


# --- the recipe ---------------------------------------------------------------

def train(project: Project, examples: list[DistillExample], events, *, run_dir: Path, output_dir: Path,
          checkpoints_dir: Path, resume: bool = False, init_from: str | None = None,
          weights: list[float] | None = None, phase: str = "student", teacher_from: str | None = None) -> Path:
    """Distill into a fresh copy of the model (or of `init_from`); returns `output_dir`, the saved student.

    `init_from` starts from other weights than the project's model: the previous stage's
    student (sequential distillation) or the baselines' first phase. `weights` are the
    operations' weights (example.operation indexes them); `run_dir` holds the STOP file.
    `teacher_from`: the on-policy teacher's weights when not the project's model (a recursive stage).
    """
    config = project.distill
    weights = weights or [1.0]
    by_operation = [[example for example in examples if example.operation == index] for index in range(len(weights))]
    examples = [example for group in by_operation for example in group]  # grouped, as BatchPlan indexes them

    # --- setup
    mixed_precision = config.mixed_precision
    if mixed_precision == "auto":
        mixed_precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    accelerator = training_accelerator(mixed_precision, cpu=project.model.device == "cpu")
    problem = precision_problem(mixed_precision, accelerator.device, "distill.mixed_precision")
    if problem:
        raise EngineError(problem)
    if accelerator.distributed_type == DistributedType.DEEPSPEED and config.grad_accum > 1:
        # DeepSpeed steps and scales the loss by its own accumulation count; this loop does both itself.
        raise EngineError(f"`distill.grad_accum` = {config.grad_accum} under DeepSpeed: set it to 1 and raise "
                          "`distill.batch_size` instead")

    torch.manual_seed(config.seed)
    model, tokenizer = load_model(project.model, project.dir, path=init_from, device=accelerator.device)
    use_lora = lora.enabled(config.lora)
    if use_lora:
        # The base stays frozen in its dtype (one copy, e.g. bf16); the adapters train in fp32.
        model = lora.add_adapter(model, config.lora)
    elif mixed_precision != "no":
        model.float()  # master weights in fp32; autocast computes in bf16/fp16
    if config.gradient_checkpointing:
        model.config.use_cache = False
        if hasattr(model, "activation_checkpointing_enable"):  # the name transformers 5 moved to
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    # FSDP replaces the parameters by their shards: clipping must see those.
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    # LoRA: checkpoints hold the adapter and its optimizer state, never the frozen base (engine/training/lora.py).
    state_kwargs = lora.checkpoint_adapter_only(accelerator) if use_lora else {}
    if config.policy != "off" and accelerator.distributed_type == DistributedType.FSDP:
        # A sharded student gathers its weights in every forward pass, on all ranks together; ranks
        # sampling answers of different lengths would run different numbers of passes and wait forever.
        raise EngineError(f"`distill.policy` = \"{config.policy}\" under FSDP: each process samples its own answers, "
                          "and a sharded model must run every forward pass on all processes together; train "
                          "on-policy data-parallel (torchrun without the FSDP config) or in one process")
    frozen_teacher = None
    if config.policy != "off" and not (use_lora and init_from is None and teacher_from is None):
        # On-policy needs the teacher's weights beside the student's; a LoRA student over the
        # teacher's own weights needs no copy (its adapter off is the teacher).
        frozen_teacher, _ = load_model(project.model, project.dir, path=teacher_from, device=accelerator.device)
        frozen_teacher.requires_grad_(False)
    student_tokens = project.eval.max_new_tokens or project.generate.max_new_tokens

    world, rank = accelerator.num_processes, accelerator.process_index
    global_batch = config.batch_size
    if global_batch < world:  # a process without examples would have no loss to take part in the gradient average
        raise EngineError(f"`distill.batch_size` = {global_batch} is the global batch, dealt out over the {world} "
                          f"processes: raise it to at least {world}, or launch fewer processes")
    plan = BatchPlan([len(group) for group in by_operation], weights, global_batch, config.seed)
    loss_weights = torch.tensor(weights, dtype=torch.float32) if len(weights) > 1 else None
    total_steps = total_steps_for(project, len(examples))
    start_step = resume_from_checkpoints(accelerator, checkpoints_dir, events, state_kwargs) if resume else 0
    if resume and start_step == 0 and complete_checkpoints(checkpoints_dir):
        # Every checkpoint was damaged, and a failed load may have filled some weights: start over cleanly.
        initial, _ = load_model(project.model, project.dir, path=init_from, device=accelerator.device)
        if use_lora:
            torch.manual_seed(config.seed)
            initial = lora.add_adapter(initial, config.lora)
        accelerator.unwrap_model(model).load_state_dict(initial.state_dict())
        optimizer.optimizer.state.clear()
        del initial
    stop = StopSignal(run_dir)
    events.emit("status", stage="train", message=f"training {total_steps} steps on {len(examples)} examples"
                + (f", {config.policy}-policy ({config.divergence})" if config.policy != "off" else ""),
                total_steps=total_steps, device=str(accelerator.device), processes=world,
                parallelism=accelerator.distributed_type.value, distributed=parallelism(accelerator), world_size=world,
                parameter_bytes=[share["bytes"] for share in gathered(accelerator.state, {"bytes": parameter_bytes(model)})])

    # --- loop
    started = time.time()
    window_tokens, window_started = 0, time.time()
    timing = {"sample_s": 0.0, "score_s": 0.0, "train_s": 0.0}  # per step, over a log window (on-policy's cost)
    teacher_tokens = 0  # on-policy: tokens the teacher has scored so far in this process's run of the loop
    step = start_step
    try:
        while step < total_steps:
            if any_process(accelerator.state, stop.requested()):  # all processes stop at the same step
                save_checkpoint(accelerator, checkpoints_dir, step, events)
                raise StopRequested()
            lr = get_lr(step, total_steps, config.learning_rate, config.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss, step_kl = 0.0, 0.0
            for accumulation in range(config.grad_accum):
                micro_step = step * config.grad_accum + accumulation
                batch = [examples[i] for i in plan.micro_batch(micro_step, rank, world)]
                on_count = on_policy_share(config.policy, config.on_policy_fraction, len(batch))
                on_batch, off_batch = batch[:on_count], batch[on_count:]
                scored = None
                if on_batch:  # the student writes, the teacher grades (no gradient in either)
                    with scoring_teacher(accelerator.unwrap_model(model), frozen_teacher) as teacher, accelerator.autocast():
                        scored = on_policy.score_on_policy(
                            accelerator.unwrap_model(model), teacher, tokenizer, on_batch,
                            temperature=config.student_temperature, max_new_tokens=student_tokens,
                            stops=project.generate.stop, seed=(config.seed * 1_000_003 + micro_step) * 1009 + rank)
                    timing["sample_s"] += scored.sample_s
                    timing["score_s"] += scored.score_s
                    teacher_tokens += scored.teacher_tokens * world
                answer_tokens = [sum(len(e.label_ids) for e in off_batch), len(scored.positions) if scored else 0]
                # Off-policy: this process's answer tokens over those of the whole micro-batch (losses.over_positions),
                # so the processes' losses add up to the micro-batch's; on-policy keeps a mean per process.
                counts = micro_batch_counts(plan, examples, micro_step, len(weights)) if config.policy == "off" else None
                parts = 1 if counts is not None else world  # into how many parts the sum over processes splits a mean
                trained = time.perf_counter()
                # Data parallel: gradients are averaged across processes once, on the step's last backward.
                last = accumulation == config.grad_accum - 1
                if off_batch:
                    share = answer_tokens[0] / sum(answer_tokens)
                    input_ids, attention_mask, targets = collate(off_batch, tokenizer.pad_token_id)
                    with (contextlib.nullcontext() if last and not on_batch else accelerator.no_sync(model)), \
                            accelerator.autocast():
                        # The LM head runs at the answer positions only: the loss needs no other rows.
                        loss, kl = answer_cross_entropy(model, input_ids.to(accelerator.device),
                                                        attention_mask.to(accelerator.device), targets.to(accelerator.device),
                                                        loss_weights,
                                                        vocab_chunk=vocab_chunk_for(model, len(targets.positions), config.vocab_chunk),
                                                        counts=counts)
                        # The gradient average over processes (DDP, FSDP) divides by `world`: a sum needs it back.
                        accelerator.backward(loss * share * world / parts / config.grad_accum)
                    # Each process's part of the step's figures: summed over the processes below.
                    step_loss += loss.item() * share / config.grad_accum / parts
                    step_kl += kl.item() * share / config.grad_accum / parts
                    window_tokens += int(attention_mask.sum()) * world
                if on_batch:
                    share = answer_tokens[1] / sum(answer_tokens)
                    with (contextlib.nullcontext() if last else accelerator.no_sync(model)), accelerator.autocast():
                        loss, _ = on_policy.on_policy_loss(model, scored, loss_weights, config.divergence, config.jsd_beta)
                        accelerator.backward(loss * share / config.grad_accum)
                    step_loss += loss.item() * share / config.grad_accum / world
                    step_kl += loss.item() * share / config.grad_accum / world  # on the student's tokens the loss is the divergence
                    window_tokens += int(scored.attention_mask.sum()) * world
                timing["train_s"] += time.perf_counter() - trained
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            if step % config.log_every == 0 or step == total_steps:
                # Every process's part of the step's loss, not the main process's alone.
                figures = torch.tensor([step_loss, step_kl], device=accelerator.device)
                step_loss, step_kl = accelerator.reduce(figures, reduction="sum").tolist()
                now = time.time()
                elapsed = now - started
                done_here = step - start_step
                events.emit("train", stage="train", phase=phase, step=step, total_steps=total_steps,
                            loss=round(step_loss, 6), kl=round(step_kl, 6), lr=lr,
                            tokens_per_s=round(window_tokens / max(now - window_started, 1e-9), 1),
                            memory_mb=round(memory_mb(accelerator.device), 1),
                            elapsed_s=round(elapsed, 2),
                            eta_s=round(elapsed / done_here * (total_steps - step), 2),
                            epoch=round(step * config.grad_accum * global_batch / len(examples), 3),
                            **({"policy": config.policy, "teacher_tokens": teacher_tokens,
                                **{name: round(seconds / config.log_every, 4) for name, seconds in timing.items()}}
                               if config.policy != "off" else {}))
                window_tokens, window_started = 0, now
                timing = dict.fromkeys(timing, 0.0)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
                save_checkpoint(accelerator, checkpoints_dir, step, events)

        # --- cleanup: the student, loadable with from_pretrained
        accelerator.wait_for_everyone()
        # Every process takes part: under FSDP or DeepSpeed ZeRO-3 this gathers the sharded weights.
        state_dict = None if use_lora else accelerator.get_state_dict(model)
        if accelerator.is_main_process:
            # Built aside and renamed: a run killed while saving leaves no half student that resume would trust.
            with building_folder(output_dir) as temporary:
                if use_lora:  # the adapter, its base named (engine/training/lora.py), and `merged/` on request
                    base = init_from or _base_reference(project)
                    lora.save_student(accelerator.unwrap_model(model), Path(temporary), base, config.lora.merge)
                    if config.lora.merge:
                        tokenizer.save_pretrained(Path(temporary) / lora.MERGED_DIR)
                else:
                    accelerator.unwrap_model(model).save_pretrained(temporary, state_dict=state_dict,
                                                                    safe_serialization=True)
                tokenizer.save_pretrained(temporary)
        accelerator.wait_for_everyone()
        return output_dir
    finally:
        stop.restore()
        accelerator.free_memory()
