"""toy-learner's K-curve: exact match by number of worked examples, and the TRAINING.md that records it."""

from __future__ import annotations

import random
from pathlib import Path

from engine.toy import transforms
from engine.toy.decode import exact, generate


def evaluate_transforms(model, tokenizer, n: int, seed: int, shots: tuple[int, ...] = (0, 1, 2, 4, 8),
                        temperature: float = 0.0) -> dict[str, float]:
    """Exact match of toy-learner's tasks by number of worked examples (own seeded RNG).

    held_in@k / held_out@k: n prompts, the tasks of each set in turn, a fresh input
    and fresh examples per prompt; rule@k: held-in tasks with the rule line first.
    """
    rng = random.Random(seed)
    model.eval()
    results = {}
    cells = [("held_in", transforms.HELD_IN, False), ("held_out", transforms.HELD_OUT, False),
             ("rule", transforms.HELD_IN, True)]
    for k in shots:
        for cell, task_set, with_rule in cells:
            prompts, targets = [], []
            for i in range(n):
                task = task_set[i % len(task_set)]
                rows = [transforms.example(rng, task) for _ in range(k + 1)]
                prompts.append(transforms.prompt(task, rows[:-1], rows[-1]["input"], with_rule))
                targets.append(rows[-1]["label"])
            results[f"{cell}@{k}"] = exact(generate(model, tokenizer, prompts, 16, temperature), targets)
    model.train()
    return results


def transforms_table(curve: dict[str, float]) -> str:
    """Markdown K-curve of `evaluate_transforms`: one row per number of worked examples."""
    shots = sorted({int(key.split("@")[1]) for key in curve})
    head = ("| worked examples K | held-in tasks | held-out tasks | held-in, rule line first |\n"
            "|---|---|---|---|\n")
    return head + "\n".join(f"| {k} | {curve[f'held_in@{k}']:.3f} | {curve[f'held_out@{k}']:.3f} | "
                            f"{curve[f'rule@{k}']:.3f} |" for k in shots)


def write_learner_training_md(out: Path, args, argv: list[str], steps: int, wall: float, n_params: int,
                              curve: dict[str, float]) -> None:
    mb = (out / "model.safetensors").stat().st_size / 1e6
    origin = f"continued from `{args.init}`" if args.init else "pretrained from scratch"
    held_in = ", ".join(f"`{transforms.task_name(t)}`" for t in transforms.HELD_IN)
    held_out = ", ".join(f"`{transforms.task_name(t)}`" for t in transforms.HELD_OUT)
    (out / "TRAINING.md").write_text(f"""# {out.name}

A {n_params / 1e6:.2f}M-parameter character-level Llama ({mb:.1f} MB safetensors), {origin}
by `engine/toy/pretrain.py` (mixture `{args.mixture}`) on episodes of string transformations
(`engine/toy/transforms.py`): 1-9 worked examples of one held-in task in the few-shot format,
a third of them after the rule line that names the task.

Command (run from the repository root; `engine/toy/build_toy_learner.sh` runs it):

    python -m engine.toy.pretrain {' '.join(argv)}

- seed {args.seed}; batch {args.batch}; peak lr {args.lr}, warmup {args.warmup}, schedule {args.schedule};
  AdamW wd {args.weight_decay}
- steps trained: {steps} (step budget {args.steps}, time cap {args.minutes} min)
- wall time: {wall / 60:.1f} min of training with {args.threads} torch thread(s) on a 2-core CPU

held-in tasks ({len(transforms.HELD_IN)}): {held_in}

held-out tasks ({len(transforms.HELD_OUT)}, never in pretraining): {held_out}

## Exact match by number of worked examples ({args.eval_n} prompts per cell, greedy)

Each prompt: K fresh worked examples of a task, then a fresh query (tasks of the set in
turn); the answer is the first line. K = 0 is the bare student prompt `Input: x\\nOutput: `.
The last column puts the rule line (`transforms.rule_line`) before the examples.

{transforms_table(curve)}
""")
