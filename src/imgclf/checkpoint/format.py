"""The checkpoint format: a plain dict of tensors and Python values (the fields below, and the version that names
them), written atomically and read with `weights_only=True`, so a file can be neither half-written nor a carrier of
code. A bare state_dict (weights only, as the tutorials save them) reads as format 0; any other format is refused."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..errors import CheckpointError
from ..fileio import atomic_write
from ..safeload import safe_torch_load
from .checks import check_fields


@dataclass
class Progress:
    """Where a run is: what a checkpoint must hold (besides weights and states) for a resume to continue exactly."""

    epoch: int = 0                  # epochs completed
    step_in_epoch: int = 0          # steps done in the current epoch (mid-epoch saves)
    global_step: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)   # one row per epoch (metrics.csv)
    train_seconds: float = 0.0
    epoch_sums: list[float | int] | None = None                    # EpochTotals.saved() of a mid-epoch save
    epoch_seconds: float = 0.0                                     # the epoch's training time up to that save
    stopped_early: bool = False                                    # --patience ended the run before its last epoch
    # the thread count's changes while training (engine/threads.py: step, before, after, why); None where the count
    # is not the machine's choice (--threads, OMP_NUM_THREADS, a GPU), so a resume does not re-check it either
    thread_changes: list[dict[str, Any]] | None = None


FORMAT_VERSION = 2
BARE = 0   # the format load_checkpoint gives a bare state_dict
# What every checkpoint holds: its network rebuilt and used as it was trained and tested (rebuild.py, export).
MODEL_FIELDS = ("model_name", "model_args", "model", "ema", "classes", "normalization", "tta", "tta_mirror",
                "channels_last", "config", "dataset", "data")
# What a run's checkpoint holds besides: what --resume continues from (engine/setup.py's Run.restore).
RUN_FIELDS = ("run_id", "optimizer", "scaler", "lookahead", "budget_plan", "probe", *Progress.__dataclass_fields__)
# Progress fields added within this format: a checkpoint written before them lacks them and reads as their defaults
ADDED_FIELDS = ("thread_changes",)
ARCH_KEYS = ("act",)   # model_args beyond in_channels, num_classes and image_size: a model's `<key>_name`


def new_checkpoint(fields: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of this format: `fields` are the MODEL_FIELDS, with or without all the RUN_FIELDS."""
    if set(fields) not in ({*MODEL_FIELDS}, {*MODEL_FIELDS, *RUN_FIELDS}):
        raise ValueError(f"fields {sorted(fields)} are not those of checkpoint format {FORMAT_VERSION} (format.py)")
    return {"format_version": FORMAT_VERSION, "imgclf_version": __version__, **fields}


def model_args(model: nn.Module, shape: tuple[int, int, int], num_classes: int) -> dict[str, Any]:
    """What rebuilding `model` takes: the data's channels, classes and (H, W), and its ARCH_KEYS settings."""
    c, h, w = shape
    arch = {k: getattr(model, f"{k}_name") for k in ARCH_KEYS if hasattr(model, f"{k}_name")}
    return {"in_channels": c, "num_classes": num_classes, "image_size": [h, w], **arch}


def arch_of(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The architecture settings stored in a checkpoint's model_args."""
    return {k: v for k, v in ckpt["model_args"].items() if k in ARCH_KEYS}


def is_bare(ckpt: dict[str, Any]) -> bool:
    """Whether load_checkpoint read a bare state_dict (weights only: no name, classes or normalization)."""
    return ckpt["format_version"] == BARE


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> Path:
    """Write `obj` to `path` via a temporary file in the same folder (write, flush, fsync, rename), so a crash or
    a full disk leaves the previous file intact. Raises CheckpointError with the reason."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            torch.save(obj, f)
    except (OSError, RuntimeError) as e:
        reason = _reason(e)
        kept = f"the previous {path.name} is untouched" if path.exists() else "nothing was saved"
        raise CheckpointError(f"cannot write checkpoint {path} ({reason}); {kept}; free space or choose a writable "
                              "--out") from None
    return path


def _reason(e: BaseException) -> str:
    code = getattr(e, "errno", None)
    if code == errno.ENOSPC or "No space left" in str(e):
        return "disk full"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"folder not writable: {os.strerror(code)}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint of this format, its fields checked, or a bare state_dict such as the tutorial's
    cifar_net.pth (or the weights of the tutorials' resume dict), which comes back as {'format_version': 0, 'model':
    state_dict}. Never unpickles code."""
    path = Path(path)
    obj = safe_torch_load(path, "checkpoint")
    if isinstance(obj, dict) and "format_version" in obj:
        version = obj["format_version"]
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format {version!r} is newer than this imgclf understands "
                                  f"({FORMAT_VERSION}); upgrade imgclf")
        if version < FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format {version}, written by an earlier imgclf (this one reads "
                                  f"{FORMAT_VERSION}); train it again, or re-save it with the imgclf that wrote it")
        if not isinstance(obj.get("model"), dict):
            raise CheckpointError(f"{path}: checkpoint has no 'model' weights")
        check_fields(obj, path)
        return obj
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"format_version": BARE, "model": obj}
    if isinstance(obj, dict) and isinstance(obj.get("model_state_dict"), dict):  # the tutorials' resume dict
        return {"format_version": BARE, "model": obj["model_state_dict"], "epoch": obj.get("epoch")}
    raise CheckpointError(f"{path}: neither an imgclf checkpoint nor a state_dict of tensors")
