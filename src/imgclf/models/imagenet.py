"""ImageNet-form networks whose state_dict keys and shapes are torchvision's, so its published weights load as-is:
ResNet-18/34/50 (He et al. 2016, with the stride on the 3×3 conv of the bottleneck: "ResNet v1.5") and
MobileNetV3-Small (Howard et al. 2019). Written here from the papers' architecture tables, not copied, so they
work where torchvision cannot be imported; when it can, the builders hand out torchvision's own models (same keys).
Every model takes any input channel count, any class count and any image size (global average pooling; the five
stride-2 stages bring 224 px down to 7, 32 px down to 1)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
from torch import nn

# ---------------------------------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    """Two 3×3 convs (ResNet-18/34); the first carries the stride; the shortcut is a strided 1×1 conv + BN
    when the shape changes."""

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(c_in, width * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (strided: v1.5) → 1×1 expand ×4 (ResNet-50)."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    """The projection shortcut (keys downsample.0 conv, downsample.1 BN), or None for the identity."""
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class ImageNetResNet(nn.Module):
    """7×7/2 conv stem, 3×3/2 max-pool, four stages (64, 128, 256, 512 wide; stride 1, 2, 2, 2), global average
    pool, `fc`. Initialised as the reference: He-normal (fan-out) convs, BN scale 1 and shift 0."""

    def __init__(self, block: type[BasicBlock | Bottleneck], depths: tuple[int, int, int, int], in_channels: int = 3,
                 num_classes: int = 1000, image_size: tuple[int, int] = (224, 224)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c = 64
        stages = []
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), depths)):
            blocks = []
            for j in range(n):
                blocks.append(block(c, width, 2 if i > 0 and j == 0 else 1))
                c = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---------------------------------------------------------------------------------------------- MobileNetV3


def round_channels(c: float, divisor: int = 8) -> int:
    """The nearest multiple of `divisor` (at least `divisor`), bumped up a step if rounding lost over 10%: the
    channel rounding of the MobileNet papers (it gives the squeeze widths of the SE blocks)."""
    rounded = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * c else rounded


# MobileNetV3-Small, the paper's Table 2: kernel, expanded width, output width, squeeze-excite, activation, stride.
MOBILENET_V3_SMALL = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
)
_ACT: dict[str, Callable[[], nn.Module]] = {"relu": lambda: nn.ReLU(inplace=True),
                                            "hardswish": lambda: nn.Hardswish(inplace=True)}


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=0.001, momentum=0.01)  # the reference's (TensorFlow-style) BN settings


def conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = None
                ) -> nn.Sequential:
    """conv (no bias) → BN → activation: keys N.0 (conv) and N.1 (BN)."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                               _bn(c_out)]
    if act is not None:
        layers.append(_ACT[act]())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel gates from the global average: 1×1 conv `fc1` → ReLU → 1×1 conv `fc2` → hard sigmoid, times x."""

    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.relu = nn.ReLU(inplace=True)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    """`block`: [1×1 expand (when widening)] → k×k depthwise (stride) → [SE] → 1×1 linear projection;
    the input is added back when stride is 1 and the width is unchanged."""

    def __init__(self, c_in: int, kernel: int, expanded: int, c_out: int, se: bool, act: str, stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(conv_bn_act(c_in, expanded, 1, act=act))
        layers.append(conv_bn_act(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if se:
            layers.append(SqueezeExcite(expanded, round_channels(expanded // 4)))
        layers.append(conv_bn_act(expanded, c_out, 1))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV3Small(nn.Module):
    """`features`: 3×3/2 conv 16 (hard-swish), the 11 inverted residuals of MOBILENET_V3_SMALL, 1×1 conv to 576;
    global average pool; `classifier`: linear 1024, hard-swish, dropout 0.2, linear to the classes."""

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, image_size: tuple[int, int] = (224, 224),
                 dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_act(in_channels, 16, 3, 2, act="hardswish")]
        c = 16
        for kernel, expanded, c_out, se, act, stride in MOBILENET_V3_SMALL:
            layers.append(InvertedResidual(c, kernel, expanded, c_out, se, act, stride))
            c = c_out
        layers.append(conv_bn_act(c, 6 * c, 1, act="hardswish"))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(6 * c, 1024), nn.Hardswish(inplace=True),
                                        nn.Dropout(dropout, inplace=True), nn.Linear(1024, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


# --------------------------------------------------------------------------------------------------- builders


@functools.lru_cache(maxsize=1)
def torchvision_models() -> ModuleType | None:
    """torchvision.models when it imports (any failure, such as a CUDA-only wheel on a CPU machine, means no)."""
    try:
        import torchvision.models as tvm
    except Exception:
        return None
    return tvm


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """(name, module) of the first Conv2d registered in `model`: the one that sees the image's channels."""
    return next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def _set_in_channels(model: nn.Module, in_channels: int) -> nn.Module:
    """Swap the stem conv of a 3-channel torchvision model for one taking `in_channels` (same key, new weights)."""
    found = first_conv(model)
    if found is None or found[1].in_channels == in_channels:
        return model
    name, old = found
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,  # type: ignore[arg-type]
                    groups=old.groups, bias=old.bias is not None)
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], new)
    return model


def _builder(ours: Callable[..., nn.Module], torchvision_name: str) -> Callable[..., nn.Module]:
    """A registry builder: torchvision's model when importable (source='auto' or 'torchvision'), else ours."""

    def build(in_channels: int = 3, num_classes: int = 1000, image_size: tuple[int, int] = (224, 224),
              source: str = "auto", **arch: Any) -> nn.Module:
        if source not in ("auto", "own", "torchvision"):
            raise ValueError(f"source must be auto, own or torchvision, got {source!r}")
        tvm = torchvision_models() if source != "own" else None
        if source == "torchvision" and tvm is None:
            raise ImportError("torchvision cannot be imported here; use source='own' (same keys and shapes)")
        if tvm is not None:
            return _set_in_channels(getattr(tvm, torchvision_name)(weights=None, num_classes=num_classes, **arch),
                                    in_channels)
        return ours(in_channels=in_channels, num_classes=num_classes, image_size=image_size, **arch)

    build.__doc__ = f"{torchvision_name} for any channels/classes/size (torchvision's when importable, else ours)."
    return build


resnet18 = _builder(functools.partial(ImageNetResNet, BasicBlock, (2, 2, 2, 2)), "resnet18")
resnet34 = _builder(functools.partial(ImageNetResNet, BasicBlock, (3, 4, 6, 3)), "resnet34")
resnet50 = _builder(functools.partial(ImageNetResNet, Bottleneck, (3, 4, 6, 3)), "resnet50")
mobilenet_v3_small = _builder(MobileNetV3Small, "mobilenet_v3_small")
