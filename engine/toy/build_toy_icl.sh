#!/usr/bin/env bash
# Rebuild engine/toy/toy-icl from engine/toy/toy-base: three runs of pretrain.py
# with fixed seeds and step budgets (the shipped weights are this script's output;
# engine/toy/toy-icl/TRAINING.md has its log and wall time). engine/toy/TRAINING.md
# says why three phases and what each one measured. Every --minutes is a safety
# cap far above the time the steps take, so the step counts decide (the learning
# rate schedule follows whichever budget runs out first).
#
#   bash engine/toy/build_toy_icl.sh [WORK_DIR]      # from the repository root
set -euo pipefail
work=${1:-$(mktemp -d)}
threads=${THREADS:-2}   # torch threads; the shipped build used 2 (results depend on it in the last bits)

# 1. Nearly all few-shot substitutions (2-10 worked examples), constant learning rate:
#    the model starts telling revealed substitutes from unrevealed ones.
python -m engine.toy.pretrain --mixture lookup-warmup --init engine/toy/toy-base --out "$work/phase1" \
    --seed 0 --steps 890 --minutes 600 --batch 32 --lr 2e-3 --warmup 100 --schedule constant \
    --eval-every 100000 --eval-n 100 --threads "$threads"

# 2. Long substitutions (8-16 examples) at a higher constant rate: the lookup appears
#    (after 350 steps it was still getting sharper, so 600).
python -m engine.toy.pretrain --mixture substitution --init "$work/phase1" --out "$work/phase2" \
    --seed 0 --steps 600 --minutes 600 --batch 32 --lr 4e-3 --warmup 100 --schedule constant \
    --eval-every 100000 --eval-n 100 --threads "$threads"

# 3. toy-base's skills back (20% of the sequences), instruction tasks inferred from
#    examples, substitutions of 2-14 examples; cosine schedule.
python -m engine.toy.pretrain --mixture icl --init "$work/phase2" --out engine/toy/toy-icl \
    --seed 2 --steps 700 --minutes 600 --batch 32 --lr 3e-3 --warmup 30 --eval-every 350 --eval-n 200 \
    --threads "$threads"
