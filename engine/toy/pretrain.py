"""Pretrain the embedded toy models on the synthetic tasks in `tasks.py`.

    python -m engine.toy.pretrain --out engine/toy/toy-base --seed 0 --minutes 40
    python -m engine.toy.pretrain --mixture icl --init engine/toy/toy-base --out engine/toy/toy-icl ...

`--mixture base` is toy-base's (instructed tasks, scratch-pad addition);
`--mixture icl` adds few-shot prompts; `--mixture transforms` is toy-learner's
episodes of string transformations (engine/toy/TRAINING.md has the formats and
the exact commands of the three models).

Readable on purpose: one loop, freshly generated examples every step (no
dataset to store, no epoch to overfit), loss only on the completion (the
prompt's input word/numbers are random, there is nothing to learn in them).

The learning rate follows warmup + cosine over the run's progress, where
progress = max(step / --steps, elapsed / --minutes): whichever budget runs out
first, the schedule has annealed by then. With a --steps budget that binds
before the time limit the run is fully determined by --seed.

The output folder gets a checkpoint every --save-every-minutes, so an
interrupted run still leaves a loadable model, and at the end the final model,
tokenizer, generation_config and a TRAINING.md with measured accuracies.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch
from transformers import GenerationConfig

from engine.toy import tasks, transforms
from engine.toy.decode import exact as _exact, generate
from engine.toy.learner_report import evaluate_transforms, write_learner_training_md
from engine.toy.model import build_toy_model
from engine.toy.tokenizer import build_char_tokenizer

# Mixture weights. 4-digit scratch-pad addition is what the sample project's
# teacher must do reliably, so it gets the most weight; the direct form is
# shown ONLY for 1-2 digits (format familiar, 4-digit direct sums unknown).
# The instruction-less "Input: x\nOutput: " prompt never appears.
MIXTURE: dict[tuple, float] = {
    **{("instruction", name): 1.0 for name in tasks.INSTRUCTION_TASKS},
    ("scratchpad", 1): 0.15,
    ("scratchpad", 2): 0.3,
    ("scratchpad", 3): 0.6,
    ("scratchpad", 4): 2.5,
    ("scratchpad", 5): 0.6,
    ("scratchpad", 6): 0.3,
    ("direct", 1): 0.4,
    ("direct", 2): 0.6,
}


# toy-icl's mixtures. A few-shot component is ("fewshot", family, least, most):
# sequences of `least`-`most` worked examples (tasks.fewshot_prompt) of one
# instruction task to infer, or of one letter substitution (a fresh key per
# sequence) to look up. A few-shot sequence is trained on every token, so each
# one teaches every number of examples from 0 to its length - 1, and the model
# also learns to invent new inputs (the `fewshot` input source samples them).
#
# Three phases (engine/toy/TRAINING.md, "Building toy-icl"): the lookup (an
# induction head) appeared only on data that is nearly all substitutions, at a
# constant learning rate; a cosine schedule that decays before it appears, or a
# mixture with toy-base's tasks, never found it on the CPU budget.
# 1. `lookup-warmup`: substitutions of 2-10 examples (99.6% of the sequences),
# 2. `substitution`: long ones (8-16 examples: most substitutes in a sequence are
#    revealed, so the lookup pays on most of them),
# 3. `icl`: toy-base's skills back (20% of the sequences), instruction tasks
#    inferred from examples, and substitutions of 2-14 examples.
LOOKUP_WARMUP_MIXTURE: dict[tuple, float] = {
    **{kind: 0.2 * weight / sum(MIXTURE.values()) for kind, weight in MIXTURE.items()},
    ("fewshot", "instruction", 2, 10): 0.2,
    ("fewshot", "substitution", 2, 10): 100.0,
}
# 16 examples of 4 letters run past the 512 positions a prompt may use; training
# on them is harmless (rotary positions) and no prompt of a project is that long.
SUBSTITUTION_MIXTURE: dict[tuple, float] = {("fewshot", "substitution", 8, 16): 1.0}
ICL_MIXTURE: dict[tuple, float] = {
    **{kind: 0.2 * weight / sum(MIXTURE.values()) for kind, weight in MIXTURE.items()},
    ("fewshot", "instruction", 2, 10): 0.3,
    ("fewshot", "substitution", 2, 14): 0.5,
}
# toy-learner's (engine/toy/transforms.py): episodes of 1-9 worked examples of one
# held-in string transformation, a third of them after the rule line that names it.
TRANSFORMS_MIXTURE: dict[tuple, float] = {("transforms", 1, 9, 1 / 3): 1.0}
MIXTURES = {"base": MIXTURE, "lookup-warmup": LOOKUP_WARMUP_MIXTURE, "substitution": SUBSTITUTION_MIXTURE,
            "icl": ICL_MIXTURE, "transforms": TRANSFORMS_MIXTURE}


def fewshot_sequence(rng: random.Random, family: str, least: int = 2, most: int = 10) -> str:
    """A whole few-shot text: `least`-`most` examples of one task (or one substitution
    key), the last of them as the query and its answer."""
    n = rng.randint(least, most)
    if family == "instruction":
        task = rng.choice(list(tasks.INSTRUCTION_TASKS))
        rows = [tasks.instruction_example(rng, task) for _ in range(n)]
    else:
        key = tasks.random_key(rng)
        rows = [tasks.substitution_example(rng, key) for _ in range(n)]
    return tasks.fewshot_prompt(rows[:-1], rows[-1]["input"]) + rows[-1]["label"] + "\n"


def sample_example(rng: random.Random, kind: tuple) -> tuple[str, str]:
    """One (prompt, completion) pair of the given mixture component."""
    family, arg, *example_range = kind
    if family == "fewshot":
        return "", fewshot_sequence(rng, arg, *example_range)  # empty prompt: the loss covers every token
    if family == "instruction":
        x = tasks.random_word(rng)
        return tasks.instruction_prompt(arg, x), tasks.instruction_completion(arg, x)
    a, b = tasks.random_number(rng, arg), tasks.random_number(rng, arg)
    if family == "scratchpad":
        return tasks.scratchpad_prompt(a, b), tasks.scratchpad_completion(a, b)
    return tasks.direct_addition_prompt(a, b), tasks.direct_addition_completion(a, b)


def encode_example(rng: random.Random, tokenizer, mixture: dict[tuple, float] = MIXTURE
                   ) -> tuple[list[int], list[int]]:
    """One mixture example as (input ids, labels); labels are -100 on the prompt,
    so the loss covers only completion + EOS."""
    kind = rng.choices(list(mixture), weights=list(mixture.values()))[0]
    if kind[0] == "transforms":
        least, most, rule_share = kind[1:]
        pieces = transforms.episode(rng, rng.choice(transforms.HELD_IN), rng.randint(least, most),
                                    with_rule=rng.random() < rule_share)
        ids, labels = [], []
        for text, trained in pieces:
            piece = tokenizer(text, add_special_tokens=False).input_ids
            ids += piece
            labels += piece if trained else [-100] * len(piece)
        return ids + [tokenizer.eos_token_id], labels + [tokenizer.eos_token_id]
    prompt, completion = sample_example(rng, kind)
    p = tokenizer(prompt, add_special_tokens=False).input_ids
    c = tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    return p + c, [-100] * len(p) + c


def collate(rows: list[tuple[list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest row; padding is masked out of attention and loss."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    attention_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def make_batch(rng: random.Random, tokenizer, batch_size: int,
               mixture: dict[tuple, float] = MIXTURE) -> dict[str, torch.Tensor]:
    """A batch of fresh random examples."""
    return collate([encode_example(rng, tokenizer, mixture) for _ in range(batch_size)],
                   tokenizer.pad_token_id)


def length_bucketed_batches(rng: random.Random, tokenizer, batch_size: int,
                            mixture: dict[tuple, float] = MIXTURE, group: int = 8):
    """Endless batches; each draws `group` batches' worth of examples, sorts them by
    length and cuts them into batches, so little compute is spent on padding
    (lengths range from ~30 to ~120 characters, few-shot sequences up to ~420)."""
    while True:
        rows = sorted((encode_example(rng, tokenizer, mixture) for _ in range(batch_size * group)),
                      key=lambda r: len(r[0]))
        batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
        rng.shuffle(batches)
        for b in batches:
            yield collate(b, tokenizer.pad_token_id)


# --- evaluation --------------------------------------------------------------

def evaluate(model, tokenizer, n: int, seed: int, temperature: float = 0.0) -> dict[str, float]:
    """Exact-match accuracy per task on n fresh examples each (own seeded RNG)."""
    rng = random.Random(seed)
    model.eval()
    results = {}
    for name in tasks.INSTRUCTION_TASKS:
        words = [tasks.random_word(rng) for _ in range(n)]
        outs = generate(model, tokenizer, [tasks.instruction_prompt(name, x) for x in words], 24,
                        temperature)
        results[name] = _exact(outs, [tasks.instruction_completion(name, x) for x in words])
    pairs = [tasks.addition_inputs(rng, 4) for _ in range(n)]
    outs = generate(model, tokenizer, [tasks.scratchpad_prompt(p["a"], p["b"]) for p in pairs], 80,
                    temperature)
    results["scratchpad4"] = sum(tasks.scratchpad_answer(o) == p["label"]
                                 for o, p in zip(outs, pairs)) / n
    outs = generate(model, tokenizer, [tasks.direct_addition_prompt(p["a"], p["b"]) for p in pairs],
                    10, temperature)
    results["direct4"] = _exact(outs, [p["label"] + "\n" for p in pairs])
    # The distilled student's prompt: no instruction. Scored against "reverse"
    # to show the model cannot tell what is wanted before distillation.
    words = [tasks.random_word(rng) for _ in range(n)]
    outs = generate(model, tokenizer, [tasks.bare_prompt(x) for x in words], 24, temperature)
    results["bare_reverse"] = _exact(outs, [x[::-1] + "\n" for x in words])
    model.train()
    return results


def evaluate_icl(model, tokenizer, n: int, seed: int, shots: tuple[int, ...] = (0, 2, 4, 8),
                 temperature: float = 0.0) -> dict[str, float]:
    """In-context accuracy by number of worked examples in the prompt (own seeded RNG).

    tasks@k: an instruction task inferred from k examples (the six tasks in turn),
    exact match. subst@k: a letter substitution with a fresh key per prompt, exact
    match of the whole answer; subst_pairs@k: the fraction of its letter pairs right.
    """
    rng = random.Random(seed)
    names = list(tasks.INSTRUCTION_TASKS)
    model.eval()
    results = {}
    for k in shots:
        rows = [[tasks.instruction_example(rng, names[i % len(names)]) for _ in range(k + 1)]
                for i in range(n)]
        outs = generate(model, tokenizer, [tasks.fewshot_prompt(r[:-1], r[-1]["input"]) for r in rows],
                        24, temperature)
        results[f"tasks@{k}"] = _exact(outs, [r[-1]["label"] for r in rows])
        keys = [tasks.random_key(rng) for _ in range(n)]
        rows = [[tasks.substitution_example(rng, key) for _ in range(k + 1)] for key in keys]
        outs = generate(model, tokenizer, [tasks.fewshot_prompt(r[:-1], r[-1]["input"]) for r in rows],
                        24, temperature)
        results[f"subst@{k}"] = _exact(outs, [r[-1]["label"] for r in rows])
        results[f"subst_pairs@{k}"] = sum(tasks.letters_correct(o, r[-1]["label"])
                                          for o, r in zip(outs, rows)) / n
    model.train()
    return results


def _fmt(acc: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in acc.items())


# --- saving ------------------------------------------------------------------

def save(model, tokenizer, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=96)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(out)


def icl_table(greedy: dict, sampled: dict) -> str:
    """Markdown table of `evaluate_icl` results: one row per number of examples."""
    shots = sorted({int(k.split("@")[1]) for k in greedy})
    head = "| examples in the prompt | tasks (greedy) | subst (greedy) | subst_pairs (greedy) | tasks (T=1) | subst (T=1) | subst_pairs (T=1) |\n|---|---|---|---|---|---|---|\n"
    return head + "\n".join(
        f"| {k} | " + " | ".join(f"{d[f'{m}@{k}']:.3f}" for d in (greedy, sampled)
                                for m in ("tasks", "subst", "subst_pairs")) + " |" for k in shots)


def write_training_md(out: Path, args, argv: list[str], steps: int, wall: float, n_params: int,
                      greedy: dict, sampled: dict, icl_greedy: dict | None = None,
                      icl_sampled: dict | None = None) -> None:
    table = "\n".join(f"| {k} | {greedy[k]:.3f} | {sampled[k]:.3f} |" for k in greedy)
    mb = (out / "model.safetensors").stat().st_size / 1e6
    origin = f"continued from `{args.init}`" if args.init else "pretrained from scratch"
    icl = "" if icl_greedy is None else f"""
