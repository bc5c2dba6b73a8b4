"""Drawing the run's pictures (PNG, Agg backend, no screen needed): labelled image grids, confusion matrices, the
learning-rate test. No torch here: the plot painter (painter.py) imports this in a process of its own; what to
draw is decided in figures.py."""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from matplotlib.colors import PowerNorm

from .curves import InlineFigure, curves, save_figure

if TYPE_CHECKING:
    from .painter import Figure


def image_grid(images: Any, titles: list[str], path: Path | IO[bytes], colors: list[str] | None = None,
               suptitle: str = "", ncol: int | None = None, cell_px: int = 96) -> Path:
    """grid_figure written to `path`."""
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(grid_figure(images, titles, colors, suptitle, ncol, cell_px), path, 100)
    return path


def grid_figure(images: Any, titles: list[str], colors: list[str] | None = None, suptitle: str = "",
                ncol: int | None = None, cell_px: int = 96) -> InlineFigure:
    """A labelled grid of uint8 N×C×H×W images (an array or a CPU tensor; the tutorial's imshow(make_grid(...))
    with names under each), drawn as one canvas in one axes so it takes a fraction of a second."""
    images = np.asarray(images)
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
        img = images[i].transpose(1, 2, 0).repeat(scale, 0).repeat(scale, 1)
        y, x = pad + r * cell_h, left + q * cell_w + (cell_w - pad - iw) // 2
        canvas[y:y + ih, x:x + iw] = img if c == 3 else np.repeat(img, 3, axis=2)
    top = 16 * (suptitle.count("\n") + 1) + 8 if suptitle else 0
    dpi = 100
    fig = InlineFigure(figsize=(canvas.shape[1] / dpi, (canvas.shape[0] + top) / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, canvas.shape[0] / (canvas.shape[0] + top)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for i, title in enumerate(titles[:n]):
        r, q = divmod(i, ncol)
        ax.text(left + q * cell_w + (cell_w - pad) / 2, pad + r * cell_h + ih + 3, title, ha="center", va="top",
                fontsize=7.5, color=(colors[i] if colors else "black"), linespacing=1.1)
    if suptitle:
        fig.text(0.5, 1 - 4 / (canvas.shape[0] + top), suptitle, ha="center", va="top", fontsize=10)
    return fig


def confusion(cm: list[list[int]], classes: list[str], path: Path | IO[bytes], normalize: bool) -> None:
    """confusion_figure written to `path`."""
    save_figure(confusion_figure(cm, classes, normalize), path, 110)


def confusion_figure(cm: list[list[int]], classes: list[str], normalize: bool = False,
                     split: str = "test") -> InlineFigure:
    """The confusion matrix of `split` (counts, or each row as a percentage of its class's images), numbers in the
    cells up to 20 classes, colours on a power scale so that the few errors of an accurate model show
    beside its diagonal.
    Laid out by hand from the label lengths: tight_layout would draw the figure twice."""
    m = np.asarray(cm, dtype=np.float64)
    if normalize:
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
    k = len(classes)
    names = [c if len(c) <= 24 else c[:23] + "…" for c in classes]
    label = max((len(c) for c in names), default=1) * 8 * 0.5 / 72   # widest tick label, inches (~½ em a char)
    side = max(3.5, 0.45 * k)                                          # the matrix, inches
    left, bottom, top, right = label + 0.6, 0.87 * label + 0.6, 0.45, 1.25   # right: the colour bar, its label
    width, height = left + side + right, bottom + side + top
    fig = InlineFigure(figsize=(width, height), dpi=110)
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    if normalize:
        m = 100 * m
    norm = PowerNorm(0.3, vmin=0, vmax=max(float(m.max()), 1e-9))   # a few errors in a thousand still show
    im = ax.imshow(m, cmap="Blues", norm=norm, aspect="auto")
    bar = fig.colorbar(im, cax=fig.add_axes(((left + side + 0.12) / width, bottom / height, 0.15 / width,
                                             side / height)))
    bar.set_label("% of the true class's images" if normalize else "images", fontsize=8)
    bar.set_ticks([0] + [t for t in (0.1, 0.5, 1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000)
                         if t <= norm.vmax and (normalize or t >= 1)], labels=None)
    bar.ax.yaxis.set_major_formatter("{x:g}")
    ticks = np.arange(k)
    ax.set_xticks(ticks, names, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true",
           title=f"confusion matrix, {split} split{' (% of each true class)' if normalize else ''}")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                v = m[i, j]
                ax.text(j, i, share_text(v / 100) if normalize else f"{int(v)}", ha="center", va="center",
                        fontsize=7, color="white" if norm(v) > 0.6 else "black")
    return fig


def share_text(v: float) -> str:
    """A row-normalized cell as a percentage that still tells 99.6 from 100 and a few errors from none: blank for
    none, '<0.1' below a thousandth, else one decimal."""
    if v <= 0:
        return ""
    return "<0.1" if v < 0.0005 else f"{100 * v:.1f}"


def lr_plot(lrs: list[float], losses: list[float], suggested: float, path: str | Path) -> None:
    """Loss against learning rate (log scale) with the suggestion marked."""
    fig = InlineFigure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(lrs, losses)
    ax.axvline(suggested, color="red", ls="--", label=f"suggested lr {suggested:.3g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)", title="learning-rate range test")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, 110)


DRAWERS = {"curves": curves, "confusion": confusion, "grid": image_grid}


def draw(figure: Figure) -> Path:
    """Draw one Figure into its file (atomically, as every plot is written)."""
    DRAWERS[figure.kind](path=figure.path, **figure.args)
    return figure.path
