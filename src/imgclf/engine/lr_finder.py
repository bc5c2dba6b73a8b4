"""The learning-rate range test (Smith 2015; fastai's lr_find): raise the lr exponentially over a few hundred
steps, record the smoothed loss, and suggest the lr where it falls fastest."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..data.batches import Augment, Batches, Normalizer
from .setup import pick_device, pick_precision
from .train import data_and_config, make_model, make_optimizer, normalization


def find_lr(settings: dict[str, Any], steps: int = 100, min_lr: float = 1e-5, max_lr: float = 10.0,
            plot: str | None = "lr_find.png", quiet: bool = False) -> dict[str, Any]:
    """Run the range test on the training split with the run's model/optimizer settings; returns
    {'lrs', 'losses', 'suggested_lr'} and writes a plot of loss against lr."""
    data, cfg = data_and_config(dict(settings), quiet)
    device = pick_device(cfg.device)
    prec = pick_precision(cfg, device)
    mean, std = normalization(cfg, data)
    norm = Normalizer(mean, std, device, channels_last=prec.channels_last)
    model = make_model(cfg, data, mean, std, device, prec.channels_last)
    opt = make_optimizer(cfg, model)
    batches = Batches(data.train, cfg.batch_size, norm, train=True, augment=Augment(cfg.crop_pad, cfg.flip, cfg.cutout),
                      seed=cfg.seed, device=device)
    lrs, losses, smooth, best = [], [], 0.0, math.inf
    step, epoch = 0, 0
    model.train()
    while step < steps:
        for x, y in batches.epoch(epoch):
            lr = min_lr * (max_lr / min_lr) ** (step / max(1, steps - 1))
            for g in opt.param_groups:
                g["lr"] = lr
            with prec.autocast(device):
                loss = F.cross_entropy(model(x).float(), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = loss.item()
            smooth = 0.9 * smooth + 0.1 * value
            debiased = smooth / (1 - 0.9 ** (step + 1))
            lrs.append(lr)
            losses.append(debiased)
            best = min(best, debiased)
            step += 1
            if step >= steps or not math.isfinite(value) or debiased > 4 * best:
                step = steps
                break
        epoch += 1
    suggested = suggest(lrs, losses)
    if plot:
        from ..report.plots import lr_plot

        lr_plot(lrs, losses, suggested, plot)
    return {"lrs": lrs, "losses": losses, "suggested_lr": suggested, "model": cfg.model, "dataset": data.name}


def suggest(lrs: list[float], losses: list[float]) -> float:
    """The lr at the steepest descent of loss against log(lr), ignoring the noisy first and exploded last tenth."""
    n = len(lrs)
    if n < 5:
        return lrs[int(torch.tensor(losses).argmin())] / 10 if lrs else 0.0
    lo, hi = max(1, n // 10), max(2, n - n // 10)
    log_lr = torch.tensor(lrs).log()
    grad = torch.diff(torch.tensor(losses)) / torch.diff(log_lr)
    i = lo + int(grad[lo:hi].argmin())
    return float(lrs[i])
