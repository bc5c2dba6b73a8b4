"""Exponential moving average of a model's weights (Polyak averaging), evaluated instead of the raw weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps `decay`-averaged parameters; buffers (BatchNorm statistics) are copied as they are."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # warm start: early averages are not dragged to init
        ema_p = [p for p in self.module.parameters()]
        src_p = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, [p.to(e.dtype) for p, e in zip(src_p, ema_p)], 1 - d)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)


class Lookahead:
    """airbench94's lookahead: every `every` steps the slow weights move toward the model's by (1 - decay) and the
    model jumps back to them. The decay rises as 0.95**5 · (step/total)**3 (no pull early, a strong one late), and
    the last step hands the model the slow weights. BatchNorm statistics are averaged the same way."""

    def __init__(self, model: nn.Module, every: int = 5) -> None:
        self.every = every
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int, total: int) -> None:
        """Called after optimizer step number `step` (1-based) of `total`."""
        if step % self.every and step < total:
            return
        decay = 1.0 if step >= total else 0.95 ** 5 * (step / total) ** 3
        state = model.state_dict()
        slow = list(self.slow.values())
        fast = [state[k] for k in self.slow]
        torch._foreach_lerp_(slow, fast, 1 - decay)
        torch._foreach_copy_(fast, slow)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.cpu() for k, v in self.slow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in self.slow.items():
            v.copy_(state[k])
