"""Your own images: `root/<class>/*` or `root/{train,val,test}/<class>/*`, decoded once on all cores and
cached as a uint8 array keyed on the file list, sizes and mtimes, so the next run opens in about a second."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import signal
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..fileio import atomic_write
from .images import decode_image, image_dims, walk_images
from .split import Dataset, Split, stable_holdout

CACHE_VERSION = 3  # 3: meta.json records the files kept and skipped; 2: torch's antialiased resize, not PIL's
_CHUNK = 256


@dataclass
class FileList:
    """The image files of one split and their class indices, in a fixed (sorted) order."""

    root: Path
    files: list[str]
    labels: list[int]
    classes: list[str]
    signature: list[str]  # "relative path, size, mtime" per file: what the cache key is made of


def scan_split(root: Path, classes: list[str] | None = None) -> FileList:
    """List `root/<class>/<image>` files; each subfolder is a class, sorted by name."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = found
    files, labels, signature = [], [], []
    prefix = len(str(root)) + 1
    for ci, c in enumerate(classes):
        folder = root / c
        if not folder.is_dir():
            continue
        for path, st in walk_images(folder):
            files.append(path)
            labels.append(ci)
            signature.append(f"{path[prefix:]}\0{st.st_size} {st.st_mtime_ns}")
    return FileList(root, files, labels, classes, signature)


def _check_classes(train: FileList) -> None:
    if not train.classes:
        raise DataError(f"{train.root}: no class folders found; expected {train.root}/<class name>/<image files>")
    counts = np.bincount(np.asarray(train.labels, dtype=np.int64), minlength=len(train.classes))
    empty = [c for c, n in zip(train.classes, counts) if n == 0]
    if empty:
        raise DataError(f"{train.root}: class folder(s) {', '.join(empty)} hold no images "
                        "(.jpg/.png/.bmp/.webp/.gif); add images or remove the folder")
    if len(train.classes) < 2:
        raise DataError(f"{train.root}: only one class folder ({train.classes[0]}); a classifier needs at least two")


def _cache_key(fl: FileList, image_size: tuple[int, int] | None) -> str:
    h = hashlib.sha256(json.dumps([CACHE_VERSION, str(fl.root.resolve()), image_size, fl.classes]).encode())
    h.update("\n".join(fl.signature).encode())
    return h.hexdigest()[:24]


def _worker_init() -> None:
    """Decode workers are forked from a process that may have used torch's thread pool: one thread each. On
    Linux each asks to be killed when its parent dies, so a killed first decode leaves no orphan workers."""
    torch.set_num_threads(1)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def _decode_chunk(args: tuple[list[str], tuple[int, int] | None, str]) -> list[np.ndarray | str]:
    paths, size, fit = args
    out: list[np.ndarray | str] = []
    for p in paths:
        try:
            out.append(decode_image(p, size, fit=fit))
        except DataError as e:
            out.append(str(e))
    return out


def decode_files(files: list[str], size: tuple[int, int] | None, fit: str = "crop", workers: int | None = None,
                 desc: str = "decoding") -> list[np.ndarray | str]:
    """Decode every file on all cores with a progress bar; each result is an array or an error message."""
    from rich.progress import Progress  # imported here: only a first, uncached load needs it

    workers = workers or os.cpu_count() or 1
    chunks = [(files[i:i + _CHUNK], size, fit) for i in range(0, len(files), _CHUNK)]
    results: list[np.ndarray | str] = []
    # transient, and only on a terminal: a log file (or `--quiet`'s one line) gets no blank line from it
    with Progress(transient=True, disable=not sys.stdout.isatty()) as bar:
        task = bar.add_task(desc, total=len(files))
        if workers == 1 or len(chunks) == 1:
            for ch in chunks:
                results.extend(_decode_chunk(ch))
                bar.advance(task, len(ch[0]))
        else:
            with ProcessPoolExecutor(workers, initializer=_worker_init) as pool:
                for res in pool.map(_decode_chunk, chunks):
                    results.extend(res)
                    bar.advance(task, len(res))
    return results


def _report_skipped(bad: list[str], strict: bool) -> None:
    """Unreadable files: an error with --strict-images, else a warning naming each (the first 10): on every run,
    the cached ones too (the cache records them)."""
    if bad and strict:
        raise DataError(f"{len(bad)} unreadable image(s); first: {bad[0]} (drop --strict-images to skip them)")
    for msg in bad[:10]:
        warnings.warn(f"skipped {msg}", stacklevel=4)
    if len(bad) > 10:
        warnings.warn(f"skipped {len(bad) - 10} more unreadable images", stacklevel=4)


