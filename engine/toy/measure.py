"""Measure a toy model: its instructed skills and its in-context accuracy by number of examples.

    python -m engine.toy.measure engine/toy/toy-icl --n 200
    python -m engine.toy.measure toy-base --n 200 --shots 0 2 4 8
    python -m engine.toy.measure toy-learner --n 200      # its K-curve (engine/toy/transforms.py)

Prints the same figures `pretrain.py` writes into a model's TRAINING.md, with the
same fixed evaluation seeds, so a shipped model's table can be re-checked.
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.toy import resolve_toy_model
from engine.toy.learner_report import evaluate_transforms, transforms_table
from engine.toy.pretrain import _fmt, evaluate, evaluate_icl, icl_table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a shipped toy model's name (toy-base, toy-icl) or a folder")
    ap.add_argument("--n", type=int, default=200, help="prompts per task and per number of examples")
    ap.add_argument("--shots", type=int, nargs="+", help="numbers of worked examples (default 0 2 4 8; "
                    "toy-learner: 0 1 2 4 8)")
    ap.add_argument("--transforms", action="store_true", help="the string-transformation K-curve (toy-learner's; "
                    "the default for that name)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    folder = resolve_toy_model(args.model) or args.model
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_kernels=False)
    # Seeds as in pretrain.py's final evaluation.
    if args.transforms or args.model == "toy-learner":
        curve = evaluate_transforms(model, tokenizer, args.n, seed=654_321, shots=tuple(args.shots or (0, 1, 2, 4, 8)))
        print(transforms_table(curve))
        return
    print(f"instructed greedy: {_fmt(evaluate(model, tokenizer, args.n, seed=123_456))}", flush=True)
    shots = tuple(args.shots or (0, 2, 4, 8))
    greedy = evaluate_icl(model, tokenizer, args.n, seed=654_321, shots=shots)
    print(f"icl greedy: {_fmt(greedy)}", flush=True)
    sampled = evaluate_icl(model, tokenizer, args.n, seed=654_321, shots=shots, temperature=1.0)
    print(f"icl sampled T=1: {_fmt(sampled)}", flush=True)
    print(icl_table(greedy, sampled))


if __name__ == "__main__":
    main()
