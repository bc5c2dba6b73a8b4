"""Images listed by a table rather than by class folders — a CSV of files and labels (table.py), a Hugging Face
dataset (hf.py) — become a Dataset through the image folder's own machinery: one FileList decoded once into the
folder cache (folder.load_split_cached), its splits cut from it by the table's own split column or splits, and
without a test split one held out by a hash of each image's name with repeated images kept together, as a folder
without test/ is split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..words import counted
from .folder import FileList, check_class_splits, choose_size, load_split_cached
from .foldercache import remove_orphans
from .split import Dataset, stable_holdout
from .together import holdout_keys

PARTS = ("train", "val", "test")
# a split's name as tables write it → imgclf's (Hugging Face: train/validation/test; CSVs: these and the like)
SPLIT_NAMES = {"train": "train", "training": "train", "trn": "train", "val": "val", "valid": "val",
               "validation": "val", "dev": "val", "test": "test", "testing": "test", "tst": "test"}


def label_order(label: str) -> tuple[int, Any]:
    """The classes of a table's labels in order: numbers by value (2 before 10), then other names alphabetically."""
    try:
        return 0, float(label)
    except ValueError:
        return 1, label


@dataclass
class Listing:
    """What a table lists: its images (one FileList over every split), the split of each ('train', 'val' or 'test'),
    the dataset's name and where it came from (Dataset.source, recorded in checkpoints), and notes for the header.
    `own_split` says, for messages, how this kind of table gives test images a split of their own."""

    files: FileList
    parts: list[str]
    name: str
    source: str
    notes: list[str] = field(default_factory=list)
    own_split: str = "give the test images a split of their own"


def load_listed(listing: Listing, cache_dir: Path, image_size: tuple[int, int] | None = None,
                test_split: float = 0.2, seed: int = 0, strict: bool = False, fit: str = "crop",
                auto_size_cap: int = 64, photo_size: int | None = None) -> Dataset:
    """Decode a listing's images once (or open them from the cache) and cut its splits; without test images, about
    `test_split` of the training images (by a hash of each name and `seed`) are held out as the test split."""
    fl, where = listing.files, listing.source
    _check_listed(listing)
    remove_orphans(cache_dir)   # the temporary files of a killed first decode
    notes, auto = list(listing.notes), None
    if image_size is None:
        image_size, why = choose_size(fl, auto_size_cap, cache_dir, photo_size)
        notes, auto = ([*notes, why], image_size[0]) if why else (notes, None)
    whole = load_split_cached(fl, "train", image_size, cache_dir, strict, fit)
    side = dict(zip(fl.names(), listing.parts))
    part = np.asarray([side[k] for k in whole.keys])
    index = {p: np.flatnonzero(part == p) for p in PARTS}
    if not len(index["train"]):
        raise DataError(f"{where}: no training images could be read (the unreadable ones are named above)")
    train = whole.subset(index["train"], "train") if len(index["train"]) < len(whole) else whole
    val = whole.subset(index["val"], "val") if len(index["val"]) else None
    if len(index["test"]):
        test = whole.subset(index["test"], "test")
    else:
        keep, held = stable_holdout(train.keys, test_split, seed, "test", holdout_keys(train))
        if len(held) == 0 or len(keep) == 0:
            raise DataError(f"{where}: {len(train)} images are too few to hold out a test split of {test_split:.0%} "
                            f"(it would be empty); add images, or {listing.own_split}")
        test, train = train.subset(held, "test"), train.subset(keep, "train")
        notes.append(f"test split: {len(held)} images (~{test_split:.0%}, by a hash of each image's name: adding or "
                     f"removing images never moves another, seed {seed}) held out of {where}")
    ds = Dataset(listing.name, train, test, fl.classes, val=val, source=where, notes=notes, auto_size=auto,
                 train_pixels=hashlib.sha256(whole.digest.encode()).hexdigest())
    check_class_splits(where, ds, None if len(index["test"]) else test_split, listing.own_split)
    return ds


def _check_listed(listing: Listing) -> None:
    """At least two classes, each with images; a table without test images is split by image, so each class needs
    two."""
    fl, where = listing.files, listing.source
    if "train" not in listing.parts:
        raise DataError(f"{where}: every image is in the val or test split; a run needs training images (a split "
                        "of train)")
    if len(fl.classes) < 2:
        raise DataError(f"{where}: {counted(len(fl.classes), 'class')} "
                        f"({', '.join(fl.classes)}); a classifier needs at least two")
    counts = np.bincount(np.asarray(fl.labels, dtype=np.int64), minlength=len(fl.classes))
    if "test" not in listing.parts:
        few = [c for c, n in zip(fl.classes, counts) if n < 2]
        if few:
            raise DataError(f"{where}: class(es) {', '.join(few[:10])} have a single image; each class needs at least "
                            f"2 (without test images the data is split into train and test by image): add images, "
                            f"or {listing.own_split}")