def _stack(fl: FileList, results: list[np.ndarray | str], strict: bool
           ) -> tuple[np.ndarray, np.ndarray, list[int], list[str]]:
    """(images, labels, the indices of the files kept, the messages of the files skipped)."""
    bad = [r for r in results if isinstance(r, str)]
    _report_skipped(bad, strict)
    keep = [i for i, r in enumerate(results) if not isinstance(r, str)]
    arrays = [results[i] for i in keep]
    if not arrays:
        raise DataError(f"{fl.root}: none of the {len(results)} image files could be read")
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) > 1:
        example = {}
        for i, a in zip(keep, arrays):
            example.setdefault(a.shape[1:], fl.files[i])
        listing = "; ".join(f"{h}×{w} e.g. {p}" for (h, w), p in list(example.items())[:3])
        raise DataError(f"{fl.root}: images differ in size ({listing}); pass --image-size N to resize them all")
    if any(a.shape[0] == 3 for a in arrays):  # mixed grayscale and colour: make all RGB
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    return np.stack(arrays), np.asarray([fl.labels[i] for i in keep], dtype=np.int64), keep, bad


def load_split_cached(fl: FileList, name: str, image_size: tuple[int, int] | None, cache_dir: Path,
                      strict: bool = False, fit: str = "crop") -> Split:
    """Decode `fl` (or open its cache), returning a Split. The cached images are memory-mapped copy-on-write:
    nothing is read up front (pages come from the OS file cache as batches touch them; a copy took 0.03-0.6 s
    for CIFAR-10 on our VMs), a dataset larger than RAM streams from disk, and the file is never written.
    A damaged cache entry is removed and rebuilt; a cache folder that cannot be written is done without."""
    key = _cache_key(fl, [image_size, fit] if image_size else None)
    paths = [cache_dir / f"{key}.{part}" for part in ("images.npy", "labels.npy", "meta.json")]
    cached = _open_cached(*paths, expected=len(fl.files))
    if cached is None:
        images, labels, kept, bad = _stack(fl, decode_files(fl.files, image_size, fit, desc=f"decoding {name} images"),
                                           strict)
        meta = {"kept": None if len(kept) == len(fl.files) else kept, "skipped": bad}
        if _write_cache(paths, images, labels, meta):
            cached = _open_cached(*paths, expected=len(fl.files))
        if cached is None:   # not cached (an unwritable folder): train from the arrays in memory
            cached = images, labels, meta
    else:
        _report_skipped(cached[2]["skipped"], strict)
    images, labels, meta = cached
    prefix = len(str(fl.root)) + 1
    kept = meta["kept"]
    keys = [f[prefix:] for f in fl.files] if kept is None else [fl.files[i][prefix:] for i in kept]
    return Split(torch.from_numpy(images), torch.from_numpy(labels), name, keys)


def _open_cached(img_path: Path, lab_path: Path, meta_path: Path, expected: int
                 ) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """A complete, consistent cache entry (images, labels, meta), or None. A damaged one (truncated, emptied, or
    not matching its key's file list) is removed with a one-line notice, so the caller decodes again."""
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        images, labels = np.load(img_path, mmap_mode="c"), np.load(lab_path)
        kept = meta["kept"]
        n = expected if kept is None else len(kept)
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != n or labels.shape != (n,):
            raise ValueError(f"{images.dtype} {images.shape} images, {labels.shape} labels for {n} files")
        return images, labels, meta
    except (OSError, ValueError, EOFError, KeyError, TypeError) as e:
        warnings.warn(f"damaged cache entry {img_path.name} ({str(e)[:120]}): removed, decoding again", stacklevel=3)
        for p in (img_path, lab_path, meta_path):
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)
        return None


def _write_cache(paths: list[Path], images: np.ndarray, labels: np.ndarray, meta: dict) -> bool:
    """Write a cache entry atomically (meta last: its presence says the entry is complete); on a read-only or full
    folder, warn once and return False (nothing half-written is left)."""
    img_path, lab_path, meta_path = paths
    try:
        img_path.parent.mkdir(parents=True, exist_ok=True)
        for path, arr in ((lab_path, labels), (img_path, images)):
            with atomic_write(path) as f:
                np.save(f, arr)
        with atomic_write(meta_path, text=True) as f:
            json.dump(meta, f)
        return True
    except OSError as e:
        for p in paths:
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)
        warnings.warn(f"cannot write the image cache in {img_path.parent} ({e.strerror or e}); training from memory "
                      "this time (set IMGCLF_CACHE_DIR to a writable folder to keep the decoded images)", stacklevel=3)
        return False


