"""The folder cache as a whole (foldercache.py is one entry in it): what it holds, and removing what no run can
use again. Every edit of an image folder gives it a new key, so without this each version of a folder would keep
its decoded copy (CIFAR-10 at 32×32: 184 MB) for good. Removing a cache entry loses nothing a user made: a run
that needs it decodes the folder again."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .foldercache import CACHE_VERSION, DERIVED, KEY, Entry

STALE_SECONDS = 3600.0   # an entry still without its meta.json after this long was left by a killed first decode:
                         # a live writer writes labels and meta.json within seconds of committing the images
_PARTS = ("images.npy", "labels.npy", "meta.json", "size.json", *DERIVED)


@dataclass
class Cached:
    """One key's files in the cache folder."""

    key: str
    files: list[Path]
    folder: str | None       # the image folder (a CSV, a Hugging Face dataset) it was decoded from (None: an entry
                             # from before imgclf recorded it)
    variant: Any             # [image size, fit] the images were decoded at, None (their own size), ['auto', cap]
                             # for a size choice
    shape: list[int] | None  # images N×C×H×W (None: no complete entry, only a size choice or a killed decode)
    version: int | None      # CACHE_VERSION it was written at (4 before meta.json recorded it; None: no meta.json)
    bytes: int
    modified: float          # newest file's mtime (seconds since the epoch)

    @property
    def complete(self) -> bool:
        return any(p.name.endswith(".meta.json") for p in self.files)

    @property
    def orphaned(self) -> bool:
        """Only parts computed from an entry (DERIVED), the entry itself gone: they are written only while it is
        complete and removed with it, so only a removal that raced their writer leaves them."""
        return all(p.name.endswith(DERIVED) for p in self.files)

    def remove(self) -> None:
        """Delete the key's files; meta.json first, so that a half-removed entry reads as incomplete, not damaged."""
        for p in sorted(self.files, key=lambda p: not p.name.endswith(".meta.json")):
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)


def entries(cache_dir: Path) -> list[Cached]:
    """Every key in `cache_dir` with its files, newest first ([] when the folder does not exist). Temporary files
    of writers (hidden names) are not entries: foldercache.remove_orphans deals with those."""
    groups: dict[str, list[Path]] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir(cache_dir):
            key, _, part = name.partition(".")
            if part in _PARTS and KEY.match(key):   # a name the cache made: never a user's own file
                groups.setdefault(key, []).append(cache_dir / name)
    out = []
    for key, files in groups.items():
        stats = [s for s in (_stat(p) for p in files) if s is not None]
        meta = _record(Entry.at(cache_dir, key).meta)
        record = meta or _record(cache_dir / f"{key}.size.json")   # a size choice (folder.choose_size)
        shape = meta.get("shape")
        version = meta.get("version", 4 if "crc32" in meta else 3) if meta else None
        out.append(Cached(key, files, record.get("folder"), record.get("variant"), shape if isinstance(shape, list)
                          else None, version, sum(s.st_size for s in stats),
                          max((s.st_mtime for s in stats), default=0.0)))
    return sorted(out, key=lambda c: -c.modified)


def prune(cache_dir: Path, keep: str | None = None, folder: str | None = None, variant: Any = None,
          missing_folders: bool = False, now: float | None = None) -> list[Cached]:
    """Remove (and return) what no run can use again: entries of `folder` at `variant` other than `keep` (the
    entry just written for the folder as it is now supersedes them), entries of an older CACHE_VERSION (no key
    reaches them), entries a killed first decode left incomplete more than STALE_SECONDS ago, parts computed from an
    entry that is gone, and with `missing_folders`, entries whose image folder no longer exists."""
    now = time.time() if now is None else now
    variant = json.loads(json.dumps(variant))   # as meta.json holds it: tuples are lists there
    gone = []
    for c in entries(cache_dir):
        if c.key == keep:
            continue
        superseded = folder is not None and c.folder == folder and c.variant == variant
        stale = not c.complete and now - c.modified > STALE_SECONDS and \
            any(p.name.endswith((".images.npy", ".labels.npy")) for p in c.files)
        outdated = c.version is not None and c.version != CACHE_VERSION
        vanished = missing_folders and c.folder is not None and not Path(c.folder).exists()   # a folder, a CSV
        if superseded or outdated or stale or vanished or c.orphaned:
            c.remove()
            gone.append(c)
    return gone


def clear(cache_dir: Path) -> list[Cached]:
    """Remove every entry (and size choice) in `cache_dir`; return what was removed."""
    gone = entries(cache_dir)
    for c in gone:
        c.remove()
    return gone


def disk_free(cache_dir: Path) -> int | None:
    """Bytes free on the cache folder's disk (None if it cannot be told)."""
    with contextlib.suppress(OSError):
        return shutil.disk_usage(cache_dir).free
    return None


def _stat(p: Path) -> os.stat_result | None:
    with contextlib.suppress(OSError):
        return p.stat()
    return None


def _record(path: Path) -> dict[str, Any]:
    """A meta.json or size.json as a dict ({} if missing or unreadable: their readers judge damage, not this)."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}
