"""Learning-rate schedules as a pure function of the step: nothing to save, exact on resume."""

from __future__ import annotations

import math


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str, warmup_steps: int = 0) -> float:
    """The learning rate for optimizer step `step` (0-based) of `total_steps`."""
    if warmup_steps and step < warmup_steps:
        start = 0.1 if schedule == "onecycle" else 0.0
        return base_lr * (start + (1 - start) * (step + 1) / warmup_steps)
    if schedule == "constant":
        return base_lr
    rest = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / rest)
    if schedule == "onecycle":
        return base_lr * (1 - t)
    if schedule == "cosine":
        return base_lr * 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "step":
        return base_lr * (0.1 ** (int(t >= 0.5) + int(t >= 0.75)))
    raise ValueError(f"unknown schedule {schedule!r}")
