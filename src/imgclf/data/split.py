"""The in-memory form of every dataset: uint8 N×C×H×W images + int64 labels, per split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from ..words import counted


@dataclass(frozen=True)
class Origin:
    """Where a folder split's images lie in the folder cache (folder.load_split_cached), so that what is computed from
    them (duplicates.py's hashes) can be kept beside them: the entry's path without its part (`cache_dir/<key>`),
    its rows and pixel digest, the folder the split's keys are relative to, and each image's row in the entry."""

    stem: Path
    total: int
    digest: str
    root: Path
    rows: np.ndarray    # int64, one per image of the split


@dataclass
class Split:
    """One split of a dataset: `images` uint8 (N, C, H, W) and `labels` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str = "train"
    keys: list[str] | None = None   # a stable name per sample (an image folder's relative paths): see stable_holdout
    digest: str | None = field(default=None, compare=False)   # of the pixels as decoded (folder cache), not a subset
    origin: Origin | None = field(default=None, compare=False, repr=False)   # the folder-cache rows, kept by subset

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(f"{self.name} split: images must be uint8 N×C×H×W, got {self.images.dtype} "
                            f"{tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise DataError(f"{self.name} split: {len(self.images)} images but {len(self.labels)} labels")
        if self.keys is not None and len(self.keys) != len(self.labels):
            raise DataError(f"{self.name} split: {len(self.keys)} keys for {len(self.labels)} images")
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor | np.ndarray, name: str | None = None) -> Split:
        """The samples at `index` (a copy), e.g. a held-out validation part."""
        index = torch.as_tensor(index, dtype=torch.int64)
        keys = [self.keys[i] for i in index.tolist()] if self.keys is not None else None
        origin = None if self.origin is None else replace(self.origin, rows=self.origin.rows[index.numpy()])
        return Split(self.images[index], self.labels[index], name or self.name, keys, origin=origin)


@dataclass
class Dataset:
    """A named dataset: train and test splits (val optional), class names, and where it came from."""

    name: str
    train: Split
    test: Split
    classes: list[str]
    val: Split | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)
    auto_size: int | None = None    # the size imgclf chose for a folder of mixed sizes (folder.choose_size)
    train_pixels: str | None = None  # a folder's: digest of the decoded images train and val were drawn from
    stored_shape: tuple[int, int, int] | None = None   # (C, H, W) as stored, when resized to `shape` (a folder's:
    #                                                     its median image); the header says when they differ

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of every image."""
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def splits(self) -> dict[str, Split]:
        out = {"train": self.train, "test": self.test}
        if self.val is not None:
            out["val"] = self.val
        return out

    def identity(self) -> dict[str, Any]:
        """What a model was trained and tested on, recorded in checkpoints and config.yaml so that eval and
        --resume can tell when the data has changed: name, resolved location, classes, split sizes and a
        fingerprint of the test split (its files' paths and labels for a folder, its pixels for a named set); for
        a folder also `test_pixels`, a digest of the decoded test images, so that a file given other pixels
        under the same name is found (a file's mtime alone changes on a mere copy or touch; its pixels do not)."""
        h = hashlib.sha256(self.test.labels.numpy().tobytes())
        if self.test.keys is not None:
            h.update(name_bytes("\0".join(self.test.keys)))
        else:
            _hash_images(h, self.test.images)
        # a Hugging Face dataset's source is 'hf:' and its resolved path or Hub id: no path of the working folder
        source = str(Path(self.source).resolve()) if self.source and not self.source.startswith("hf:") else self.source
        out = {"name": self.name, "source": source, "classes": list(self.classes),
               "sizes": {k: len(v) for k, v in self.splits().items()}, "test_fingerprint": h.hexdigest()[:16]}
        if self.test.keys is not None:
            out["test_pixels"] = _hash_images(hashlib.sha256(), self.test.images).hexdigest()[:16]
        t = hashlib.sha256()   # the training (and val) files and labels: --resume must train on what it trained on
        for part in (self.train, self.val):
            if part is not None:
                t.update(part.labels.numpy().tobytes())
                t.update(name_bytes("\0".join(part.keys)) if part.keys is not None else b"")
        out["train_fingerprint"] = t.hexdigest()[:16]
        if self.train_pixels:
            out["train_pixels"] = self.train_pixels[:16]
        return out

    def split(self, name: str) -> Split:
        splits = self.splits()
        if name not in splits:
            raise DataError(f"dataset {self.name!r} has no {name!r} split (it has: {', '.join(splits)})")
        return splits[name]


def test_split_changes(then: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How the test split of identity `now` differs from the one recorded `then` (Dataset.identity()), in words;
    empty when the same. Only what was recorded is compared."""
    changes = []
    if "test_fingerprint" in then and then["test_fingerprint"] != now["test_fingerprint"]:
        changes.append("other files or labels" if "test_pixels" in now else "other images or labels")
    elif "test_pixels" in then and then["test_pixels"] != now.get("test_pixels"):
        changes.append("the same file names with other pixels")
    return changes


def _hash_images(h: Any, images: torch.Tensor) -> Any:
    """Feed uint8 images to hash `h` 4096 at a time (a memory-mapped split is read, never copied whole)."""
    for i in range(0, len(images), 4096):
        h.update(images[i:i + 4096].contiguous().numpy())
    return h


def channel_stats(images: torch.Tensor, max_samples: int = 10000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units, from at most `max_samples` evenly spaced training images
    (10,000 CIFAR images give the full set's figures to 3 decimals). Computed exactly from each channel's
    histogram of the 256 uint8 values: one integer pass, 7x faster than converting to float and reducing."""
    n, c = images.shape[:2]
    x = images[:: max(1, -(-n // max_samples))]
    counts = torch.stack([torch.bincount(x[:, i].reshape(-1), minlength=256) for i in range(c)]).double()
    value = torch.arange(256, dtype=torch.float64) / 255.0
    total = counts.sum(1)
    mean = (counts * value).sum(1) / total
    std = ((counts * (value - mean[:, None]) ** 2).sum(1) / (total - 1).clamp_min(1)).sqrt()
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std.clamp_min(1e-3)]


def stratified_holdout(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (keep, held_out): `fraction` of each class held out, chosen with a fixed seed."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"a held-out fraction must be between 0 and 1, got {fraction}")
    g = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = round(len(idx) * fraction)
        if len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        held.append(idx[:k])
        keep.append(idx[k:])
    return torch.sort(torch.cat(keep)).values, torch.sort(torch.cat(held)).values


def name_bytes(text: str) -> bytes:
    """File names as bytes to hash: UTF-8, and a name that is not valid UTF-8 (which Python holds with surrogate
    escapes, os.fsdecode) as its raw bytes, as os.fsencode gives them; a valid name hashes as it always did."""
    return text.encode("utf-8", "surrogateescape")


def stable_holdout(keys: list[str], fraction: float, seed: int, purpose: str, drawn_by: list[str] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (keep, held_out): a sample is held out when a hash of (purpose, seed, its key) falls below
    `fraction`. Each sample's side depends on its own key alone (or its `drawn_by` key: repeated images share their
    group's, together.py), so adding or removing files never moves another file between splits (a shuffled list
    would re-deal them all). Classes get about `fraction` each, not exactly."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"a held-out fraction must be between 0 and 1, got {fraction}")
    scale = float(1 << 64)
    held = [int.from_bytes(hashlib.blake2b(name_bytes(f"{purpose}\0{seed}\0{k}"), digest_size=8).digest(), "big")
            / scale < fraction for k in (drawn_by or keys)]
    mask = torch.tensor(held, dtype=torch.bool)
    return torch.nonzero(~mask).flatten(), torch.nonzero(mask).flatten()


def hold_out_val(ds: Dataset, fraction: float, seed: int) -> Dataset:
    """Move `fraction` of each train class into a val split, unless the data brings its own: by a stable hash of
    each file's path for image folders (stable_holdout; repeated images together), a seeded per-class draw for the
    fixed named datasets."""
    if fraction and ds.val is None:
        if ds.train.keys is not None:
            from .together import holdout_keys  # below split.py's own imports: it imports split
            keep, held = stable_holdout(ds.train.keys, fraction, seed, "val", holdout_keys(ds.train))
        else:
            keep, held = stratified_holdout(ds.train.labels, fraction, seed)
        if len(held) == 0 or len(keep) == 0:
            ds.notes.append(f"no val split: {len(ds.train)} training images are too few to hold out {fraction:.0%}; "
                            "best.pt is the last epoch")
            return ds
        ds.val = ds.train.subset(held, "val")
        ds.train = ds.train.subset(keep, "train")
        how = "by a hash of each file's path" if ds.train.keys is not None else "per class"
        ds.notes.append(f"val split: {counted(len(held), 'image')} (~{fraction:.0%} {how}, seed {seed}) held out of "
                        "train")
    return ds
