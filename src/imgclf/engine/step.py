"""One optimizer step, written once (training and the learning-rate finder both use it), and the running sums
an epoch keeps over its steps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .device import Precision


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer, prec: Precision,
               label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward (under autocast when the precision asks for it), cross-entropy in fp32 (optionally weighted per
    class), backward, optimizer step. The grad scaler is a no-op unless training in fp16. Returns (loss, logits),
    both still on the device."""
    with prec.autocast(x.device):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y, weight=class_weights, label_smoothing=label_smoothing)
    opt.zero_grad(set_to_none=True)
    prec.scaler.scale(loss).backward()
    prec.scaler.step(opt)
    prec.scaler.update()
    return loss, logits


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (schedules are a pure function of the step: see schedule.py),
    times the group's 'lr_mult' where it has one (a backbone trained slower than its new head)."""
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)


@dataclass
class EpochTotals:
    """Sums over the epoch's steps so far: loss × batch size and correct predictions (on the device, so adding
    to them never waits for the step to finish), and images seen. Checkpoints keep them (`saved()`), so a
    mid-epoch resume reports the same epoch figures as an uninterrupted run."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int

    @classmethod
    def restore(cls, saved: list[float | int] | None, device: torch.device) -> EpochTotals:
        loss, correct, seen = saved or (0.0, 0, 0)
        return cls(torch.full((), loss, device=device), torch.full((), correct, device=device, dtype=torch.int64),
                   int(seen))

    def saved(self) -> list[float | int]:
        """[loss sum, correct, seen]: the checkpoint's 'epoch_sums'."""
        return [float(self.loss_sum), int(self.correct), self.seen]

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss_sum += loss.detach() * len(y)
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.seen += len(y)

    @property
    def accuracy(self) -> float:
        return float(self.correct) / max(self.seen, 1)

    @property
    def mean_loss(self) -> float:
        return (self.loss_sum / max(self.seen, 1)).item()
