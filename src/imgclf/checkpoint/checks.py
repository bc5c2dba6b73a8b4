"""What a checkpoint must hold before we use it: the fields it needs, of the right types and ranges, and finite
weights. Each failure is a CheckpointError naming the file and the field."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..config import FIELDS, TrainConfig, coerce, validate
from ..errors import CheckpointError, ConfigError, shown
from ..models.fastcnn import ACTIVATIONS
from ..words import plural

MAX_SIZE, MAX_CHANNELS, MAX_CLASSES = 2048, 64, 1_000_000
NORM_LIMIT = 1e4   # normalization in [0, 1] pixel units: |mean| and 1/std at most this (1e300 and 1e-300: nan%)


def _fail(path: Path, field: str, value: Any, want: str) -> CheckpointError:
    return CheckpointError(f"{path}: field {field!r} is {shown(value)}; expected {want}. The file is damaged or was "
                           "not written by imgclf train: use the run's best.pt or last.pt")


def _whole(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _numbers(value: Any, n: int | None) -> bool:
    """A list of finite numbers, `n` long (any length but 0 when n is None)."""
    return (isinstance(value, (list, tuple)) and len(value) == (n or len(value) or -1) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))


def check_fields(ckpt: dict[str, Any], path: Path) -> None:
    """Type- and range-check the fields of one of our checkpoints that are there (a field that is needed but
    absent is for `require` to report): name, architecture, classes, normalization, settings."""
    if "model_name" in ckpt and not (isinstance(ckpt["model_name"], str) and ckpt["model_name"]):
        raise _fail(path, "model_name", ckpt["model_name"], "the network's name (see `imgclf models`)")
    if "model_args" in ckpt:
        _check_model_args(ckpt["model_args"], path)
    for part in ("model", "ema"):
        state = ckpt.get(part)
        if state is not None and not isinstance(state, dict):
            raise _fail(path, part, state, "a state_dict: names → tensors")
        odd = next(((k, v) for k, v in (state or {}).items()
                    if not (isinstance(k, str) and isinstance(v, torch.Tensor))), None)
        if odd is not None:
            raise _fail(path, f"{part}[{odd[0]!r}]", odd[1], "a tensor (a state_dict maps names to tensors)")
    args = ckpt.get("model_args") or {}
    if "classes" in ckpt:
        names, n = ckpt["classes"], args.get("num_classes")
        if not (isinstance(names, list) and names and all(isinstance(c, str) for c in names)
                and len(names) == (n or len(names))):
            raise _fail(path, "classes", names, f"a list of {n or 'the'} class names (model_args.num_classes)")
    if "normalization" in ckpt:
        norm, c = ckpt["normalization"], args.get("in_channels")
        if not (isinstance(norm, dict) and _numbers(norm.get("mean"), c) and _numbers(norm.get("std"), c)
                and all(abs(m) <= NORM_LIMIT for m in norm["mean"])
                and all(1 / NORM_LIMIT <= s <= NORM_LIMIT for s in norm["std"])):
            want = (f"{c or 'one per channel,'} numbers each, |mean| ≤ {NORM_LIMIT:g} and std in "
                    f"[{1 / NORM_LIMIT:g}, {NORM_LIMIT:g}] (pixels are in [0, 1])")
            raise _fail(path, "normalization", norm, f"{{'mean': [...], 'std': [...]}} with {want}")
    if "config" in ckpt:
        _check_config(ckpt["config"], path)
    changes = ckpt.get("thread_changes")   # a resume appends to it
    if changes is not None and not (isinstance(changes, list) and all(isinstance(c, dict) for c in changes)):
        raise _fail(path, "thread_changes", changes, "None or a list of {step, before, after, why} records")


def _check_model_args(args: Any, path: Path) -> None:
    """model_args: channels, classes, (H, W) and the activation, each within what a model can be built for."""
    if not isinstance(args, dict):
        raise _fail(path, "model_args", args, "a dict of in_channels, num_classes, image_size")
    checks = [("in_channels", _whole(args.get("in_channels"), 1, MAX_CHANNELS), f"a whole number in 1..{MAX_CHANNELS}"),
              ("num_classes", _whole(args.get("num_classes"), 1, MAX_CLASSES), f"a whole number in 1..{MAX_CLASSES:,}"),
              ("image_size", isinstance(args.get("image_size"), (list, tuple)) and len(args["image_size"]) == 2
               and all(_whole(v, 1, MAX_SIZE) for v in args["image_size"]), f"[height, width] in 1..{MAX_SIZE}"),
              ("act", args.get("act") is None or args["act"] in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}")]
    for key, ok, want in checks:
        if not ok:
            raise _fail(path, f"model_args.{key}", args.get(key), want)


def _check_config(config: Any, path: Path) -> None:
    """The run's settings, as `imgclf train` would accept them (unknown keys, from other versions, are ignored)."""
    if not isinstance(config, dict):
        raise _fail(path, "config", config, "a dict of the run's settings")
    try:
        known = {k: coerce(k, v) for k, v in config.items() if k in FIELDS}
        validate(TrainConfig(**known))
    except ConfigError as e:
        raise CheckpointError(f"{path}: field 'config': {e}; the file is damaged or was not written by imgclf "
                              "train") from None


def require(ckpt: dict[str, Any], path: str | Path, *fields: str) -> None:
    """Say which needed field a checkpoint lacks (one that was not written by imgclf train, or was edited)."""
    missing = [f for f in fields if f not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint has no {', '.join(map(repr, missing))} "
                              f"{plural('field', len(missing))}; it was not written by imgclf train or was edited. "
                              "Use the run's best.pt or last.pt (a bare state_dict needs --model)")


def check_finite(state: dict[str, Any], where: str) -> None:
    """Refuse weights holding NaN or ±inf: every prediction would be meaningless (and `eval` print nan)."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(f"{where}: weights hold NaN or infinite values ({key}: {bad:,} of "
                                  f"{value.numel():,}): every prediction from them would be meaningless. Use an "
                                  "earlier checkpoint of the run, or train again (with a lower --lr if it diverged)")
