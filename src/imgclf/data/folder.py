"""Your own images: `root/<class>/*` or `root/{train,val,test}/<class>/*`, decoded once on all cores and
cached as a uint8 array (foldercache) keyed on the file list and each file's size, mtime, ctime and inode, so
the next run opens in about a second."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sys
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..fileio import atomic_write
from ..procs import die_with_parent
from ..words import counted
from .cachedir import prune
from .foldercache import CACHE_VERSION, Entry, ImageSink, block_crcs, open_entry, remove_orphans, write_entry
from .images import ImageSource, decode_image, image_dims, walk_images
from .split import Dataset, Origin, Split, name_bytes, stable_holdout
from .together import holdout_keys

_CHUNK = 256
PHOTO_MIN_SIDE = 32    # photos: the median longer side above this (recipes.profile_name: an image's longer side)
CHUNK_BYTES = 4 << 20   # decoded bytes per decode task, at most (CIFAR-size images: still 256 a task)


@dataclass
class FileList:
    """The image files of one split and their class indices, in a fixed (sorted) order. A list made from a table
    (listed.py: a CSV, a Hugging Face dataset) names its images itself (`keys`) and says what the cache records as
    their origin (`record`: the CSV file, the dataset's folder); its images may be bytes (images.EncodedImage)."""

    root: Path
    files: Sequence[ImageSource]
    labels: list[int]
    classes: list[str]
    signature: list[str]  # "relative path, size, mtime, ctime, inode" per file: what the cache key is made of
    keys: list[str] | None = None   # each image's name in its split's keys (default: its path relative to root)
    record: str | None = None       # where the cache says the images come from (default: the root folder)

    def names(self) -> list[str]:
        """Each image's name: `keys`, or its path relative to the root folder."""
        prefix = len(str(self.root)) + 1
        return self.keys if self.keys is not None else [str(f)[prefix:] for f in self.files]

    def origin(self) -> str:
        """What the cache records as where the images come from (cachedir: listing, superseding, pruning)."""
        return self.record if self.record is not None else str(self.root.resolve())


def scan_split(root: Path, classes: list[str] | None = None, strict: bool = False) -> FileList:
    """List `root/<class>/<image>` files; each subfolder is a class, sorted by name (`strict`: walk_images)."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = found
    listed = [(path, ci, st) for ci, c in enumerate(classes) if (root / c).is_dir()
              for path, st in walk_images(root / c, strict)]
    keep = _one_file_once(listed, root, classes)
    prefix = len(str(root)) + 1
    files = [path for path, _, _ in keep]
    labels = [ci for _, ci, _ in keep]
    # ctime and inode too: a same-size replacement with its mtime restored (cp -p, rsync, os.utime) still changes
    # the inode (a rename) or the ctime (anything that sets the mtime sets it)
    signature = [f"{path[prefix:]}\0{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}"
                 for path, _, st in keep]
    return FileList(root, files, labels, classes, signature)


def _one_file_once(listed: list[tuple[str, int, os.stat_result]], root: Path, classes: list[str]
                   ) -> list[tuple[str, int, os.stat_result]]:
    """Each file once: one reached under several names (symbolic or hard links) in one class is kept at its first
    name; one reached in two classes has no label that can be trusted and is left out. Both are warned, by name."""
    names: dict[tuple[int, int], list[int]] = {}
    for i, (_, _, st) in enumerate(listed):
        if st.st_ino:   # 0: a file system without inode numbers
            names.setdefault((st.st_dev, st.st_ino), []).append(i)
    drop: set[int] = set()
    for group in (g for g in names.values() if len(g) > 1):
        paths = ", ".join(os.path.relpath(listed[i][0], root) for i in group[:4])
        labels = {listed[i][1] for i in group}
        if len(labels) > 1:
            drop.update(group)
            named = ", ".join(classes[c] for c in sorted(labels))
            warnings.warn(f"{root}: one file under {len(labels)} classes ({named}: {paths}): its label is not known, "
                          "left out", stacklevel=4)
        else:
            drop.update(group[1:])
            warnings.warn(f"{root}: one file under {len(group)} names ({paths}): used once", stacklevel=4)
    return [entry for i, entry in enumerate(listed) if i not in drop]


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
    h = hashlib.sha256(json.dumps([CACHE_VERSION, fl.origin(), image_size, fl.classes]).encode())
    h.update(name_bytes("\n".join(fl.signature)))
    return h.hexdigest()[:24]


def _worker_init() -> None:
    """Decode workers are forked from a process that may have used torch's thread pool: one thread each. On
    Linux each asks to be killed when its parent dies, so a killed first decode leaves no orphan workers."""
    torch.set_num_threads(1)
    die_with_parent()


def _decode_chunk(args: tuple[Sequence[ImageSource], tuple[int, int] | None, str]) -> list[np.ndarray | str]:
    paths, size, fit = args
    out: list[np.ndarray | str] = []
    for p in paths:
        try:
            out.append(decode_image(p, size, fit=fit))
        except DataError as e:
            out.append(str(e))
    return out


def _chunk_size(files: Sequence[ImageSource], size: tuple[int, int] | None) -> int:
    """Images per decode task: up to _CHUNK, fewer for large images, so that a chunk holds about CHUNK_BYTES
    decoded (without a size, the first file's header tells how large the images are)."""
    if size is None:
        dims = image_dims(files[0]) if files else None
        size = (dims[1], dims[0]) if dims else (32, 32)
    return max(1, min(_CHUNK, CHUNK_BYTES // (3 * size[0] * size[1])))


def iter_decoded(files: Sequence[ImageSource], size: tuple[int, int] | None, fit: str = "crop",
                 workers: int | None = None, desc: str = "decoding") -> Iterator[tuple[int, list[np.ndarray | str]]]:
    """(index of its first file, results) per chunk, in file order, decoded on all cores with a progress bar; each
    result is an array or an error message. At most workers + 1 chunks are in flight, so memory holds a few
    chunks, never the whole folder."""
    from rich.progress import Progress  # imported here: only a first, uncached load needs it

    workers = workers or os.cpu_count() or 1
    step = _chunk_size(files, size)
    starts = range(0, len(files), step)
    # transient, and only on a terminal: a log file (or `--quiet`'s one line) gets no blank line from it
    with Progress(transient=True, disable=not sys.stdout.isatty()) as bar:
        task = bar.add_task(desc, total=len(files))
        if workers == 1 or len(starts) == 1:
            for s in starts:
                res = _decode_chunk((files[s:s + step], size, fit))
                bar.advance(task, len(res))
                yield s, res
            return
        with ProcessPoolExecutor(workers, initializer=_worker_init) as pool:
            todo = iter(starts)
            pending = deque((s, pool.submit(_decode_chunk, (files[s:s + step], size, fit)))
                            for s in itertools.islice(todo, workers + 1))
            while pending:
                s, future = pending.popleft()
                res = future.result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(_decode_chunk, (files[nxt:nxt + step], size, fit))))
                bar.advance(task, len(res))
                yield s, res


def _report_skipped(bad: list[str], strict: bool) -> None:
    """Unreadable files: an error with --strict-images, else a warning naming each (the first 10): on every run,
    the cached ones too (the cache records them)."""
    if bad and strict:
        raise DataError(f"{counted(len(bad), 'unreadable image')}; first: {bad[0]} (drop --strict-images to skip "
                        "them)")
    for msg in bad[:10]:
        warnings.warn(f"skipped {msg}", stacklevel=4)
    if len(bad) > 10:
        warnings.warn(f"skipped {len(bad) - 10} more unreadable images", stacklevel=4)


def load_split_cached(fl: FileList, name: str, image_size: tuple[int, int] | None, cache_dir: Path,
                      strict: bool = False, fit: str = "crop") -> Split:
    """Decode `fl` (or open its cache), returning a Split. The cached images are memory-mapped copy-on-write:
    nothing is read up front but the checksum pass (pages come from the OS file cache; a copy took 0.03-0.6 s
    for CIFAR-10 on our VMs), a dataset larger than RAM streams from disk, and the file is never written.
    A damaged cache entry is removed and rebuilt; a cache folder that cannot be written is done without."""
    entry = Entry.at(cache_dir, _cache_key(fl, [image_size, fit] if image_size else None))
    labels = np.asarray(fl.labels, dtype=np.int64)
    cached = open_entry(entry, labels)
    if cached is None:
        cached = _decode_to_cache(fl, name, image_size, fit, entry, labels)
    images, labels, meta = cached
    _report_skipped(meta["skipped"], strict)
    names, kept = fl.names(), meta["kept"]
    keys = names if kept is None else [names[i] for i in kept]
    crcs = meta["crc32"] if meta["crc32"] is not None else block_crcs(images)
    digest = hashlib.sha256(json.dumps([meta["shape"], crcs]).encode()).hexdigest()
    origin = None if meta["crc32"] is None else \
        Origin(entry.meta.with_name(entry.key), len(images), digest, fl.root, np.arange(len(images), dtype=np.int64))
    return Split(torch.from_numpy(images), torch.from_numpy(labels), name, keys, digest=digest, origin=origin)


def _decode_to_cache(fl: FileList, name: str, size: tuple[int, int] | None, fit: str, entry: Entry,
                     labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Decode every file straight into the cache entry's memory-mapped images file (ImageSink), then write its
    labels and meta (the entry then supersedes the folder's older versions: cachedir.prune); (images, labels, meta)
    of the kept files, from memory when the cache cannot be written."""
    sink, bad = ImageSink(entry.images, len(fl.files), fl.root), []
    try:
        with contextlib.closing(iter_decoded(fl.files, size, fit, desc=f"decoding {name} images")) as chunks:
            for start, results in chunks:
                for i, r in enumerate(results, start):
                    if isinstance(r, str):
                        bad.append(r)
                    else:
                        sink.add(i, r, str(fl.files[i]))
        if not sink.kept:
            raise DataError(f"{fl.record or fl.root}: none of the {len(fl.files)} image files could be read")
        images, crcs = sink.finish()
    finally:
        sink.discard()
    kept = sink.kept
    meta = {"kept": None if len(kept) == len(fl.files) else kept, "skipped": bad, "shape": list(images.shape),
            "crc32": crcs, "version": CACHE_VERSION, "folder": fl.origin(),
            "variant": [size, fit] if size else None}
    labels = labels[np.asarray(kept, dtype=np.int64)]
    if crcs is not None and write_entry(entry, labels, meta):   # it supersedes the folder's older versions there
        prune(entry.meta.parent, keep=entry.key, folder=meta["folder"], variant=meta["variant"])
    return images, labels, meta


def choose_size(fl: FileList, cap: int, cache_dir: Path, photo_size: int | None = None
                ) -> tuple[tuple[int, int] | None, str | None]:
    """The training size for a folder when none is given: its own size if every image has the same, else the
    median shorter side (rounded down to a multiple of 8, at least 16) capped at `cap`. With `photo_size` (a model
    pretrained at that size will train), photos (the median longer side above PHOTO_MIN_SIDE px) get `photo_size`,
    whatever their sizes. Reads only the files' headers, once: the choice is cached under the file list's key.
    Returns (size or None, a note saying why)."""
    variant = ["photo", photo_size] if photo_size else ["auto", cap]
    key = _cache_key(fl, variant)
    path = cache_dir / f"{key}.size.json"
    chosen = _read_size_choice(path)
    if chosen is None:
        dims = [d for d in map(image_dims, fl.files) if d is not None]
        shorter = sorted(min(d) for d in dims)[len(dims) // 2] if dims else 0
        photos = bool(photo_size) and bool(dims) and sorted(max(d) for d in dims)[len(dims) // 2] > PHOTO_MIN_SIDE
        chosen = {"size": None}
        if len(set(dims)) > 1 or photos:
            size = photo_size if photos else max(16, min(cap, shorter) // 8 * 8)
            chosen = {"size": size, "median": shorter, "photo": size == photo_size,
                      "widths": [min(w for w, _ in dims), max(w for w, _ in dims)],
                      "heights": [min(h for _, h in dims), max(h for _, h in dims)], "cap": photo_size or cap}
        record = {**chosen, "folder": fl.origin(), "variant": variant}
        with contextlib.suppress(OSError):
            cache_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, text=True) as f:
                json.dump(record, f)
            prune(cache_dir, keep=key, folder=record["folder"], variant=record["variant"])
    if chosen["size"] is None:
        return None, None
    s = chosen["size"]
    sizes = (f"{chosen['widths'][0]}–{chosen['widths'][1]} px wide, {chosen['heights'][0]}–{chosen['heights'][1]} "
             "high")
    if chosen.get("photo"):
        return (s, s), (f"photos ({sizes}, median shorter side {chosen['median']} px): chose {s}×{s}, the size the "
                        "pretrained weights were trained at (--image-size N to choose)")
    return (s, s), (f"images differ in size ({sizes}): chose {s}×{s}, the median shorter side "
                    f"{chosen['median']} px capped at {chosen['cap']} for this device (--image-size N to choose)")


def _read_size_choice(path: Path) -> dict[str, Any] | None:
    """choose_size's cached record, or None when there is none; a damaged one (not JSON, a field missing or not a
    positive integer) is removed with a one-line notice, like a damaged cache entry, and the sizes measured again."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        chosen = json.loads(raw)
        _check_size_choice(chosen)
        return chosen
    except ValueError as e:
        warnings.warn(f"damaged cache entry {path.name} ({str(e)[:120]}): removed, measuring the image sizes again",
                      stacklevel=4)
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def _check_size_choice(chosen: Any) -> None:
    """Raise ValueError naming the first field of a size record that is not as choose_size writes it."""
    if not isinstance(chosen, dict) or "size" not in chosen:
        raise ValueError("not a record with a 'size'")
    if chosen["size"] is None:
        return
    checks = {k: _positive(chosen.get(k)) for k in ("size", "median", "cap")}
    for k in ("widths", "heights"):
        v = chosen.get(k)
        checks[k] = isinstance(v, list) and len(v) == 2 and all(map(_positive, v))
    bad = next((k for k, ok in checks.items() if not ok), None)
    if bad is not None:
        raise ValueError(f"its {bad!r} is {json.dumps(chosen.get(bad))[:40]}, not as imgclf writes it")


def _positive(value: Any) -> bool:
    return type(value) is int and value > 0      # JSON's true is no size


def load_folder(root: Path, cache_dir: Path, image_size: tuple[int, int] | None = None,
                test_split: float = 0.2, seed: int = 0, strict: bool = False, fit: str = "crop",
                auto_size_cap: int = 64, photo_size: int | None = None) -> Dataset:
    """Load an image folder; with no train/ and test/ sub-folders, `test_split` of each class is held out
    as the test split with a fixed seed. Without `image_size`, images of mixed sizes get one (choose_size)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (and not a dataset name; see `imgclf datasets`)")
    remove_orphans(cache_dir)   # the temporary files of a killed first decode
    has_train = _split_layout(root)
    train_fl = scan_split(root / "train" if has_train else root, strict=strict)
    _check_classes(train_fl)
    if not has_train:
        _check_flat_counts(train_fl)
    notes, auto = [], None
    if image_size is None:
        image_size, why = choose_size(train_fl, auto_size_cap, cache_dir, photo_size)
        notes, auto = ([why], image_size[0]) if why else ([], None)
    opts = {"image_size": image_size, "cache_dir": cache_dir, "strict": strict, "fit": fit}
    train = load_split_cached(train_fl, "train", **opts)
    val = None
    pixels = hashlib.sha256(train.digest.encode())   # the decoded pixels train (and val) come from: see identity()
    if has_train:
        if not (root / "test").is_dir():
            raise DataError(f"{root}: has train/ but no test/ folder; add {root}/test/<class>/... "
                            "or put the class folders directly under the root")
        test = load_split_cached(_matching(root / "test", train_fl, strict), "test", **opts)
        if (root / "val").is_dir():
            val = load_split_cached(_matching(root / "val", train_fl, strict), "val", **opts)
            pixels.update(val.digest.encode())
    else:
        keep, held = stable_holdout(train.keys, test_split, seed, "test", holdout_keys(train))
        if len(held) == 0 or len(keep) == 0:
            raise DataError(f"{root}: {len(train)} images are too few to hold out a test split of {test_split:.0%} "
                            "(it would be empty); add images, or give the test images their own test/ folder")
        test = train.subset(held, "test")
        train = train.subset(keep, "train")
        notes.append(f"test split: {counted(len(held), 'image')} (~{test_split:.0%}, by a hash of each file's path: "
                     f"adding or removing files never moves another, seed {seed}) held out of {root}")
    ds = Dataset(root.name, train, test, train_fl.classes, val=val, source=str(root), notes=notes, auto_size=auto,
                 train_pixels=pixels.hexdigest(), stored_shape=stored_shape(train_fl, train) if image_size else None)
    check_class_splits(root, ds, None if has_train else test_split)
    for other in (ds.test, ds.val):
        if other is not None and other.images.shape[1:] != ds.train.images.shape[1:]:
            raise DataError(f"{root}: train images are {tuple(ds.train.images.shape[1:])} but {other.name} images "
                            f"are {tuple(other.images.shape[1:])} (C, H, W); pass --image-size N to make them match")
    return ds


def stored_shape(fl: FileList, decoded: Split, most: int = 256) -> tuple[int, int, int] | None:
    """(C, H, W) of the folder's median image as stored (by its longer side, as choose_size tells photos), from
    the headers of up to `most` files spread over the list; None when none can be read."""
    dims = [d for d in map(image_dims, fl.files[::max(1, len(fl.files) // most)]) if d is not None]
    if not dims:
        return None
    w, h = sorted(dims, key=max)[len(dims) // 2]
    return int(decoded.images.shape[1]), h, w


def _split_layout(root: Path) -> bool:
    """Whether `root` is laid out as train/<class>/ (+ test/, val/): its train/ holds class folders. A flat folder
    whose classes include one named 'train' (bus/, car/, train/) holds images there, and is read as classes."""
    train = root / "train"
    if not train.is_dir():
        return False
    if (root / "test").is_dir():
        return True
    with os.scandir(train) as it:
        return any(e.is_dir() and not e.name.startswith(".") for e in it)


def _check_flat_counts(fl: FileList) -> None:
    """A folder without train/ and test/ is split by file: a class of one image cannot be in both."""
    counts = np.bincount(np.asarray(fl.labels, dtype=np.int64), minlength=len(fl.classes))
    few = [c for c, n in zip(fl.classes, counts) if n < 2]
    if few:
        raise DataError(f"{fl.root}: class(es) {', '.join(few[:10])} have a single image; each class needs at least 2 "
                        "(a folder without train/ and test/ is split into both by file): add images, or give the "
                        f"test images their own folders ({fl.root}/train/<class>/..., {fl.root}/test/<class>/...)")


OWN_FOLDERS = "give the test images their own folders (train/, test/)"


def check_class_splits(root: Path | str, ds: Dataset, held_out: float | None, own_split: str = OWN_FOLDERS
                       ) -> None:
    """Every class needs training images (an error naming them); with a held-out test split (`held_out`, the
    fraction), a class left without test images is warned about: its accuracy would not be measured. `own_split`
    says how the data gives its test images a split of their own."""
    n = len(ds.classes)
    train, test = (np.bincount(s.labels.numpy(), minlength=n) for s in (ds.train, ds.test))
    no_train = [c for c, k in zip(ds.classes, train) if k == 0]
    if no_train:
        why = f"the path-hash split put all of their images in the test split (~{held_out:.0%} of each class's " \
              "files are held out)" if held_out else "none of their images could be read"
        raise DataError(f"{root}: class(es) {', '.join(no_train[:10])} have no training images: {why}; add images "
                        "to them" + (f", or {own_split}" if held_out else ""))
    no_test = [c for c, k in zip(ds.classes, test) if k == 0]
    if held_out and no_test:
        warnings.warn(f"{root}: no test images for class(es) {', '.join(no_test[:10])} (a hash of each file's path "
                      f"holds out ~{held_out:.0%}, and these classes are small): their accuracy is not measured; add "
                      f"images to them or {own_split}", stacklevel=3)


def _matching(split_root: Path, train_fl: FileList, strict: bool = False) -> FileList:
    """Scan a test/val folder with the train classes; a class the train split lacks is an error."""
    names = sorted(p.name for p in split_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    extra = [n for n in names if n not in train_fl.classes]
    if extra:
        raise DataError(f"{split_root}: class folder(s) {', '.join(extra)} do not exist in "
                        f"{train_fl.root}; train and {split_root.name} must use the same class names")
    missing = [c for c in train_fl.classes if c not in names]
    if missing:
        warnings.warn(f"{split_root}: no folder for class(es) {', '.join(missing)}", stacklevel=3)
    return scan_split(split_root, train_fl.classes, strict)
