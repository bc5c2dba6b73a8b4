"""What find_duplicates found, kept in `$IMGCLF_CACHE_DIR/duplicates/<key>.json`, so that a run on data it has
looked at before pays a digest of the pixels and one small read (MNIST's 70,000 images: seconds to hash and index
otherwise). The key is every split's pixels, labels and order, and the rules' version: other data never reads a stale
result. A damaged file is removed with a one-line notice and the work done again; the folder is imgclf's own."""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import write_text_atomic
from .split import Split

Found = list[tuple[str, int, int, int]]


def duplicates_dir() -> Path:
    from .registry import cache_dir  # registry loads folders, which keep repeated images together (together.py)
    return cache_dir() / "duplicates"


def findings_key(splits: list[Split], rules: list[Any]) -> str:
    """The key of a result: `rules` (the hash and index version and thresholds), then per split its name, labels
    and pixels (a folder split's cache-entry digest and rows; otherwise the pixels themselves)."""
    h = hashlib.blake2b(json.dumps(rules).encode(), digest_size=12)
    for s in splits:
        h.update(json.dumps([s.name, list(s.images.shape)]).encode())
        h.update(np.ascontiguousarray(s.labels.cpu().numpy()).data)
        if s.origin is not None and len(s.origin.rows) == len(s):
            h.update(s.origin.digest.encode())
            h.update(np.ascontiguousarray(s.origin.rows).data)
        else:
            images = s.images.cpu()
            for i in range(0, len(images), 4096):   # a memory-mapped split is read in chunks, never copied whole
                h.update(np.ascontiguousarray(images[i:i + 4096].numpy()).data)
    return h.hexdigest()


def read_found(key: str) -> tuple[Found, float] | None:
    """The pairs (kind, image, other image, distance: indices over all splits) and the dense share stored under
    `key`, or None when there are none or they are damaged (then removed, said once)."""
    record = read_record(key, lambda r: isinstance(r.get("dense"), float | int))
    if record is None:
        return None
    return [(str(k), int(a), int(b), int(d)) for k, a, b, d in record["found"]], float(record["dense"])


def write_found(key: str, found: Found, dense: float) -> None:
    write_record(key, {"dense": dense, "found": [list(f) for f in found]})


def read_record(key: str, valid: Any = lambda record: True) -> dict[str, Any] | None:
    """The record kept under `key` (checked by `valid`, and by reading it whole), or None when there is none or it
    is damaged (then removed, said once)."""
    path = duplicates_dir() / f"{key}.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or record.get("key") != key or not valid(record):
            raise ValueError("its record is not as imgclf writes it")
        for k, a, b, d in record.get("found", []):
            str(k), int(a), int(b), int(d)
        for group in record.get("groups", []):
            [int(i) for i in group]
        return record
    except Exception as e:   # whatever a damaged file makes json or the unpacking raise
        warnings.warn(f"damaged duplicates cache entry {path.name} ({type(e).__name__}: {str(e)[:100]}): removed, "
                      "looking again", stacklevel=3)
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def write_record(key: str, record: dict[str, Any]) -> None:
    """Keep a record; a read-only or full cache folder costs the work next time, nothing more."""
    with contextlib.suppress(OSError):
        duplicates_dir().mkdir(parents=True, exist_ok=True)
        write_text_atomic(duplicates_dir() / f"{key}.json", json.dumps({"key": key, **record}))


def clear_found() -> tuple[int, int]:
    """Remove every kept result: (files, bytes). Only this folder's <key>.json files are touched."""
    count = size = 0
    folder = duplicates_dir()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            size += path.stat().st_size
            path.unlink()
            count += 1
    with contextlib.suppress(OSError):
        folder.rmdir()   # only when empty: a file of someone else's stays, and so does the folder
    return count, size
