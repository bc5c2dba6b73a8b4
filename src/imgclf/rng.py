"""The one seed mixer: every random stream (shuffle order, augmentation, flips) is a pure function of integers
such as (seed, epoch, step, stream), so a resumed run replays the same draws in any process."""

from __future__ import annotations

import torch

_MASK64 = 0xFFFF_FFFF_FFFF_FFFF


def mix(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64-style), stable across processes, platforms and Python versions."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (int(p) & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        x ^= x >> 31
    return x & 0x7FFF_FFFF_FFFF_FFFF


def generator(*parts: int) -> torch.Generator:
    """A CPU torch.Generator seeded with mix(*parts)."""
    return torch.Generator().manual_seed(mix(*parts))


# Stream numbers: the last part of every mix() call, so no two streams of a run ever share a seed.
SHUFFLE, AUGMENT, FLIP_RANDOM, FLIP_ALTERNATE, MODEL = 1, 2, 3, 4, 5   # MODEL: dropout's draws in a step
