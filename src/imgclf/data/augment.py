"""Augmentations on whole uint8 batches (N×C×H×W): no per-sample Python, every random draw from a given generator."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import rng


def reflect_index(i: torch.Tensor, n: int) -> torch.Tensor:
    """Map indices that run off [0, n) back in by mirror reflection (like padding_mode='reflect')."""
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def random_crop(x: torch.Tensor, pad: int, g: torch.Generator, flip: torch.Tensor | None = None) -> torch.Tensor:
    """Random translation by up to ±`pad` pixels per image, reflect-padded, then a mirror where `flip` is True:
    all of it one gather over the flattened pixels (no padded copy, no second pass for the flip)."""
    n, c, h, w = x.shape
    if pad <= 0:
        return apply_flip(x, flip)
    dy = torch.randint(-pad, pad + 1, (n,), generator=g).to(x.device)
    dx = torch.randint(-pad, pad + 1, (n,), generator=g).to(x.device)
    rows = reflect_index(torch.arange(h, device=x.device)[None, :] + dy[:, None], h)  # N×H
    cols = reflect_index(torch.arange(w, device=x.device)[None, :] + dx[:, None], w)  # N×W
    if flip is not None:
        flip = flip.to(x.device)[:, None]
        cols = torch.where(flip, cols.flip(1), cols)
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    return torch.gather(x.reshape(n, c, h * w), 2, index).reshape(n, c, h, w)


def flip_mask(indices: torch.Tensor, epoch: int, seed: int, mode: str) -> torch.Tensor | None:
    """Which samples to mirror: 'random' (fresh each epoch), 'alternate' (airbench: a fixed random half in
    even epochs, the other half in odd ones, so every image is seen both ways every two epochs), or None."""
    if mode == "none":
        return None
    if mode == "alternate":
        g = rng.generator(seed, rng.FLIP_ALTERNATE)
        base = torch.randint(0, 2, (int(indices.max()) + 1,), generator=g, dtype=torch.bool)
        return base[indices.cpu()] ^ bool(epoch % 2)
    if mode == "random":
        g = rng.generator(seed, epoch, rng.FLIP_RANDOM)
        base = torch.randint(0, 2, (int(indices.max()) + 1,), generator=g, dtype=torch.bool)
        return base[indices.cpu()]
    raise ValueError(f"flip mode must be none, random or alternate, got {mode!r}")


def apply_flip(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mirror (left-right) the images where `mask` is True."""
    if mask is None:
        return x
    mask = mask.to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Zero a `size`×`size` square at a random centre of each image (DeVries & Taylor, 2017)."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1), generator=g).to(x.device)
    cx = torch.randint(0, w, (n, 1), generator=g).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys >= cy - size // 2) & (ys < cy - size // 2 + size)   # N×H
    in_x = (xs >= cx - size // 2) & (xs < cx - size // 2 + size)   # N×W
    hole = in_y[:, None, :, None] & in_x[:, None, None, :]
    return x.masked_fill(hole, 0)


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation of a whole uint8 batch: translate by ±crop_pad (reflect), flip mode, cutout."""

    crop_pad: int = 0
    flip: str = "none"        # none | random | alternate
    cutout: int = 0

    @property
    def active(self) -> bool:
        return self.crop_pad > 0 or self.flip != "none" or self.cutout > 0

    def flips(self, indices: torch.Tensor, epoch: int, seed: int) -> torch.Tensor | None:
        """Which of the epoch's samples (by dataset index) are mirrored; None when flips are off."""
        return flip_mask(indices, epoch, seed, self.flip)

    def __call__(self, x: torch.Tensor, g: torch.Generator, flip: torch.Tensor | None) -> torch.Tensor:
        return cutout(random_crop(x, self.crop_pad, g, flip), self.cutout, g)