def choose_size(fl: FileList, cap: int, cache_dir: Path) -> tuple[tuple[int, int] | None, str | None]:
    """The training size for a folder when none is given: its own size if every image has the same, else the
    median shorter side (rounded down to a multiple of 8, at least 16) capped at `cap`. Reads only the files'
    headers, once: the choice is cached under the file list's key. Returns (size or None, a note saying why)."""
    path = cache_dir / f"{_cache_key(fl, ['auto', cap])}.size.json"
    try:
        chosen = json.loads(path.read_text())
    except (OSError, ValueError):
        dims = [d for d in map(image_dims, fl.files) if d is not None]
        chosen = {"size": None}
        if len(set(dims)) > 1:
            shorter = sorted(min(d) for d in dims)[len(dims) // 2]
            chosen = {"size": max(16, min(cap, shorter) // 8 * 8), "median": shorter,
                      "widths": [min(w for w, _ in dims), max(w for w, _ in dims)],
                      "heights": [min(h for _, h in dims), max(h for _, h in dims)], "cap": cap}
        with contextlib.suppress(OSError):
            cache_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, text=True) as f:
                json.dump(chosen, f)
    if chosen["size"] is None:
        return None, None
    s = chosen["size"]
    return (s, s), (f"images differ in size ({chosen['widths'][0]}–{chosen['widths'][1]} px wide, "
                    f"{chosen['heights'][0]}–{chosen['heights'][1]} high): chose {s}×{s}, the median shorter side "
                    f"{chosen['median']} px capped at {chosen['cap']} for this device (--image-size N to choose)")


def load_folder(root: Path, cache_dir: Path, image_size: tuple[int, int] | None = None,
                test_split: float = 0.2, seed: int = 0, strict: bool = False, fit: str = "crop",
                auto_size_cap: int = 64) -> Dataset:
    """Load an image folder; with no train/ and test/ sub-folders, `test_split` of each class is held out
    as the test split with a fixed seed. Without `image_size`, images of mixed sizes get one (choose_size)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (and not a dataset name; see `imgclf datasets`)")
    has_train = (root / "train").is_dir()
    train_fl = scan_split(root / "train" if has_train else root)
    _check_classes(train_fl)
    notes, auto = [], None
    if image_size is None:
        image_size, why = choose_size(train_fl, auto_size_cap, cache_dir)
        notes, auto = ([why], image_size[0]) if why else ([], None)
    opts = {"image_size": image_size, "cache_dir": cache_dir, "strict": strict, "fit": fit}
    train = load_split_cached(train_fl, "train", **opts)
    val = None
    if has_train:
        if not (root / "test").is_dir():
            raise DataError(f"{root}: has train/ but no test/ folder; add {root}/test/<class>/... "
                            "or put the class folders directly under the root")
        test = load_split_cached(_matching(root / "test", train_fl), "test", **opts)
        if (root / "val").is_dir():
            val = load_split_cached(_matching(root / "val", train_fl), "val", **opts)
    else:
        keep, held = stable_holdout(train.keys, test_split, seed, "test")
        if len(held) == 0 or len(keep) == 0:
            raise DataError(f"{root}: {len(train)} images are too few to hold out a test split of {test_split:.0%} "
                            "(it would be empty); add images, or give the test images their own test/ folder")
        test = train.subset(held, "test")
        train = train.subset(keep, "train")
        notes.append(f"test split: {len(held)} images (~{test_split:.0%}, by a hash of each file's path: adding or "
                     f"removing files never moves another, seed {seed}) held out of {root}")
    ds = Dataset(root.name, train, test, train_fl.classes, val=val, source=str(root), notes=notes, auto_size=auto)
    for other in (ds.test, ds.val):
        if other is not None and other.images.shape[1:] != ds.train.images.shape[1:]:
            raise DataError(f"{root}: train images are {tuple(ds.train.images.shape[1:])} but {other.name} images "
                            f"are {tuple(other.images.shape[1:])} (C, H, W); pass --image-size N to make them match")
    return ds


def _matching(split_root: Path, train_fl: FileList) -> FileList:
    """Scan a test/val folder with the train classes; a class the train split lacks is an error."""
    names = sorted(p.name for p in split_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    extra = [n for n in names if n not in train_fl.classes]
    if extra:
        raise DataError(f"{split_root}: class folder(s) {', '.join(extra)} do not exist in "
                        f"{train_fl.root}; train and {split_root.name} must use the same class names")
    missing = [c for c in train_fl.classes if c not in names]
    if missing:
        warnings.warn(f"{split_root}: no folder for class(es) {', '.join(missing)}", stacklevel=3)
    return scan_split(split_root, train_fl.classes)
