"""A network rebuilt from a checkpoint or a bare state_dict, with what predicting and evaluating as it was trained
need (classes, input size, normalization, test-time views, settings): `imgclf.load` (predict, eval) and export use
it, and an exported file opens into the same record. Weights load strictly here, for a resume too."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..models import MODELS, build_model
from .checks import check_finite, require
from .format import MODEL_FIELDS, arch_of, is_bare


@dataclass
class Rebuilt:
    """A network ready for use, on the CPU, with what using it as trained needs."""

    model: nn.Module
    model_name: str
    model_args: dict[str, Any]
    classes: list[str]
    mean: list[float]
    std: list[float]
    tta: bool = False
    tta_mirror: bool = True
    config: dict[str, Any] = field(default_factory=dict)   # the run's settings (none for a bare state_dict)
    channels_last: bool = False
    data: dict[str, Any] | None = None   # what the run trained and tested on (Dataset.identity)
    numbered_classes: bool = False       # a bare state_dict's placeholder names '0', '1', …: the data may name them


def rebuild(ckpt: dict[str, Any], path: str | Path, model: str | None = None, classes: list[str] | None = None,
            image_size: int | None = None, normalize: str = "half") -> Rebuilt:
    """The network checkpoint `ckpt` (load_checkpoint of `path`) describes, with its weights (the EMA's when it has
    them, as the run tested); `model` names another registered network for them. A bare state_dict needs `model`:
    its channels and classes are read off its weights, its input is `image_size` (else 32 for colour, 28 for gray),
    its pixels normalized as `normalize` says ('half': the tutorials' (x-0.5)/0.5, 'none'), its classes `classes`
    or numbered; each assumption is said in a warning."""
    if not is_bare(ckpt):
        require(ckpt, path, *MODEL_FIELDS)
        name, args, norm = model or ckpt["model_name"], ckpt["model_args"], ckpt["normalization"]
        net = _build(name, args, arch_of(ckpt) if name == ckpt["model_name"] else {}, path)
        load_model_state(net, ckpt["ema"] or ckpt["model"], str(path), name)
        return Rebuilt(net, name, args, list(ckpt["classes"]), norm["mean"], norm["std"], bool(ckpt["tta"]),
                       bool(ckpt["tta_mirror"]), ckpt["config"], bool(ckpt["channels_last"]), ckpt["data"])
    if model is None:
        raise CheckpointError(f"{path}: a bare state_dict does not say which network it is; pass --model "
                              f"({', '.join(MODELS)})")
    args = _infer_args(ckpt["model"], image_size)
    names = classes or [str(i) for i in range(args["num_classes"])]
    c = args["in_channels"]
    mean, std = ([0.5] * c, [0.5] * c) if normalize == "half" else ([0.0] * c, [1.0] * c)
    _say_assumed(path, args, image_size, normalize, classes)
    net = _build(model, args, {}, path)
    load_model_state(net, ckpt["model"], str(path), model)
    if len(names) != args["num_classes"]:
        raise CheckpointError(f"{path}: {len(names)} class names for a model with {args['num_classes']} outputs")
    return Rebuilt(net, model, args, list(names), mean, std, numbered_classes=classes is None)


def _infer_args(state: dict[str, torch.Tensor], image_size: int | None) -> dict[str, Any]:
    """in_channels and num_classes read off a bare state_dict (first conv / last linear weight)."""
    weights = [v for k, v in state.items() if k.endswith("weight")]
    first4 = next((w for w in weights if w.ndim == 4), None)
    last2 = [w for w in weights if w.ndim == 2]
    if not last2:
        raise CheckpointError("cannot tell the number of classes from this state_dict (no linear layer)")
    channels = int(first4.shape[1]) if first4 is not None else 3
    size = image_size or (32 if channels == 3 else 28)
    return {"in_channels": channels, "num_classes": int(last2[-1].shape[0]), "image_size": [size, size]}


def _say_assumed(path: str | Path, args: dict[str, Any], image_size: int | None, normalize: str,
                 classes: list[str] | None) -> None:
    """A bare state_dict records no input size, normalization or class names: say what is assumed for it."""
    size = args["image_size"][0]
    assumed = [f"{size}×{size} input" + ("" if image_size else " (--image-size N if it was trained at another)"),
               "pixels normalized as (x-0.5)/0.5, the tutorials' (imgclf.load(..., normalize='none') for [0, 1])"
               if normalize == "half" else "pixels in [0, 1], not normalized"]
    if classes is None:
        assumed.append("classes numbered 0.." + str(args["num_classes"] - 1))
    warnings.warn(f"{path}: a bare state_dict, which records none of this: assuming {'; '.join(assumed)}",
                  stacklevel=4)


def _build(name: str, args: dict[str, Any], arch: dict[str, Any], path: str | Path) -> nn.Module:
    """The network a checkpoint describes; a builder refusing its recorded arguments is the checkpoint's error."""
    try:
        return build_model(name, args["in_channels"], args["num_classes"], tuple(args["image_size"]), **arch)
    except (ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot build {name!r} from the checkpoint's model_args {args} "
                              f"({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})") from None


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], where: str, model_name: str) -> None:
    """Load weights strictly; a mismatch says which keys/shapes differ and what to do, NaN/inf weights are refused."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        detail = "; ".join(filter(None, [
            f"missing {', '.join(missing[:4])}" if missing else "",
            f"unexpected {', '.join(unexpected[:4])}" if unexpected else "",
            f"shape {', '.join(shapes[:3])} (file vs model)" if shapes else ""]))
        raise CheckpointError(f"{where}: weights do not fit model {model_name!r} for this data ({detail}); "
                              "pass the --model it was trained with, and data with the same classes and image size")
    check_finite(state, where)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
