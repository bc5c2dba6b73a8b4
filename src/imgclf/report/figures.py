"""What a run's pictures show, decided from its tensors: the curves, both confusion matrices, a grid of test images
with truth and prediction, the wrong test images with the highest loss ("top losses") and an augmented training
batch. Each is a plots.Figure of plain data, drawn by the painter (painter.py) or in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data.split import Split
from ..fileio import printable
from .painter import Figure
from .steps import read_steps


def run_figures(run_dir: Path, history: list[dict[str, Any]], test: dict[str, Any], logits: torch.Tensor,
                split: Split, classes: list[str], n: int = 32, best_epoch: int | None = None) -> list[Figure]:
    """The pictures of a run's plots/ folder (the curves use steps.csv when the run has one, and mark `best_epoch`,
    the epoch whose checkpoint was tested)."""
    out = run_dir / "plots"
    classes = [printable(c) for c in classes]      # a folder name that is not UTF-8 cannot be drawn as it is
    figures = []
    if history:
        figures.append(Figure("curves", out / "curves.png", dict(history=history, steps=read_steps(run_dir),
                                                                  best_epoch=best_epoch)))
    for name, normalize in (("confusion.png", False), ("confusion_normalized.png", True)):
        figures.append(Figure("confusion", out / name, dict(cm=test["confusion_matrix"], classes=classes,
                                                            normalize=normalize)))
    figures.append(predictions_grid(out / "predictions.png", split, logits, classes, n))
    probs = F.softmax(logits, 1)
    pred = probs.argmax(1)
    labels = split.labels
    losses = F.cross_entropy(logits, labels, reduction="none")
    wrong = torch.nonzero(pred != labels).flatten()
    if len(wrong):
        worst = wrong[losses[wrong].argsort(descending=True)[:min(n // 2, 16)]]
        titles = [f"pred {classes[int(pred[i])]} {probs[i, pred[i]]:.0%}\ntrue {classes[int(labels[i])]} "
                  f"{probs[i, labels[i]]:.0%}" for i in worst]
        figures.append(grid(out / "top_losses.png", split.images[worst], titles, ["red"] * len(worst),
                            "top losses: wrong test images with the highest loss, highest first\n"
                            "(predicted class and its probability; true class and its probability)",
                            ncol=min(8, len(worst))))
    return figures


def predictions_grid(path: Path, split: Split, logits: torch.Tensor, classes: list[str], n: int = 32,
                     split_name: str = "test") -> Figure:
    """`n` images spread over `split` with prediction and truth, wrong ones in red."""
    pred, labels = logits.argmax(1), split.labels
    idx = torch.linspace(0, len(labels) - 1, min(n, len(labels))).long()
    ok = (pred[idx] == labels[idx]).tolist()
    titles = [f"{'✓' if g else '✗'} {classes[int(p)]}\n(true {classes[int(t)]})"
              for g, p, t in zip(ok, pred[idx], labels[idx])]
    return grid(path, split.images[idx], titles, ["green" if g else "red" for g in ok],
                f"{split_name} images: prediction (truth)", ncol=min(8, len(idx)))


def grid(path: Path, images: torch.Tensor, titles: list[str], colors: list[str] | None = None, suptitle: str = "",
         ncol: int | None = None) -> Figure:
    """A labelled image grid (plots.image_grid) of uint8 N×C×H×W images, as plain data."""
    return Figure("grid", path, dict(images=images.cpu().numpy(), titles=titles, colors=colors, suptitle=suptitle,
                                     ncol=ncol))
