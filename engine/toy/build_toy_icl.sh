#!/usr/bin/env bash
# Rebuild engine/toy/toy-icl from engine/toy/toy-base: three runs of pretrain.py
# with fixed seeds and step budgets, about 55 minutes on 2 CPU cores.
# engine/toy/TRAINING.md ("Building toy-icl") says why three, what each one
# measured, and how the shipped weights were made: phases 1 and 2 ran under a
# wall-clock budget that stopped them near the step counts fixed here, so a
# rebuild follows the same recipe and data but is not bit-identical.
#
#   bash engine/toy/build_toy_icl.sh [WORK_DIR]      # from the repository root
set -euo pipefail
work=${1:-$(mktemp -d)}
threads=${THREADS:-1}

# 1. Nearly all few-shot substitutions (2-10 worked examples), constant learning rate:
#    the model starts telling revealed substitutes from unrevealed ones.
python -m engine.toy.pretrain --mixture lookup-warmup --init engine/toy/toy-base --out "$work/phase1" \
    --seed 0 --steps 890 --minutes 60 --batch 32 --lr 2e-3 --warmup 100 --schedule constant \
    --eval-every 100000 --eval-n 100 --threads "$threads"

# 2. Long substitutions (8-16 examples) at a higher constant rate: the lookup appears.
python -m engine.toy.pretrain --mixture substitution --init "$work/phase1" --out "$work/phase2" \
    --seed 0 --steps 350 --minutes 60 --batch 32 --lr 4e-3 --warmup 100 --schedule constant \
    --eval-every 100000 --eval-n 100 --threads "$threads"

# 3. toy-base's skills back (20% of the sequences), instruction tasks inferred from
#    examples, substitutions of 2-14 examples; cosine schedule.
python -m engine.toy.pretrain --mixture icl --init "$work/phase2" --out engine/toy/toy-icl \
    --seed 2 --steps 700 --minutes 16 --batch 32 --lr 3e-3 --warmup 30 --eval-every 350 --eval-n 200 \
    --threads 2
