"""Gradient descent on the K worked examples (paper 3.2, hypothesis 4), as appendix B.5 ran it.

B.5: "we fit all training examples into a single batch and train for 25 epochs using
the AdamW optimizer with a learning rate of 1e-5. We report the performance of the
epoch with the highest average exact set match score." So an epoch is one step on one
batch of the K examples, and after each epoch the held-out inputs are decoded greedily
(student template) and scored; the best epoch is the model kept.

`baselines.budget`:
- "paper": B.5 exactly: 25 epochs at lr 1e-5, constant.
- "equal-compute": as many epochs as the distillation has steps (a batch of 32 drawn from
  K examples has the gradient of the one batch of K), at each learning rate of a small
  grid; the best (learning rate, epoch) on the held-out inputs is kept. Decoding every
  epoch of a long run would cost more than the training, so it is scored at about 25
  evenly spaced epochs per learning rate, the last included.

Both select on the held-out inputs they are then scored on, as the paper did: an upper
bound on what gradient descent would reach with a separate validation set. What was
tried and chosen is written beside the model (`selection.json`) and lands in the
stage's metrics as `baselines_selection`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from engine.project.schema import Project

PAPER_EPOCHS = 25
PAPER_LEARNING_RATE = 1e-5
EQUAL_COMPUTE_LEARNING_RATES = (1e-5, 1e-4, 1e-3)
SCORED_EPOCHS = 25  # per learning rate, under equal compute
SELECTION_FILE = "selection.json"


def plan(project: Project, distill_steps: int) -> tuple[list[float], int, list[int]]:
    """(learning rates, epochs, the epochs scored) for `baselines.budget`."""
    if project.baselines.budget == "paper":
        return [PAPER_LEARNING_RATE], PAPER_EPOCHS, list(range(1, PAPER_EPOCHS + 1))
    epochs = max(1, distill_steps)
    every = max(1, epochs // SCORED_EPOCHS)
    scored = sorted(set(range(every, epochs + 1, every)) | {epochs})
    return list(EQUAL_COMPUTE_LEARNING_RATES), epochs, scored


def one_batch(examples, pad_id: int) -> dict[str, torch.Tensor]:
    """The K worked examples as one right-padded batch; loss only on the answers (-100 elsewhere)."""
    width = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, -100)
    for row, example in enumerate(examples):
        ids = torch.tensor(example.input_ids)
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
        labels[row, example.answer_start: len(ids)] = ids[example.answer_start:]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def selection_metric(project: Project) -> str:
    """Exact match, as B.5 selects by, when the project scores it; else its first metric (the others break ties)."""
    metrics = [metric for metric in project.eval.metrics if metric != "answer_kl"]
    return next((metric for metric in ("exact_match", "exact_match_normalized") if metric in metrics), metrics[0])


def selection_rank(figures: dict[str, float], metric: str) -> tuple:
    """B.5's metric first; the project's other metrics, in order, break its ties (exact match is often 0 at toy scale)."""
    return (figures[metric], *(value for name, value in figures.items() if name != metric))


def train_examples_baseline(project: Project, examples, held_out: list[dict], output_dir: Path, events,
                            distill_steps: int) -> Path:
    """Fit `examples` (hard targets, engine/evaluation/baselines.py) in one batch per epoch; save the best epoch."""
    from engine.evaluation.evaluate import decode, score
    from engine.models import load_model
    from engine.training import lora

    learning_rates, epochs, scored = plan(project, distill_steps)
    metric = selection_metric(project)
    labels = [example.get("label") for example in held_out]
    if any(label is None for label in labels):
        # Nothing to select by before the teacher is decoded on them: the last epoch at the first rate.
        learning_rates, scored = learning_rates[:1], []
    references = [str(label).strip() if label is not None else "" for label in labels]
    extra = [[str(item) for item in example.get("references") or []] for example in held_out]
    curve, best, best_rank, best_state = [], None, None, None
    events.emit("status", stage="train", message=f"baseline examples ({project.baselines.budget} budget): "
                f"{len(examples)} worked examples in one batch, {epochs} epochs at lr {', '.join(map(str, learning_rates))}; "
                f"{metric} on {len(held_out)} held-out inputs after {len(scored)} of the epochs")
    for learning_rate in learning_rates:
        torch.manual_seed(project.distill.seed)
        model, tokenizer = load_model(project.model, project.dir)
        if lora.enabled(project.distill.lora):
            model = lora.add_adapter(model, project.distill.lora)
        else:
            model.float()
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        batch = {key: value.to(model.device) for key, value in one_batch(examples, pad_id).items()}
        trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=project.distill.weight_decay)
        phase = "baselines/examples" if len(learning_rates) == 1 else f"baselines/examples@lr{learning_rate:g}"
        started = time.time()
        for epoch in range(1, epochs + 1):
            model.train()
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            events.emit("train", stage="train", phase=phase, step=epoch, total_steps=epochs, epoch=epoch,
                        loss=round(loss.item(), 6), lr=learning_rate, elapsed_s=round(time.time() - started, 2))
            if epoch not in scored:
                if not scored and epoch == epochs:
                    best = {"learning_rate": learning_rate, "epoch": epoch, metric: None}
                continue
            model.eval()
            answers = [d.answer for d in decode(project, model, tokenizer, held_out, "student")]
            figures = score(project, answers, references, labels, extra)
            curve.append({"learning_rate": learning_rate, "epoch": epoch, **figures})
            rank = selection_rank(figures, metric)
            if best is None or rank > best_rank:  # the earlier epoch wins a tie
                best, best_rank = curve[-1], rank
                best_state = {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}
        if learning_rate != learning_rates[-1]:
            del model, optimizer
    if best_state is not None:
        model.load_state_dict(best_state)
    chosen = {"budget": project.baselines.budget, "metric": metric, "learning_rate": best["learning_rate"],
              "best_epoch": best["epoch"], "epochs": epochs, "examples": len(examples), "scored": best[metric],
              "curve": curve}
    events.emit("status", stage="train", message=f"baseline examples: best epoch {best['epoch']} of {epochs} at lr "
                f"{best['learning_rate']:g} ({metric} {best[metric]} on the held-out inputs)",
                baseline="examples", best_epoch=best["epoch"], learning_rate=best["learning_rate"])
    save(project, model, tokenizer, output_dir, chosen)
    return output_dir


def save(project: Project, model, tokenizer, output_dir: Path, chosen: dict) -> None:
    from engine.runs.atomic import building_folder
    from engine.training import lora
    from engine.training.train import _base_reference

    with building_folder(output_dir) as temporary:
        if lora.enabled(project.distill.lora):
            lora.save_student(model, Path(temporary), _base_reference(project), project.distill.lora.merge)
            if project.distill.lora.merge:
                tokenizer.save_pretrained(Path(temporary) / lora.MERGED_DIR)
        else:
            model.save_pretrained(temporary, safe_serialization=True)
        tokenizer.save_pretrained(temporary)
        (Path(temporary) / SELECTION_FILE).write_text(json.dumps(chosen, indent=2))


def read_selection(folder: Path) -> dict | None:
    """What `train_examples_baseline` chose (None for a model saved without it)."""
    path = Path(folder) / SELECTION_FILE
    return json.loads(path.read_text()) if path.exists() else None
