"""A fast CNN for small images after the CIFAR-10 speed records (Page 2018; Jordan's airbench 2024):
a frozen patch-whitening first layer, three conv groups with max-pool, BatchNorm with frozen scales,
GELU or ReLU, global max-pool and a scaled linear head. Widths and activation are parameters so one design
serves CPU and GPU: on our 2-core CPU, GELU's forward+backward costs 3.6× ReLU's (13.0 vs 3.6 ms on a
256×32×23×23 batch), a quarter of a small net's step, so the CPU-sized models use ReLU (in place)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

# ReLU works in place: it follows BatchNorm, whose backward needs its input, not its output; saving the
# write of a new activation map measured +5-15% images/s for fastcnn-tiny/-small on our CPU.
ACTIVATIONS = {"gelu": nn.GELU, "relu": lambda: nn.ReLU(inplace=True)}


class BatchNorm(nn.BatchNorm2d):
    """BatchNorm with the scale frozen at 1 (only the shift learns) and fast-moving statistics, as in airbench."""

    def __init__(self, width: int, momentum: float = 0.6, eps: float = 1e-12) -> None:
        super().__init__(width, eps=eps, momentum=1 - momentum)
        self.weight.requires_grad = False


class ConvGroup(nn.Module):
    """conv3×3 → max-pool 2 (only while the map is ≥ 4 px) → BN → act → conv3×3 → BN → act."""

    def __init__(self, c_in: int, c_out: int, pool: bool, act: str = "gelu") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.norm1 = BatchNorm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = BatchNorm(c_out)
        self.act = ACTIVATIONS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class FastCNN(nn.Module):
    """whiten (2×2 conv, frozen) → 3 ConvGroups → global max-pool → linear / head_scale."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: tuple[int, int] = (32, 32),
                 widths: tuple[int, int, int] = (64, 256, 256), head_scale: float = 1 / 9, act: str = "gelu") -> None:
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        self.act_name = act
        k = 2
        if min(image_size) < k:   # the 2×2 whitening conv has nothing to slide over: training would crash mid-step
            raise ConfigError(f"the fastcnn models need images of at least {k}×{k} pixels, these are "
                              f"{image_size[0]}×{image_size[1]}; pass --image-size 8 (or larger) or pick another "
                              "--model")
        self.whiten = nn.Conv2d(in_channels, 2 * in_channels * k * k, k, padding=0, bias=True)
        self.whiten.weight.requires_grad = False
        self.whiten.bias.requires_grad = False
        size = min(image_size) - k + 1
        groups, c = [], self.whiten.out_channels
        for w in widths:
            pool = size >= 4
            groups.append(ConvGroup(c, w, pool, act))
            size = size // 2 if pool else size
            c = w
        self.layers = nn.Sequential(*groups)
        self.act = ACTIVATIONS[act]()
        self.head = nn.Linear(c, num_classes, bias=False)
        self.head_scale = head_scale
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.whiten:
                nn.init.dirac_(m.weight[: m.in_channels]) if m.out_channels >= m.in_channels else None

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the frozen first layer to whiten 2×2 patches of (normalized) training images: ±eigenvectors
        scaled by 1/sqrt(eigenvalue), so the next layers see decorrelated inputs from step one."""
        k = self.whiten.kernel_size[0]
        c = x.shape[1]
        patches = x.float().unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        evals, evecs = torch.linalg.eigh(cov.double())
        w = (evecs.T / torch.sqrt(evals[:, None] + eps)).float().reshape(-1, c, k, k)
        self.whiten.weight.copy_(torch.cat([w, -w]).to(self.whiten.weight.dtype))
        self.whiten.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.whiten(x))
        x = self.layers(x)
        x = torch.amax(x, dim=(2, 3))
        return self.head(x) * self.head_scale
