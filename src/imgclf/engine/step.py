"""The step loop, written once: training, the budget's calibration and the learning-rate finder all step through
`step_loop`, so a step does the same things in the same order in all three. Also the running sums an epoch keeps over
its steps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .. import rng
from .device import Precision

if TYPE_CHECKING:
    from ..data.batches import Batches
    from .setup import Run


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


def seed_step(seed: int, device: torch.device) -> None:
    """Seed the generator the step draws from (dropout), so a resumed step replays the same draws. On a CPU run only
    the CPU generator: torch.manual_seed also queues seeding for CUDA, MPS and XPU, at ~110 µs a call on a CPU-only
    torch (2.7% of a small model's step) for the same draws."""
    if device.type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (schedules are a pure function of the step: see schedule.py),
    times the group's 'lr_mult' where it has one (a backbone trained slower than its new head)."""
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)


@dataclass(frozen=True)
class Step:
    """One step just taken: where it was (`step` within `epoch`; `done` steps taken in all, this one included), the
    lr it used, and its labels, loss and logits (on the device: reading them waits for the step)."""

    epoch: int
    step: int
    done: int
    lr: float
    y: torch.Tensor
    loss: torch.Tensor
    logits: torch.Tensor


def step_loop(run: Run, batches: Batches, lr_at: Callable[[int], float], *, epoch: int = 0, start: int = 0,
              done: int = 0, end: Callable[[int], int] | None = None, averages: bool = True) -> Iterator[Step]:
    """Step `run` through `batches` from step `start` of `epoch` (`done` steps taken before it), yielding a Step after
    each; the caller stops when it wants. Each step sets the lr to `lr_at(done)`, seeds torch's RNG from (seed,
    epoch, step, rank) so dropout's draws replay exactly on resume, runs train_step, then, with `averages`, moves the
    lookahead's slow weights and the EMA.

    With `end`, only epoch `epoch` is stepped, up to step `end(epoch)`, asked before every step (a budget's re-plan
    moves it); without, every batch, epoch after epoch."""
    cfg = run.cfg
    while True:
        for step, (x, y) in enumerate(batches.epoch(epoch, start), start):
            if end is not None and step >= end(epoch):
                return
            lr = lr_at(done)
            set_lr(run.opt, lr)
            seed_step(rng.mix(cfg.seed, epoch, step, run.world.rank, rng.MODEL), run.device)
            loss, logits = train_step(run.step_model, x, y, run.opt, run.prec, cfg.label_smoothing, run.class_weights)
            if averages and run.lookahead is not None:
                run.lookahead.after_step(run.model, done + 1, run.total_steps)
            if averages and run.ema is not None:
                run.ema.update(run.model, done)
            done += 1
            yield Step(epoch, step, done, lr, y, loss, logits)
        if end is not None:
            return
        epoch, start = epoch + 1, 0


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
