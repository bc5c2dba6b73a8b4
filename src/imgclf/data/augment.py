"""Augmentations on whole uint8 batches (N×C×H×W): no per-sample Python, every random draw from a given generator."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

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


def random_resized_crop(x: torch.Tensor, min_scale: float, g: torch.Generator,
                        flip: torch.Tensor | None = None) -> torch.Tensor:
    """Each image becomes a random crop of at least `min_scale` of its area (aspect ratio 3:4 to 4:3, anywhere
    inside the image) resized back to the full size, mirrored where `flip` is True: one affine grid and one
    bilinear grid_sample for the whole batch."""
    n = len(x)
    area = min_scale + (1 - min_scale) * torch.rand(n, generator=g)
    log_ratio = (torch.rand(n, generator=g) * 2 - 1) * math.log(4 / 3)
    w = (area * log_ratio.exp()).sqrt().clamp(max=1.0)      # crop size as a fraction of the image side
    h = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - w)     # centre, in grid_sample's [-1, 1] coordinates
    cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - h)
    sign = torch.where(flip.cpu(), -1.0, 1.0) if flip is not None else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * sign, cx, h, cy
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def color_jitter(x: torch.Tensor, strength: float, g: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and (colour images) saturation, each a factor in [1-strength, 1+strength]."""
    if strength <= 0:
        return x
    n, c = x.shape[:2]

    def factor() -> torch.Tensor:
        return (1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * strength).to(x.device)

    y = x.float() * factor()
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * factor() + mean
    if c == 3:
        gray = (y * torch.tensor([0.299, 0.587, 0.114], device=x.device)[None, :, None, None]).sum(1, keepdim=True)
        y = (y - gray) * factor() + gray
    return y.round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation of a whole uint8 batch: translate by ±crop_pad (reflect), flip mode, cutout."""

    crop_pad: int = 0
    flip: str = "none"        # none | random | alternate
    cutout: int = 0
    crop_scale: float = 0.0   # random-resized crop's smallest area fraction (0: off; then crop_pad translates)
    jitter: float = 0.0       # colour jitter strength

    @property
    def active(self) -> bool:
        return self.crop_pad > 0 or self.flip != "none" or self.cutout > 0 or self.crop_scale > 0 or self.jitter > 0

    def flips(self, indices: torch.Tensor, epoch: int, seed: int) -> torch.Tensor | None:
        """Which of the epoch's samples (by dataset index) are mirrored; None when flips are off."""
        return flip_mask(indices, epoch, seed, self.flip)

    def __call__(self, x: torch.Tensor, g: torch.Generator, flip: torch.Tensor | None) -> torch.Tensor:
        """Augment a uint8 batch: crop (random-resized, or translate by ±crop_pad) with the flips, jitter, cutout."""
        if self.crop_scale > 0:
            x = random_resized_crop(x, self.crop_scale, g, flip)
        else:
            x = random_crop(x, self.crop_pad, g, flip)
        return cutout(color_jitter(x, self.jitter, g), self.cutout, g)
