"""The decoded-folder cache, one entry per key (folder.py's file list and size): `<key>.images.npy` (uint8
N×C×H×W, memory-mapped when read), `<key>.labels.npy` and `<key>.meta.json` (the files kept and skipped, the
array's shape and a CRC-32 per 4 MiB block; written last, so its presence says the entry is complete), and beside
them what other modules computed from the entry (DERIVED: cacheparts.py), removed with it. A first
decode writes straight into a preallocated memory-mapped temporary file (ImageSink), so its peak memory is the
chunks in flight, not the folder; a damaged entry is found on open, removed and rebuilt."""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import json
import os
import random
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..fileio import atomic_write, commit, temporary_name

CACHE_VERSION = 5  # in every key; 5: 16-bit and float images scaled by their mode; 4: ctime and inode in the key,
                   # checksums in meta.json; 3: files kept and skipped
BLOCK = 4 << 20               # bytes of image data per CRC-32
FULL_CHECK_BYTES = 1 << 30    # up to 1 GiB every block is verified on every open (crc32: ~4 GB/s from the page cache)
SAMPLED_BLOCKS = 64           # above it, the first, the last and 64 random blocks (256 MiB) per open
_COPY_ROWS = 1024
KEY = re.compile(r"^[0-9a-f]{24}$")   # folder._cache_key's form: the cache touches only names made of one
DERIVED = ("hashes.npz", "headers.npz")   # parts computed from an entry and kept beside it (cacheparts.py)
# fileio.temporary_name's pattern for the cache's own files: the pid is the writer's
_TEMPORARY = re.compile(r"^\.[0-9a-f]{24}\.(?:images\.npy|labels\.npy|meta\.json|size\.json|hashes\.npz|headers\.npz)"
                        r"\.tmp(\d+)$")


@dataclass(frozen=True)
class Entry:
    """The three files of one cache entry."""

    images: Path
    labels: Path
    meta: Path

    @classmethod
    def at(cls, cache_dir: Path, key: str) -> Entry:
        return cls(*(cache_dir / f"{key}.{part}" for part in ("images.npy", "labels.npy", "meta.json")))

    @property
    def key(self) -> str:
        return self.meta.name.split(".", 1)[0]

    def remove(self) -> None:
        """Delete whatever exists of the entry (a damaged or half-written one), and what was computed from it."""
        for p in (self.meta, self.images, self.labels, *(self.meta.with_name(f"{self.key}.{d}") for d in DERIVED)):
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)


def block_crcs(images: np.ndarray) -> list[int]:
    """CRC-32 of each BLOCK bytes of a C-contiguous array (a memory map is read block by block, not copied)."""
    flat = images.reshape(-1)
    return [zlib.crc32(flat[i:i + BLOCK]) for i in range(0, flat.size, BLOCK)]