## In-context accuracy ({args.eval_n} fresh prompts per cell; formats in engine/toy/TRAINING.md)

{icl_table(icl_greedy, icl_sampled)}
"""
    (out / "TRAINING.md").write_text(f"""# {out.name}

A {n_params / 1e6:.2f}M-parameter character-level Llama ({mb:.1f} MB safetensors),
{origin} by `engine/toy/pretrain.py` (mixture `{args.mixture}`) on synthetic tasks (`engine/toy/tasks.py`).

Command (run from the repository root):

    python -m engine.toy.pretrain {' '.join(argv)}

- seed: {args.seed}
- size: {'that of the --init model' if args.init else f'hidden {args.hidden}, {args.layers} layers, {args.heads} heads'}
- batch {args.batch}, peak lr {args.lr}, warmup {args.warmup}, AdamW wd {args.weight_decay}
- steps trained: {steps} (time budget {args.minutes} min, step budget {args.steps})
- wall time: {wall / 60:.1f} min with {args.threads} torch thread(s), on a 2-core CPU shared with other jobs

Prompts are encoded without BOS; each training sequence is prompt + completion + EOS,
with loss only on completion + EOS.

## Accuracy ({args.eval_n} fresh examples per task, exact match)

| task | greedy | sampled, temperature 1.0 |
|---|---|---|
{table}

