"""Checkpoints are plain dicts of tensors and Python values, written atomically and read with
`weights_only=True`, so a file can be neither half-written nor a carrier of code."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..fileio import atomic_write
from .checkpoint_checks import check_fields, check_finite, safe_torch_load

FORMAT_VERSION = 1


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
        raise CheckpointError(f"cannot write checkpoint {path} ({reason}); "
                              f"{kept}"
                              "; free space or choose a writable --out") from None
    return path


def _reason(e: BaseException) -> str:
    code = getattr(e, "errno", None)
    if code == errno.ENOSPC or "No space left" in str(e):
        return "disk full"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"folder not writable: {os.strerror(code)}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (ours, any format version) or a plain state_dict such as the tutorial's cifar_net.pth.
    Plain state_dicts come back as {'format_version': 0, 'model': state_dict}. Never unpickles code."""
    path = Path(path)
    obj = safe_torch_load(path, "checkpoint")
    if isinstance(obj, dict) and "format_version" in obj:
        version = obj["format_version"]
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format {version!r} is newer than this imgclf understands "
                                  f"({FORMAT_VERSION}); upgrade imgclf")
        if not isinstance(obj.get("model"), dict):
            raise CheckpointError(f"{path}: checkpoint has no 'model' weights")
        obj = migrate(obj)
        check_fields(obj, path)
        return obj
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"format_version": 0, "model": obj}
    if isinstance(obj, dict) and isinstance(obj.get("model_state_dict"), dict):  # the tutorials' resume dict
        return {"format_version": 0, "model": obj["model_state_dict"], "epoch": obj.get("epoch")}
    raise CheckpointError(f"{path}: neither an imgclf checkpoint nor a state_dict of tensors")


ARCH_KEYS = ("act",)  # model_args beyond in_channels/num_classes/image_size (see models.arch_args)


def migrate(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Bring older checkpoints of our own up to date. Version 1 files written before fastcnn models recorded
    their activation were all GELU (fastcnn-small/-tiny are ReLU since): say so, so they rebuild as trained."""
    args = ckpt.get("model_args")
    if str(ckpt.get("model_name", "")).startswith("fastcnn") and isinstance(args, dict) and "act" not in args:
        ckpt["model_args"] = {**args, "act": "gelu"}
    return ckpt


def arch_of(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The architecture overrides stored in a checkpoint's model_args (empty for bare state_dicts)."""
    return {k: v for k, v in (ckpt.get("model_args") or {}).items() if k in ARCH_KEYS}


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
