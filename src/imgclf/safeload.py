"""Reading a file torch.save wrote, safely: never running code from it (torch.load with weights_only=True), never
expanding it beyond a bound its size sets, and naming what a file that is no PyTorch file looks like. Below both
models (weights files) and checkpoint (checkpoints), which read through here."""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, ConfigError

# torch.save and torch.jit.save write every zip member stored (uncompressed), so their files always hold at least
# as many bytes as they expand to. A re-zipped checkpoint may be deflated: weights compress by 1.1-1.5×, so 4×
# the file's size (plus 16 MiB for small, text-heavy files) admits any honest one, and refuses a "zip bomb" that
# declares a 2 GB tensor in a 2.5 MB file before anything is decompressed. $IMGCLF_MAX_CHECKPOINT_BYTES raises it.
EXPANSION_RATIO, EXPANSION_SLACK = 4, 16 << 20
MAX_BYTES_ENV = "IMGCLF_MAX_CHECKPOINT_BYTES"


def safe_torch_load(path: Path, what: str = "checkpoint") -> Any:
    """torch.load(weights_only=True) of an existing file after check_archive: a file that would run code, or that is
    not a PyTorch file at all, is a CheckpointError naming it (`what`: "checkpoint", "weights file")."""
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} file not found")
    check_archive(path)   # before torch.load: a compressed member could expand to gigabytes
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):   # torch.save's zip archive, or its legacy pickle
        kind = ("an ONNX model? (an exported .onnx file must be named .onnx)" if head[:1] == b"\x08" else
                "a text file" if head.isascii() and head.strip() else "unknown bytes")
        raise CheckpointError(f"{path}: not a PyTorch {what}: neither torch.save's archive nor its legacy format "
                              f"({kind})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on odd pickle protocols: we report our own error
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused to load: the file holds Python objects beyond tensors and plain "
                              f"values, which could run code ({str(e).splitlines()[0][:160]}). Only load files you "
                              "trust, re-saved as a state_dict") from None
    except Exception as e:  # corrupt zip, truncated file, random bytes: all one clear message
        raise CheckpointError(f"{path}: not a readable PyTorch {what} ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160] if str(e) else 'no detail'})") from None


def check_archive(path: Path) -> None:
    """Refuse a zip archive (torch's format) whose members declare more uncompressed bytes than the bound above,
    reading only its central directory. Files that are not zips (torch's legacy format) are left to torch.load."""
    try:
        size = path.stat().st_size
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # a zip whose directory Python cannot parse: refused, not handed on to torch
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (damaged archive: "
                              f"{str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    for m in members:
        if m.compress_type == zipfile.ZIP_STORED and m.file_size != m.compress_size:
            raise CheckpointError(f"{path}: damaged archive: stored member {m.filename} declares {m.file_size:,} "
                                  f"bytes but holds {m.compress_size:,}")
    declared, cap = sum(m.file_size for m in members), _max_bytes(size)
    if declared > cap:
        packed = sum(m.compress_type != zipfile.ZIP_STORED for m in members)
        raise CheckpointError(f"{path}: refused: its {len(members)} archive members ({packed} compressed) would "
                              f"expand to {declared:,} bytes, more than {cap:,} for a {size:,}-byte file (torch.save "
                              f"never compresses). If you trust it, set {MAX_BYTES_ENV}={declared} to allow it")


def _max_bytes(size: int) -> int:
    """The most bytes a checkpoint of `size` bytes may expand to: the bound above, or the environment's if larger."""
    cap = size * EXPANSION_RATIO + EXPANSION_SLACK
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if raw:
        if not raw.isdigit():
            raise ConfigError(f"${MAX_BYTES_ENV}={raw[:40]!r}: expected a whole number of bytes")
        cap = max(cap, int(raw))
    return cap
