"""Sparse soft labels from the teacher's distribution, drawn for a whole batch at once on its device.

| kind      | per position                                     |
| --------- | ------------------------------------------------ |
| `sampled` | unique ids and counts / N of N samples (paper)   |
| `topk`    | top-k ids and probabilities, renormalized        |
| `hard`    | the sampled token id with weight 1               |

Sampled labels are N draws from the softmax by inverse CDF: the uniforms come from each
input's own seeded CPU generator (a few KB per batch, moved to the device once), so the
draws do not depend on which device or batch an input lands in, only on the teacher's
probabilities (CPU and GPU still differ in the last bits of the softmax, so their labels
are not bit-identical). The draws of every step stay on the device, sorted; one transfer
per batch brings them to the CPU, where the counts are taken without a loop over rows.
"""

from __future__ import annotations

import torch

Labels = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (offsets (positions + 1,), ids, probs)


def seeded_generators(seed: int, count: int) -> list[torch.Generator]:
    """One CPU generator per input, seeded from the run's seed and the input's index."""
    return [torch.Generator().manual_seed(seed * 1_000_003 + index) for index in range(count)]


def uniforms(generators: list[torch.Generator], positions: int, num_samples: int) -> torch.Tensor:
    """(rows, positions, num_samples) uniforms in [0, 1) on the CPU, row r from generators[r]."""
    return torch.stack([torch.rand(positions, num_samples, generator=generator) for generator in generators]) \
        if generators else torch.zeros(0, positions, num_samples)


def inverse_cdf_draws(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """probs (rows, vocab), uniform (rows, N) on the same device -> (rows, N) token ids, sorted per row.

    Token i is drawn when cdf[i - 1] <= u * total < cdf[i]: a token of probability 0 never is.
    """
    cdf = probs.float().cumsum(-1)
    targets = uniform.to(cdf.dtype) * cdf[:, -1:]
    draws = torch.searchsorted(cdf, targets.contiguous(), right=True).clamp_(max=probs.shape[-1] - 1)
    return draws.sort(-1).values


def counted(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(..., N) sorted draws -> (ids, counts, lengths): the distinct ids of each last-axis run in order,
    how often each was drawn, and how many distinct ids each run has (shape draws.shape[:-1])."""
    first = torch.ones_like(draws, dtype=torch.bool)
    first[..., 1:] = draws[..., 1:] != draws[..., :-1]
    flat_first = first.flatten()
    starts = flat_first.nonzero().squeeze(-1)
    counts = torch.diff(starts, append=torch.tensor([flat_first.numel()]))
    return draws.flatten()[starts], counts, first.sum(-1)


def sampled_labels(probs: torch.Tensor, uniform: torch.Tensor) -> Labels:
    """One input's labels at `positions` rows of `probs` (positions, vocab), from `uniform` (positions, N)."""
    ids, counts, lengths = counted(inverse_cdf_draws(probs, uniform.to(probs.device)).cpu())
    return _offsets(lengths), ids.long(), counts.float() / uniform.shape[-1]


def topk_labels(probs: torch.Tensor, top_k: int) -> Labels:
    values, indices = probs.float().topk(min(top_k, probs.shape[-1]), dim=-1)
    values = (values / values.sum(-1, keepdim=True)).cpu()
    return _offsets(torch.full((len(values),), values.shape[-1])), indices.cpu().flatten().long(), values.flatten()


def hard_labels(output_ids: list[int]) -> Labels:
    return _offsets(torch.ones(len(output_ids), dtype=torch.long)), torch.tensor(output_ids, dtype=torch.long), \
        torch.ones(len(output_ids))


def _offsets(lengths: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros(1, dtype=torch.long), lengths.long().cumsum(0)])


def cut(labels: Labels, positions: int) -> Labels:
    """The labels of the first `positions` positions."""
    offsets, ids, probs = labels
    end = int(offsets[positions])
    return offsets[: positions + 1], ids[:end], probs[:end]


class BatchLabels:
    """Labels of one generation batch, taken step by step from the raw logits (no dense logits kept).

    Each step's work stays on the logits' device; `rows()` makes the one transfer to the CPU.
    """

    def __init__(self, kind: str, num_samples: int, top_k: int, generators: list[torch.Generator], max_steps: int):
        self.kind, self.num_samples, self.top_k = kind, num_samples, top_k
        self.uniform = uniforms(generators, max_steps, num_samples) if kind == "sampled" else None
        self.steps: list[tuple[torch.Tensor, ...]] = []

    def __call__(self, logits: torch.Tensor) -> None:
        """logits: (rows, vocab) raw next-token logits of one step, finished rows included."""
        probs = torch.softmax(logits.float(), dim=-1)
        if self.kind == "sampled":
            if self.uniform.device != probs.device:
                self.uniform = self.uniform.to(probs.device)  # the whole batch's uniforms in one transfer
            self.steps.append((inverse_cdf_draws(probs, self.uniform[:, len(self.steps)]),))
        else:
            values, indices = probs.topk(min(self.top_k, probs.shape[-1]), dim=-1)
            self.steps.append((indices, values / values.sum(-1, keepdim=True)))

    def rows(self, kept: list[int]) -> list[Labels]:
        """Each row's labels at its first `kept[row]` steps, on the CPU."""
        if not self.steps:
            return [hard_labels([]) for _ in kept]
        if self.kind == "sampled":
            draws = torch.stack([step[0] for step in self.steps], 1).cpu()  # (rows, steps, N): the one transfer
            ids, counts, per_step = counted(draws)
            probs = counts.float() / self.num_samples
        else:
            # Ids and the probabilities' bits in one int32 tensor: one transfer, exact.
            indices = torch.stack([step[0] for step in self.steps], 1).int()
            values = torch.stack([step[1] for step in self.steps], 1).float().view(torch.int32)
            both = torch.stack([indices, values]).cpu()
            ids, probs = both[0].flatten(), both[1].flatten().view(torch.float32)
            per_step = torch.full(indices.shape[:2], indices.shape[-1])
        ends = per_step.sum(-1).cumsum(0).tolist()  # a row's labels are contiguous, step after step
        starts = [0] + ends[:-1]
        return [cut((_offsets(per_step[row]), ids[start:end].long(), probs[start:end]), length)
                for row, (start, end, length) in enumerate(zip(starts, ends, kept))]