def _verify_blocks(images: np.ndarray, crcs: list[int]) -> None:
    """Raise ValueError naming the first block whose bytes do not match `crcs`. Every block up to FULL_CHECK_BYTES;
    beyond that, reading the whole array on each open would defeat streaming a folder larger than RAM from disk,
    so a random sample per open (its own RNG, never the training seed's): damage is found on some later open."""
    flat = images.reshape(-1)
    n = -(-flat.size // BLOCK)
    if len(crcs) != n:
        raise ValueError(f"{len(crcs)} checksums for {n} blocks")
    which = range(n) if flat.size <= FULL_CHECK_BYTES else \
        sorted({0, n - 1, *random.Random().sample(range(n), min(n, SAMPLED_BLOCKS))})
    for b in which:
        if zlib.crc32(flat[b * BLOCK:(b + 1) * BLOCK]) != crcs[b]:
            raise ValueError(f"checksum mismatch in bytes {b * BLOCK:,}–{min(flat.size, (b + 1) * BLOCK):,}")


def open_entry(entry: Entry, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """A complete, intact entry (images memory-mapped copy-on-write, labels, meta), or None. `labels` are the
    file list's, so the entry must match them too. A damaged entry (truncated, other shape, wrong labels, a
    checksum mismatch) is removed with a one-line notice, so the caller decodes again."""
    if not entry.meta.is_file():
        return None
    try:
        meta = json.loads(entry.meta.read_text())
        _check_meta(meta)
        want = labels if meta["kept"] is None else labels[np.asarray(meta["kept"], dtype=np.int64)]
        images, got = np.load(entry.images, mmap_mode="c"), np.load(entry.labels)
        if images.dtype != np.uint8 or list(images.shape) != meta["shape"] or len(images) != len(want):
            raise ValueError(f"{images.dtype} {images.shape} images for {len(want)} files, {meta['shape']} recorded")
        if not np.array_equal(got, want):
            raise ValueError("its labels do not match the class folders")
        _verify_blocks(images, meta["crc32"])
        return images, got, meta
    except Exception as e:   # whatever a damaged file makes numpy raise (a broken .npy header: TokenError, MemoryError)
        warnings.warn(f"damaged cache entry {entry.images.name} ({type(e).__name__}: {str(e)[:120]}): removed, "
                      "decoding again", stacklevel=3)
        entry.remove()
        return None


def _check_meta(meta: Any) -> None:
    """Raise ValueError naming the first field of a meta.json that is not as write_entry writes it (a record
    edited or damaged by hand): a JSON error is not the only damage a cache entry can have."""
    if not isinstance(meta, dict):
        raise ValueError(f"meta.json holds a {type(meta).__name__}, not a record")
    kept = meta.get("kept")
    checks = {"kept": kept is None or (_ints(kept) and all(a < b for a, b in itertools.pairwise(kept))),
              "skipped": isinstance(meta.get("skipped"), list) and all(isinstance(s, str) for s in meta["skipped"]),
              "shape": _ints(meta.get("shape")) and len(meta["shape"]) == 4,
              "crc32": _ints(meta.get("crc32"))}
    bad = next((k for k, ok in checks.items() if not ok), None)
    if bad is not None:
        raise ValueError(f"meta.json's {bad!r} is {json.dumps(meta.get(bad))[:40]}, not as imgclf writes it")


def _ints(value: Any) -> bool:
    """A list of integers from 0 up (JSON's true and false are no integers here)."""
    return isinstance(value, list) and all(type(v) is int and v >= 0 for v in value)


def write_entry(entry: Entry, labels: np.ndarray, meta: dict) -> bool:
    """Write labels then meta (last: the entry is complete) beside committed images; on an OSError remove the
    entry, warn once and return False (the caller keeps its images: a mapping outlives its file's removal)."""
    try:
        with atomic_write(entry.labels) as f:
            np.save(f, labels)
        with atomic_write(entry.meta, text=True) as f:
            json.dump(meta, f)
        return True
    except OSError as e:
        entry.remove()
        _warn_unwritable(entry.images.parent, e)
        return False


def _warn_unwritable(folder: Path, e: OSError) -> None:
    warnings.warn(f"cannot write the image cache in {folder} ({e.strerror or e}); training from memory this time "
                  "(set IMGCLF_CACHE_DIR to a writable folder to keep the decoded images)", stacklevel=4)


def remove_orphans(cache_dir: Path) -> None:
    """Delete the temporary files of writers that were killed (SIGKILL, power loss): fileio.temporary_name puts
    the writer's pid in the name, and a live writer's file is left alone. POSIX only (os.kill(pid, 0) probes)."""
    if os.name != "posix":
        return
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    for name in names:
        m = _TEMPORARY.match(name)
        if m and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(cache_dir / name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True   # exists, another user's
    return True


class ImageSink:
    """Where a first decode puts its images, one at a time at the next kept index (a skipped file leaves no gap):
    a preallocated memory-mapped .npy at a temporary name beside `target`, or an array in memory when there is
    no target or its folder cannot be written. Shape and channels come from the first image; a colour image
    after grayscale ones widens what is written to RGB (a mixed folder trains as RGB)."""

    def __init__(self, target: Path | None, total: int, root: Path):
        self.target, self.total, self.root = target, total, root
        self.array: np.ndarray | None = None
        self.tmp: Path | None = None
        self.kept: list[int] = []
        self.example = ""   # a file of the array's size, for the error when another differs

    def add(self, index: int, image: np.ndarray, path: str) -> None:
        """Put file number `index`'s decoded (C, H, W) image at the next row."""
        if self.array is None:
            self.array, self.tmp = self._allocate(image.shape)
            self.example = path
        elif image.shape[1:] != self.array.shape[2:]:
            (h, w), (h2, w2) = self.array.shape[2:], image.shape[1:]
            raise DataError(f"{self.root}: images differ in size ({h}×{w} e.g. {self.example}; {h2}×{w2} e.g. "
                            f"{path}); pass --image-size N to resize them all")
        elif image.shape[0] > self.array.shape[1]:
            self._widen()
        self.array[len(self.kept)] = image     # a grayscale image into an RGB array broadcasts to 3 channels
        self.kept.append(index)

    def _allocate(self, shape: tuple[int, ...], suffix: str = "") -> tuple[np.ndarray, Path | None]:
        """A (total, *shape) array: memory-mapped at a temporary name with its disk space claimed up front, else
        (no target, an unwritable or full folder: warned once) in memory."""
        full = (self.total, *shape)
        if self.target is not None:
            tmp = temporary_name(self.target.with_name(self.target.name + suffix))
            try:
                self.target.parent.mkdir(parents=True, exist_ok=True)
                array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=full)
                _reserve(tmp, array.offset + array.nbytes)
                return array, tmp
            except OSError as e:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
                _warn_unwritable(self.target.parent, e)
                self.discard()
                self.target = None
        return np.empty(full, np.uint8), None

    def _widen(self) -> None:
        """Copy the grayscale rows written so far into a new 3-channel array, in slices (bounded memory)."""
        old, old_tmp, n = self.array, self.tmp, len(self.kept)
        self.array, self.tmp = self._allocate((3, *old.shape[2:]), suffix=".rgb")
        for i in range(0, n, _COPY_ROWS):
            self.array[i:min(n, i + _COPY_ROWS)] = old[i:min(n, i + _COPY_ROWS)]
        del old
        if old_tmp is not None:
            old_tmp.unlink(missing_ok=True)

    def finish(self) -> tuple[np.ndarray, list[int] | None]:
        """(the kept images, their block checksums): committed as `target` and reopened copy-on-write, as a later
        run opens them, or (checksums None) in memory where the cache cannot be written."""
        n = len(self.kept)
        if self.tmp is None:
            return self.array[:n], None
        try:
            crcs = block_crcs(self.array[:n])
            self.array.flush()
            offset = self.array.offset
            self.array = None
            if n < self.total:
                _shrink_npy(self.tmp, n, offset)
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
            commit(self.tmp, self.target)
            self.tmp = None
            return np.load(self.target, mmap_mode="c"), crcs
        except OSError as e:
            _warn_unwritable(self.target.parent, e)
            images = np.load(self.tmp, mmap_mode="c")   # the mapping outlives the file's removal
            self.discard()
            return images, None

    def discard(self) -> None:
        """Remove the temporary file (an error, an interrupt, or no cache after all)."""
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                self.tmp.unlink(missing_ok=True)
            self.tmp = None


def _reserve(path: Path, size: int) -> None:
    """Claim the file's disk blocks now, so a full disk fails here (ENOSPC, then the memory fallback) rather than
    as a SIGBUS when a page of the memory map is first written."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):   # not supported here: nothing claimed
            raise
    finally:
        os.close(fd)


def _shrink_npy(path: Path, rows: int, offset: int) -> None:
    """Keep the first `rows` of a uint8 .npy in place: numpy pads the header so the first axis can change without
    moving the data, so rewrite the header and cut the file; a numpy that did not pad gets a compact copy."""
    shape = np.load(path, mmap_mode="r").shape
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "|u1", "fortran_order": False, "shape": (rows, *shape[1:])})
    if len(head.getvalue()) != offset:
        with atomic_write(path) as f:
            np.save(f, np.load(path, mmap_mode="r")[:rows])
        return
    with open(path, "rb+") as f:
        f.write(head.getvalue())
        f.truncate(offset + rows * int(np.prod(shape[1:])))
