"""The PyTorch tutorials' networks, with the tutorials' attribute names so their saved state_dicts load as-is."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


def _after_conv_pool(size: int, kernel: int = 5) -> int:
    return (size - kernel + 1) // 2


def _capturing_graph() -> bool:
    """True while torch.onnx, torch.export or torch.jit (trace/script) records the forward as a graph: speed
    tricks for one backend's kernels must not be baked into a graph that runs elsewhere."""
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    return torch.jit.is_scripting() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or exporting()


class TutorialNet(nn.Module):
    """The CIFAR-10 tutorial's `Net`: conv 6@5×5, pool, conv 16@5×5, pool, fc 120, fc 84, fc classes.
    fc1's input follows the image size (400 at 32×32, exactly the tutorial)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: tuple[int, int] = (32, 32)) -> None:
        super().__init__()
        h, w = (_after_conv_pool(_after_conv_pool(s)) for s in image_size)
        if h < 1 or w < 1:
            raise ConfigError(f"tutorial-net needs images of at least 16×16, these are "
                              f"{image_size[0]}×{image_size[1]}; "
                              "pass --image-size 32 or pick another --model")
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * h * w, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # relu(pool(x)) == pool(relu(x)) exactly (max commutes with a monotone function); pooling first runs
        # the relu and its backward on a quarter of the elements.
        w1, b1, w2 = self.conv1.weight, self.conv1.bias, self.conv2.weight
        if x.device.type == "cpu" and not _capturing_graph():
            # CPU kernels (oneDNN conv, max-pool) work on 8 channels at a time (one AVX2 register of floats);
            # 6 channels run their slow remainder path. Two all-zero extra filters in conv1 and matching zero
            # input weights in conv2 compute the same numbers with the same parameters: 1.14x training and
            # 1.39x inference img/s on our 2-core CPU (benchmarks/channel_padding.py, RESULTS.md). Not while
            # exporting (ONNX, TorchScript): the legacy ONNX exporter cannot convert it, and a graph is the plain net.
            pad = -self.conv1.out_channels % 8
            w1, b1 = F.pad(w1, (0, 0, 0, 0, 0, 0, 0, pad)), F.pad(b1, (0, pad))
            w2 = F.pad(w2, (0, 0, 0, 0, 0, pad))
        x = F.relu(self.pool(F.conv2d(x, w1, b1)))
        x = F.relu(self.pool(F.conv2d(x, w2, self.conv2.bias)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class TutorialClassifier(nn.Module):
    """The one-conv tutorial variant: conv 16@5×5, pool, fc 128, fc classes."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: tuple[int, int] = (32, 32)) -> None:
        super().__init__()
        h, w = (_after_conv_pool(s) for s in image_size)
        if h < 1 or w < 1:
            raise ConfigError(f"tutorial-classifier needs images of at least 6×6, these are {image_size}")
        self.conv1 = nn.Conv2d(in_channels, 16, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(16 * h * w, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


class MLP(nn.Module):
    """The Fashion-MNIST tutorial's MLP: flatten → 256 → 128 → classes, ReLU."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: tuple[int, int] = (28, 28)) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.layers = nn.Sequential(
            nn.Linear(in_channels * image_size[0] * image_size[1], 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.flatten(x))
