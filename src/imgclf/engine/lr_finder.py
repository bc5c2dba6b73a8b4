"""The learning-rate range test (Smith 2015; fastai's lr_find): raise the lr exponentially over a few hundred
steps, record the smoothed loss, and suggest the lr where it falls fastest."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from .. import verbosity
from ..errors import ConfigError
from ..words import counted
from .build import build_run
from .step import step_loop


def find_lr(settings: dict[str, Any], steps: int = 100, min_lr: float = 1e-5, max_lr: float = 10.0,
            out: str | Path | None = "runs/find-lr", name: str | None = None, quiet: bool = False,
            file: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the range test on the training split with the run's model/optimizer settings (built exactly as
    `imgclf train` builds them); returns {'lrs', 'losses', 'suggested_lr', 'plot', ...} and writes the plot of
    loss against lr to a new run folder OUT/NAME/lr_find.png (NAME: DATA-MODEL; never overwritten; out=None:
    no plot)."""
    check_range(steps, min_lr, max_lr)
    with verbosity.quiet_if(quiet):
        run = build_run(settings, file)
    lrs, losses, smooth, best, diverged = [], [], 0.0, math.inf, False
    run.model.train()
    # without the lookahead (its pull follows a training run's step/total, which a sweep of its own steps does not
    # have) and the EMA (it averages the weights evaluated; the loss recorded here is the stepped model's)
    sweep = step_loop(run, run.batches, lambda done: min_lr * (max_lr / min_lr) ** (done / max(1, steps - 1)),
                      averages=False)
    for s in sweep:
        value = s.loss.item()
        smooth = 0.9 * smooth + 0.1 * value
        debiased = smooth / (1 - 0.9 ** s.done)
        lrs.append(s.lr)
        losses.append(debiased)
        best = min(best, debiased)
        if s.done >= steps or not math.isfinite(value) or debiased > 4 * best:
            diverged = s.done < steps
            break
    if diverged and len(lrs) < 5:
        raise ConfigError(f"the loss diverged within {counted(len(lrs), 'step')}, at lr {lrs[-1]:.3g}, so there is no "
                          f"range to choose from: lower --min-lr (now {min_lr:g})")
    suggested = suggest(lrs, losses)
    plot = None
    if out is not None:
        from ..report.plots import lr_plot
        from ..report.run_dir import new_run_dir

        plot = new_run_dir(out, name or f"{run.data.name}-{run.cfg.model}") / "lr_find.png"
        lr_plot(lrs, losses, suggested, plot)
    return {"lrs": lrs, "losses": losses, "suggested_lr": suggested, "model": run.cfg.model, "dataset": run.data.name,
            "plot": None if plot is None else str(plot)}


def check_range(steps: int, min_lr: float, max_lr: float) -> None:
    """The range test's own settings, checked before any data is loaded (one-line errors naming the flag)."""
    if steps < 5:   # the steepest descent needs a curve: fewer steps suggested an lr below --min-lr
        raise ConfigError(f"--steps must be at least 5 (a range to find the steepest descent in), got {steps}")
    if not min_lr > 0:
        raise ConfigError(f"--min-lr must be positive (the learning rate rises geometrically from it), got {min_lr:g}")
    if not (min_lr < max_lr < math.inf):
        raise ConfigError(f"--max-lr must be finite and above --min-lr {min_lr:g}, got {max_lr:g}")


def suggest(lrs: list[float], losses: list[float]) -> float:
    """The lr at the steepest descent of loss against log(lr), ignoring the noisy first and exploded last tenth
    (and a non-finite last loss, where the test stopped)."""
    while losses and not math.isfinite(losses[-1]):
        lrs, losses = lrs[:-1], losses[:-1]
    n = len(lrs)
    if n < 5:   # the loss diverged early: a tenth of the best lr, within the range tried
        return max(lrs[0], lrs[int(torch.tensor(losses).argmin())] / 10) if lrs else 0.0
    lo, hi = max(1, n // 10), max(2, n - n // 10)
    log_lr = torch.tensor(lrs).log()
    grad = torch.diff(torch.tensor(losses)) / torch.diff(log_lr)
    i = lo + int(grad[lo:hi].argmin())
    return float(lrs[i])
