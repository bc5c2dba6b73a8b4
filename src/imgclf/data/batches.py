"""Batches from a Split held as one uint8 tensor: shuffled with randperm, augmented and normalized a batch at a
time on the training device. Every random draw comes from (seed, epoch, step), so any step can be replayed
exactly after a resume, and each of `world_size` processes takes its own shard of the same epoch order."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .. import rng
from ..config import steps_per_epoch
from .augment import Augment
from .split import Split


class Normalizer:
    """uint8 → float: (x/255 − mean)/std as one multiply-add, in the compute dtype and memory format."""

    def __init__(self, mean: list[float], std: list[float], device: torch.device | str,
                 dtype: torch.dtype = torch.float32, channels_last: bool = False) -> None:
        m = torch.tensor(mean, dtype=torch.float32, device=device)[None, :, None, None]
        s = torch.tensor(std, dtype=torch.float32, device=device)[None, :, None, None]
        self.scale, self.shift = 1.0 / (255.0 * s), -m / s
        self.dtype, self.channels_last = dtype, channels_last

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # One pass from uint8 straight into a float tensor of the wanted layout (no float or re-laid-out copy
        # in between): 40% less time than contiguous → float → addcmul, measured on 64-256 CIFAR images.
        fmt = torch.channels_last if self.channels_last and x.dim() == 4 else torch.contiguous_format
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device, memory_format=fmt)
        return torch.addcmul(self.shift, x, self.scale, out=out).to(self.dtype)


class Batches:
    """Iterate one split in batches of (normalized images, labels); `train=True` shuffles and augments."""

    def __init__(self, split: Split, batch_size: int, normalize: Normalizer, *, train: bool = False,
                 augment: Augment | None = None, seed: int = 0, device: torch.device | str = "cpu",
                 rank: int = 0, world_size: int = 1) -> None:
        self.batch_size, self.normalize, self.train = batch_size, normalize, train
        self.augment = augment or Augment()
        self.seed, self.rank, self.world_size = seed, rank, world_size
        # Training drops a last partial batch only when it is small (config.steps_per_epoch): keeping a large one keeps
        # a noticeable part of a small dataset in play.
        device = torch.device(device)
        # Keep the whole split on the device when it fits comfortably; else batches are copied over one by one.
        on_device = device.type == "cpu" or split.images.numel() < _free_device_bytes(device) // 4
        self.device = device
        self.images = split.images.to(device) if on_device else split.images
        self.labels = split.labels.to(device) if on_device else split.labels
        self.n = len(split)

    def __len__(self) -> int:
        if self.train:   # the count config.resolve planned the run's epochs with
            return steps_per_epoch(self.n, self.batch_size, self.world_size)
        return -(-(self.n // self.world_size) // self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        """This process's sample indices for `epoch`: a seeded permutation (train) or 0..N-1, sharded by rank."""
        if self.train:
            idx = torch.randperm(self.n, generator=rng.generator(self.seed, epoch, rng.SHUFFLE))
        else:
            idx = torch.arange(self.n)
        if self.world_size > 1:
            idx = idx[: self.n // self.world_size * self.world_size][self.rank::self.world_size]
        return idx

    def epoch(self, epoch: int = 0, start_step: int = 0, normalized: bool = True
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of `epoch`, starting at batch `start_step` (to resume in the middle of an epoch);
        `normalized=False` yields the augmented uint8 images instead (to look at them: `imgclf show --augmented`)."""
        order = self.order(epoch)
        flips = self.augment.flips(order, epoch, self.seed) if self.train else None
        in_order = not self.train and self.world_size == 1  # evaluation: batches are plain slices, no copy
        for step in range(start_step, len(self)):
            sl = slice(step * self.batch_size, (step + 1) * self.batch_size)
            if in_order:
                x, y = self.images[sl], self.labels[sl]
            else:
                idx = order[sl]
                dev_idx = idx.to(self.images.device) if self.images.device.type != "cpu" else idx
                # index_select, not images[idx]: 37 vs 170 µs for 64 CIFAR images (advanced indexing's general path)
                x, y = self.images.index_select(0, dev_idx), self.labels.index_select(0, dev_idx)
            if x.device != self.device:
                x, y = x.pin_memory().to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self.train and self.augment.active:
                x = self.augment(x, rng.generator(self.seed, epoch, step, rng.AUGMENT),
                                 None if flips is None else flips[sl])
            yield (self.normalize(x) if normalized else x), y


def _free_device_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return 1 << 62