- instruction tasks (reverse ... count): prompt `"<instruction>\\nInput: x\\nOutput: "`.
- scratchpad4: 4-digit `"Add with steps: a+b\\n"`, the number on the `Answer:` line.
- direct4: 4-digit `"Add: a+b\\nAnswer: "` (never pretrained on for more than 2 digits).
- bare_reverse: `"Input: x\\nOutput: "` with no instruction (never pretrained on by the base
  mixture; the icl mixture shows it as a few-shot prompt with 0 examples), scored as reverse.
{icl}""")


# --- training ----------------------------------------------------------------

def learning_rate_decay(schedule: str, progress: float) -> float:
    """The share of the peak learning rate at `progress` (0 to 1) of the run, after warmup."""
    def cosine(fraction: float) -> float:
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * fraction))
    if schedule == "constant":
        return 1.0
    if schedule == "wsd":  # warmup-stable-decay: a long constant phase finds the circuit, the decay sharpens it
        return 1.0 if progress < 0.8 else cosine((progress - 0.8) / 0.2)
    return cosine(progress)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "toy-base")
    ap.add_argument("--mixture", choices=sorted(MIXTURES), default="base",
                    help="base: toy-base's tasks; lookup-warmup, substitution, icl: toy-icl's three phases")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=40.0, help="wall-clock budget for training")
    ap.add_argument("--steps", type=int, default=100_000, help="step budget for training")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--schedule", choices=("cosine", "constant", "wsd"), default="cosine",
                    help="after warmup: cosine down to 10%% of --lr, constant (toy-icl's lookup phases), or "
                         "wsd: constant, then cosine down to 10%% over the last 20%% of the run (toy-learner)")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--save-every-minutes", type=float, default=5.0)
    # 2 threads suit an idle 2-core machine; when other jobs share the cores,
    # OpenMP threads wait on each other at every small matmul and 1 is faster.
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-n", type=int, default=200, help="examples per task in the final eval")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a lent GPU (record which in TRAINING.md)")
    ap.add_argument("--init", type=Path, help="continue from this saved model (its size wins over --hidden/--layers)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    tokenizer = build_char_tokenizer()
    if args.init is not None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(args.init, dtype=torch.float32, use_kernels=False)
    else:
        model = build_toy_model(tokenizer, hidden_size=args.hidden, num_layers=args.layers,
                                num_heads=args.heads)
    model.to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params / 1e6:.2f}M", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                            betas=(0.9, 0.98))
    budget_s = args.minutes * 60
    start = last_save = time.time()
    model.train()
    batches = length_bucketed_batches(rng, tokenizer, args.batch, MIXTURES[args.mixture])
    step, running = 0, 0.0
    while True:
        elapsed = time.time() - start
        progress = max(step / args.steps, elapsed / budget_s)
        if progress >= 1.0:
            break
        # Linear warmup, then cosine from the peak down to 10% of it (or the peak throughout).
        decay = learning_rate_decay(args.schedule, progress)
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * decay
        for group in opt.param_groups:
            group["lr"] = lr
        loss = model(**{name: t.to(args.device) for name, t in next(batches).items()}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        running += loss.item()
        if step % args.log_every == 0:
            print(f"step {step} loss {running / args.log_every:.4f} lr {lr:.2e} "
                  f"{(time.time() - start) / step:.2f}s/step elapsed {elapsed / 60:.1f}m", flush=True)
            running = 0.0
        if step % args.eval_every == 0 and args.mixture != "transforms":
            print(f"eval step {step}: {_fmt(evaluate(model, tokenizer, 50, seed=10_000 + step))}", flush=True)
        if step % args.eval_every == 0:
            if args.mixture == "transforms":
                print(f"eval transforms step {step}: "
                      f"{_fmt(evaluate_transforms(model, tokenizer, 60, seed=20_000 + step))}", flush=True)
            elif args.mixture != "base":
                print(f"eval icl step {step}: {_fmt(evaluate_icl(model, tokenizer, 60, seed=20_000 + step))}",
                      flush=True)
        if time.time() - last_save > args.save_every_minutes * 60:
            save(model, tokenizer, args.out)
            last_save = time.time()
            print(f"checkpoint saved at step {step}", flush=True)
    wall = time.time() - start
    save(model, tokenizer, args.out)
    print(f"trained {step} steps in {wall / 60:.1f} min; final evaluation...", flush=True)
    if args.mixture == "transforms":
        curve = evaluate_transforms(model, tokenizer, args.eval_n, seed=654_321)
        print(f"final transforms greedy: {_fmt(curve)}", flush=True)
        write_learner_training_md(args.out, args, argv, step, wall, n_params, curve)
        print(f"saved to {args.out}", flush=True)
        return
    # Fixed eval seeds, distinct from the training stream.
    greedy = evaluate(model, tokenizer, args.eval_n, seed=123_456)
    print(f"final greedy: {_fmt(greedy)}", flush=True)
    sampled = evaluate(model, tokenizer, args.eval_n, seed=123_456, temperature=1.0)
    print(f"final sampled T=1: {_fmt(sampled)}", flush=True)
    icl_greedy = icl_sampled = None
    if args.mixture != "base":
        icl_greedy = evaluate_icl(model, tokenizer, args.eval_n, seed=654_321)
        print(f"final icl greedy: {_fmt(icl_greedy)}", flush=True)
        icl_sampled = evaluate_icl(model, tokenizer, args.eval_n, seed=654_321, temperature=1.0)
        print(f"final icl sampled T=1: {_fmt(icl_sampled)}", flush=True)
    write_training_md(args.out, args, argv, step, wall, n_params, greedy, sampled, icl_greedy, icl_sampled)
    print(f"saved to {args.out}", flush=True)


if __name__ == "__main__":
    main()
