"""Learning-rate schedules as a pure function of the step: nothing to save, exact on resume."""

from __future__ import annotations

import math


def lr_at(step: float, total_steps: int, base_lr: float, schedule: str, warmup_steps: int = 0) -> float:
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


def schedule_step(step: int, planned: int, refits: list[dict[str, int]]) -> float:
    """Where optimizer step `step` falls in a schedule of `planned` steps after a budget's `refits` (in order, each
    {'at_step', 'steps'}: after step 'at_step' the run ends at 'steps'): each maps the steps it leaves linearly onto
    the rest of the schedule, so the lr is continuous and ends where the schedule ends."""
    at, pos, total = 0, 0.0, planned     # the last refit's step, its place in the schedule, the run's total then
    for r in refits:
        if step <= r["at_step"]:
            break
        pos += (r["at_step"] - at) * (planned - pos) / (total - at)
        at, total = r["at_step"], r["steps"]
    return pos + (step - at) * (planned - pos) / (total - at)
