"""Which examples go into each micro-batch: the one place where operations mix.

A stage trains on several operations at once (simultaneous distillation, paper
eq. 2). Every global batch holds examples of each operation in proportion to its
weight (largest-remainder rounding, so the counts add up to the batch size), and
each operation walks through its own examples epoch by epoch in a seeded order.

Every batch is a pure function of the step, so a resumed run sees exactly the
batches it would have seen; with one operation the batches are those of the
single-operation recipe, unchanged.
"""

from __future__ import annotations

import math

import torch

OPERATION_SEED_STRIDE = 1_000_003  # each operation shuffles with its own stream


def batch_shares(global_batch: int, weights: list[float]) -> list[int]:
    """How many of `global_batch` examples each operation gets, proportional to `weights`.

    Every operation gets at least one while the batch has room, so none is silently never trained.
    """
    total = sum(weights)
    exact = [global_batch * weight / total for weight in weights]
    shares = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (exact[i] - shares[i], weights[i]), reverse=True)
    for i in by_remainder[: global_batch - sum(shares)]:
        shares[i] += 1
    for i, share in enumerate(shares):
        if share == 0 and global_batch >= len(weights):
            donor = max(range(len(shares)), key=lambda j: shares[j])
            shares[donor] -= 1
            shares[i] = 1
    return shares


def _draw(micro_step: int, size: int, count: int, seed: int) -> list[int]:
    """`count` indices into `size` examples for this micro-step, epoch by epoch in a seeded order."""
    per_epoch = max(1, size // count) if size >= count else 1
    epoch, position = divmod(micro_step, per_epoch)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return [order[(position * count + i) % size] for i in range(count)]


class BatchPlan:
    """Micro-batches over examples grouped by operation (`sizes[i]` examples of operation i, stored in order)."""

    def __init__(self, sizes: list[int], weights: list[float], global_batch: int, seed: int):
        self.sizes, self.weights, self.seed = sizes, weights, seed
        self.shares = batch_shares(global_batch, weights)
        self.starts = [sum(sizes[:i]) for i in range(len(sizes))]

    def micro_batch(self, micro_step: int, rank: int = 0, world: int = 1) -> list[int]:
        """Example indices of this process's share of micro-batch `micro_step`."""
        chosen = []
        for operation, (size, share, start) in enumerate(zip(self.sizes, self.shares, self.starts)):
            if share and size:
                seed = self.seed + operation * OPERATION_SEED_STRIDE
                chosen += [start + index for index in _draw(micro_step, size, share, seed)]
        return chosen[rank::world]
