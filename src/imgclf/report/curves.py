"""Training curves: the loss every N steps from steps.csv (so a one-epoch run has a real curve) with the learning
rate, epoch boundaries and the chosen epoch marked, val loss/accuracy per epoch from metrics.csv; and the loss
curves of several runs overlaid (the comparison page). Runs written before steps.csv fall back to per epoch."""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO, Any

import matplotlib.ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import ImgclfError
from ..fileio import atomic_write

CHOSEN = "#2ca02c"


class InlineFigure(Figure):
    """A matplotlib Figure drawn on its own Agg canvas, never through pyplot: drawing changes no backend and keeps no
    global figure list (nothing to close), and a notebook shows it as a PNG whatever backend it uses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()


def save_figure(fig: Any, path: str | Path | IO[bytes], dpi: int) -> None:
    """Write `fig` in the format its file ending names (PNG if none), atomically: a kill mid-write leaves the
    previous file or none, never half an image. A file object (a page's embedded image) is written directly."""
    if not isinstance(path, (str, Path)):
        fig.savefig(path, dpi=dpi, format="png")
        return
    if Path(path).is_dir():     # the rename over it would fail only after the figure was drawn
        raise ImgclfError(f"{path}: is a folder, not a file to write the plot to; remove or rename it")
    with atomic_write(path) as f:
        fig.savefig(f, dpi=dpi, format=Path(path).suffix[1:].lower() or "png")


def smooth(values: list[float]) -> list[float]:
    """Centred moving average over ~4% of the points (none below 50 points): no lag, unlike a running average;
    the window shrinks at both ends."""
    half = len(values) // 50
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half):i + half + 1]
        out.append(sum(window) / len(window))
    return out


def steps_per_epoch(steps: list[dict[str, Any]]) -> float:
    """From steps.csv's fractional epoch column (step / steps per epoch)."""
    last = steps[-1]
    return last["step"] / last["epoch"] if last["epoch"] else 1.0


def curves(history: list[dict[str, Any]], path: Path, steps: list[dict[str, Any]] | None = None,
           best_epoch: int | None = None) -> None:
    """Loss (per step when `steps` has rows, else per epoch) and accuracy per epoch, the chosen epoch marked."""
    fig = InlineFigure(figsize=(11, 4))
    a1, a2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
    ev = [r for r in history if "val_loss" in r]
    if steps:
        loss_per_step(a1, steps, ev, best_epoch)
    else:
        a1.plot([r["epoch"] for r in history], [r["train_loss"] for r in history], "o-", label="train")
        if ev:
            a1.plot([r["epoch"] for r in ev], [r["val_loss"] for r in ev], "s-", label="val")
        a1.set(title="loss per epoch: train split (running mean) and val split", xlabel="epoch")
        a1.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        _mark_epoch(a1, best_epoch)
        a1.legend(fontsize=8)
    a1.set(ylabel="cross-entropy")
    a2.plot([r["epoch"] for r in history], [r["train_accuracy"] for r in history], "o-",
            label="train (augmented, running)")
    if ev:
        a2.plot([r["epoch"] for r in ev], [r["val_accuracy"] for r in ev], "s-", label="val")
    a2.set(title="accuracy per epoch: train and val split", xlabel="epoch")
    a2.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if len(history) == 1:   # one point: the locator would label fractions of an epoch
        a2.set_xticks([history[0]["epoch"]])
    a2.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    _mark_epoch(a2, best_epoch)
    a2.legend(fontsize=8)
    for a in (a1, a2):
        a.grid(alpha=0.3)
    # margins set, not measured: tight_layout draws the whole figure once more (~0.1-0.2 s a plot on our CPU)
    fig.subplots_adjust(left=0.065, right=0.985, bottom=0.13, top=0.91, wspace=0.3)
    save_figure(fig, path, 110)


def loss_per_step(ax: Any, steps: list[dict[str, Any]], ev: list[dict[str, Any]], best_epoch: int | None) -> None:
    """steps.csv's loss against the step (raw and smoothed once there are enough rows), val loss at each epoch's
    end, dotted epoch ends, the chosen epoch, and the learning rate on a twin axis."""
    spe = steps_per_epoch(steps)
    x, losses = [r["step"] for r in steps], [r["loss"] for r in steps]
    smoothed = len(losses) >= 50
    if smoothed:
        ax.plot(x, losses, color="C0", alpha=0.25, lw=0.8)
    ax.plot(x, smooth(losses), color="C0", label="train, per step" + (" (smoothed)" if smoothed else ""))
    if ev:
        ax.plot([r["epoch"] * spe for r in ev], [r["val_loss"] for r in ev], "s-", color="C1", label="val")
    for e in range(1, round(x[-1] / spe)):
        ax.axvline(e * spe, color="0.35", lw=0.9, ls=":")
    if best_epoch:
        ax.axvline(best_epoch * spe, color=CHOSEN, lw=1.5, label=f"chosen: epoch {best_epoch}")
    ax.set(title="loss: train split (per step) and val split (per epoch)",
           xlabel=f"step ({spe:.0f} per epoch; dotted: epoch ends)")
    lr_ax = ax.twinx()
    lr_ax.plot(x, [r["lr"] for r in steps], color="0.45", lw=1, ls="--", label="learning rate (right axis)")
    lr_ax.set_ylabel("learning rate", color="0.45")
    lr_ax.tick_params(axis="y", colors="0.45")
    lr_ax.set_ylim(bottom=0)
    lr_ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    (h1, l1), (h2, l2) = ax.get_legend_handles_labels(), lr_ax.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper right")


def _mark_epoch(ax: Any, best_epoch: int | None) -> None:
    if best_epoch:
        ax.axvline(best_epoch, color=CHOSEN, lw=1.5, label=f"chosen: epoch {best_epoch}")


def overlay(runs: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]], path: Path | IO[bytes]) -> None:
    """Loss against epoch for several runs (label, steps rows, metrics rows): train solid, val dashed, one colour
    per run. Epochs, not steps, on the x axis: runs with different batch sizes line up."""
    fig = InlineFigure(figsize=(10, 4.2))
    ax = fig.subplots()
    for i, (label, steps, history) in enumerate(runs):
        color = f"C{i % 10}"
        if steps:
            ax.plot([r["epoch"] for r in steps], smooth([r["loss"] for r in steps]), color=color,
                    label=f"{label}: train")
        elif history:
            ax.plot([r["epoch"] for r in history], [r["train_loss"] for r in history], "o-", color=color,
                    label=f"{label}: train")
        ev = [r for r in history if "val_loss" in r]
        if ev:
            ax.plot([r["epoch"] for r in ev], [r["val_loss"] for r in ev], "s--", color=color, ms=4,
                    label=f"{label}: val")
    ax.set(title="loss: train split (per step) and val split (per epoch)", xlabel="epoch",
           ylabel="cross-entropy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(runs) > 3 else 1)
    fig.tight_layout()
    save_figure(fig, path, 110)
