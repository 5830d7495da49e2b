"""What the training loop does when: the learning-rate shape, and randomness as a function of position.

Every random choice is a pure function of (seed, epoch, step, rank), so a run resumed from a checkpoint
makes exactly the choices the uninterrupted run would have made.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def one_cycle(total_steps: int, warmup: float = 0.25, floor: float = 1e-3) -> Callable[[int], float]:
    """The one-cycle shape as a multiplier of the peak lr: linear warm-up, then cosine annealing.

    It lets Adam run at several times the tutorial's 1e-3. (torch's OneCycleLR has the same shape but
    divides by zero on runs of a handful of steps, which tests and --limit runs have.)
    """
    warm = max(1, round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return 0.04 + 0.96 * step / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    """A distinct, reproducible seed for every (epoch, step, rank): randomness without hidden state."""
    return (seed * 1_000_003 + epoch * 100_003 + step * 101 + rank) % (2**63)


def epoch_shard(n: int, seed: int, epoch: int, rank: int, world: int) -> torch.Tensor:
    """This rank's share of epoch `epoch`'s shuffle: like DistributedSampler.set_epoch, on tensors."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    per_rank = n // world
    return order[rank * per_rank : (rank + 1) * per_rank]
