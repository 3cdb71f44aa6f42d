#!/usr/bin/env bash
# Rebuild engine/toy/toy-learner: toy-base continued on episodes of string
# transformations (engine/toy/transforms.py) by one run of pretrain.py with a fixed
# seed and step count (the shipped weights are this script's output; its
# TRAINING.md has the command, the wall time and the K-curve). --minutes is a
# safety cap far above the time the steps take, so the step count decides.
#
#   bash engine/toy/build_toy_learner.sh [OUT_DIR]      # from the repository root
set -euo pipefail
out=${1:-engine/toy/toy-learner}
threads=${THREADS:-2}   # torch threads; the shipped build used 2 (results depend on it in the last bits)

# Why toy-base's weights and not a random start: the loss on the first few-shot
# episodes is a shock (toy-base expects EOS after an answer), but its embeddings
# and copying heads still shorten the run. A constant learning rate for 80% of the
# steps finds the reading of the examples; the last 20% anneal it (--schedule wsd).
python -m engine.toy.pretrain --mixture transforms --init engine/toy/toy-base --out "$out" \
    --seed 0 --steps 5000 --minutes 600 --batch 32 --lr 1e-3 --warmup 200 --schedule wsd \
    --eval-every 1000 --eval-n 200 --threads "$threads"
