"""The run's pictures (PNG, Agg backend, no screen needed): curves, confusion matrices, a grid of test images with
truth and prediction, and the wrong test images with the highest loss ("top losses")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from ..data.split import Split
from .curves import curves, save_figure
from .steps import read_steps


def image_grid(images: torch.Tensor, titles: list[str], path: Path, colors: list[str] | None = None,
               suptitle: str = "", ncol: int | None = None, cell_px: int = 96) -> Path:
    """A labelled grid of uint8 C×H×W images (the tutorial's imshow(make_grid(...)) with names under each),
    drawn as one canvas in one axes so it takes a fraction of a second."""
    n = len(images)
    ncol = ncol or min(8, max(1, int(np.ceil(np.sqrt(n)))))
    nrow = int(np.ceil(n / ncol))
    c, h, w = images.shape[1:]
    scale = max(1, cell_px // max(h, w))            # upscale small images by pixel repetition (crisp, no blur)
    lines = max((t.count("\n") + 1 for t in titles), default=1)
    ih, iw = h * scale, w * scale
    band = 14 * lines + 6                           # room for the label under each image, in canvas pixels
    pad = 6
    cell_h, cell_w = ih + band + pad, max(iw, 80) + pad
    title_px = 7 * max((len(t) for t in suptitle.splitlines()), default=0) + 2 * pad  # ~7 px a character at 10 pt
    left = pad + max(0, title_px - (ncol * cell_w + pad)) // 2     # a title wider than the grid widens the canvas
    canvas = np.full((nrow * cell_h + pad, ncol * cell_w + 2 * left - pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        img = images[i].cpu().numpy().transpose(1, 2, 0).repeat(scale, 0).repeat(scale, 1)
        y, x = pad + r * cell_h, left + q * cell_w + (cell_w - pad - iw) // 2
        canvas[y:y + ih, x:x + iw] = img if c == 3 else np.repeat(img, 3, axis=2)
    top = 16 * (suptitle.count("\n") + 1) + 8 if suptitle else 0
    dpi = 100
    fig = plt.figure(figsize=(canvas.shape[1] / dpi, (canvas.shape[0] + top) / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, canvas.shape[0] / (canvas.shape[0] + top)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for i, title in enumerate(titles[:n]):
        r, q = divmod(i, ncol)
        ax.text(left + q * cell_w + (cell_w - pad) / 2, pad + r * cell_h + ih + 3, title, ha="center", va="top",
                fontsize=7.5, color=(colors[i] if colors else "black"), linespacing=1.1)
    if suptitle:
        fig.text(0.5, 1 - 4 / (canvas.shape[0] + top), suptitle, ha="center", va="top", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi)
    plt.close(fig)
    return path


def confusion(cm: list[list[int]], classes: list[str], path: Path, normalize: bool) -> None:
    m = np.asarray(cm, dtype=np.float64)
    if normalize:
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
    k = len(classes)
    size = max(5.0, 0.5 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(m, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ticks = np.arange(k)
    ax.set_xticks(ticks, classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(ticks, classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true",
           title=f"confusion matrix, test split{' (row-normalized)' if normalize else ''}")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                v = m[i, j]
                ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center", fontsize=7,
                        color="white" if v > m.max() * 0.6 else "black")
    fig.tight_layout()
    save_figure(fig, path, 110)
    plt.close(fig)


def write_run_plots(run_dir: Path, history: list[dict[str, Any]], test: dict[str, Any], logits: torch.Tensor,
                    split: Split, classes: list[str], n: int = 32, best_epoch: int | None = None) -> list[Path]:
    """Write every plot of a run into run_dir/plots/ and return their paths (the curves use steps.csv when the
    run has one, and mark `best_epoch`, the epoch whose checkpoint was tested)."""
    out = run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if history:
        curves(history, out / "curves.png", read_steps(run_dir), best_epoch)
        paths.append(out / "curves.png")
    confusion(test["confusion_matrix"], classes, out / "confusion.png", normalize=False)
    confusion(test["confusion_matrix"], classes, out / "confusion_normalized.png", normalize=True)
    paths += [out / "confusion.png", out / "confusion_normalized.png"]
    probs = F.softmax(logits, 1)
    pred = probs.argmax(1)
    labels = split.labels
    idx = torch.linspace(0, len(labels) - 1, min(n, len(labels))).long()
    ok = (pred[idx] == labels[idx]).tolist()
    titles = [f"{'✓' if g else '✗'} {classes[int(p)]}\n(true {classes[int(t)]})"
              for g, p, t in zip(ok, pred[idx], labels[idx])]
    paths.append(image_grid(split.images[idx], titles, out / "predictions.png",
                            ["green" if g else "red" for g in ok], "test images: prediction (truth)",
                            ncol=min(8, len(idx))))
    losses = F.cross_entropy(logits, labels, reduction="none")
    wrong = torch.nonzero(pred != labels).flatten()
    if len(wrong):
        worst = wrong[losses[wrong].argsort(descending=True)[:min(n // 2, 16)]]
        titles = [f"pred {classes[int(pred[i])]} {probs[i, pred[i]]:.0%}\ntrue {classes[int(labels[i])]} "
                  f"{probs[i, labels[i]]:.0%}" for i in worst]
        paths.append(image_grid(split.images[worst], titles, out / "top_losses.png", ["red"] * len(worst),
                                "top losses: wrong test images with the highest loss, highest first\n"
                                "(predicted class and its probability; true class and its probability)",
                                ncol=min(8, len(worst))))
    return paths


def lr_plot(lrs: list[float], losses: list[float], suggested: float, path: str | Path) -> None:
    """Loss against learning rate (log scale) with the suggestion marked."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.axvline(suggested, color="red", ls="--", label=f"suggested lr {suggested:.3g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)", title="learning-rate range test")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, 110)
    plt.close(fig)
