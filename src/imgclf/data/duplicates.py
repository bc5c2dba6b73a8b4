"""Repeated images in a dataset, found from two keys per image (imagehash.py) with an index, never all pairs:
`exact` — identical pixels in two splits (a test image that is also a training image); `near` — a near-duplicate in
another split (re-encoded, rescaled, cropped by a few percent, colour-shifted); `conflict` — the same image, or a very
near one, under two classes, in one split or two; `exact_within` — identical pixels twice in one split. Pixels means the
decoded images at the size imgclf trains on. A folder's hashes are kept beside its folder-cache entry, so a second look
costs the index alone (CIFAR-10's 60,000 images: benchmarks/RESULTS.md)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..fileio import printable, write_text_atomic
from ..words import counted
from .cacheparts import rows_cached
from .dupcache import findings_key, read_found, write_found
from .imagehash import BITS, FINE_WORDS, HASH_VERSION, WORDS, ImageHashes, distances, hash_images, is_near, popcount
from .split import Dataset, Split

KINDS = ("exact", "near", "conflict", "exact_within")
SPLIT_ORDER = ("train", "val", "test")   # a pair is reported by its image in the later split (test: against train)
CSV_COLUMNS = ("kind", "split", "file", "other_split", "other_file", "distance")
DENSE_SHARE, STRICT_BITS = 0.25, 6   # train images with a near partner in train above this share: near only this close
CROSS_CLASS_BITS = 16     # images of two classes are the same image only this close (a bird and a plane on blue sky
                          # can be 22 bits apart: CIFAR-10's closest such pairs are all coincidences)
TABLES, WINDOW = 32, 12   # the index: 32 orders of the images, each image compared with the 12 after it in each
_INDEX_SEED = 20200212
Found = tuple[str, int, int, int]   # kind, the later image, the earlier one (indices over all splits), distance


@dataclass(frozen=True)
class Pair:
    """One finding: image `index` of `split` and image `other_index` of `other_split`, `distance` bits apart (of
    imagehash.BITS; 0 for identical pixels). `file`s are the images' paths in their split folders ('#index' for a
    named dataset)."""

    kind: str
    split: str
    index: int
    file: str
    other_split: str
    other_index: int
    other_file: str
    distance: int


@dataclass
class Findings:
    """What find_duplicates found: pairs of every kind (KINDS), the split sizes it looked at, what it cost."""

    pairs: list[Pair]
    sizes: dict[str, int]
    seconds: float = 0.0
    hashed: int = 0                           # images whose hashes were computed (0: all read from the cache)
    dense: float = 0.0                        # the share of training images with a near partner in train
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = {k: sum(p.kind == k for p in self.pairs) for k in KINDS}

    def of(self, kind: str) -> list[Pair]:
        return [p for p in self.pairs if p.kind == kind]

    @property
    def near_limit(self) -> int | None:
        """In a dense dataset (DENSE_SHARE), the most bits a near-duplicate may be apart; None where the rule is
        imagehash.is_near's alone."""
        return STRICT_BITS if self.dense > DENSE_SHARE else None

    def test_indices_repeating_train(self) -> np.ndarray:
        """Sorted indices into the test split of the images that repeat a train or val image, exactly or nearly
        (whatever their labels): the test images a model may have seen in training."""
        return np.unique(np.array([p.index for p in self.pairs if p.split == "test" and p.kind in ("exact", "near")],
                                  dtype=np.int64))

    def problems(self) -> list[str]:
        """What `imgclf check --strict` fails on, in words: label conflicts, and test images repeating train."""
        out = []
        if self.counts["conflict"]:
            out.append(counted(self.counts["conflict"], "label conflict"))
        repeats = len(self.test_indices_repeating_train())
        if repeats:
            out.append(f"{counted(repeats, 'test image')} repeating a train/val image")
        return out


def find_duplicates(dataset: Dataset) -> Findings:
    """Every kind of repeated image (KINDS) in the dataset's splits (near-duplicates: imagehash.is_near)."""
    started = time.perf_counter()
    splits = [dataset.splits()[name] for name in SPLIT_ORDER if name in dataset.splits()]
    which = np.concatenate([np.full(len(s), k, dtype=np.int64) for k, s in enumerate(splits)])
    local = np.concatenate([np.arange(len(s), dtype=np.int64) for s in splits])
    key = findings_key(splits, [HASH_VERSION, DENSE_SHARE, STRICT_BITS, CROSS_CLASS_BITS, TABLES, WINDOW])
    kept = read_found(key)
    if kept is not None:
        found, dense = kept
        hashed = 0
    else:
        found, dense, hashed = _look(splits, which, local)
        write_found(key, found, dense)
    pairs = [_pair(kind, a, b, dist, splits, which, local) for kind, a, b, dist in found]
    return Findings(pairs, {s.name: len(s) for s in splits}, time.perf_counter() - started, hashed, dense)


def _look(splits: list[Split], which: np.ndarray, local: np.ndarray) -> tuple[list[Found], float, int]:
    """find_duplicates' work: (what was found, the dense share, the images hashed)."""
    hashes, hashed = split_hashes(splits)
    h = ImageHashes.concat(hashes)
    labels = np.concatenate([s.labels.cpu().numpy() for s in splits])
    group = exact_groups(h.exact, lambda i: splits[which[i]].images[local[i]])
    i, j, d = near_pairs(h.perceptual)
    gi, gj = _group_pairs(group, which, labels)
    same = (group[i] >= 0) & (group[i] == group[j])          # identical pixels: reported from the groups
    i, j, d = i[~same], j[~same], d[~same]
    dense = _dense_share(i, j, which)
    keep = (d <= STRICT_BITS) if dense > DENSE_SHARE else np.ones(len(d), dtype=bool)
    keep &= (labels[i] == labels[j]) | (d <= CROSS_CLASS_BITS)
    i, j, d = i[keep], j[keep], d[keep]
    found = _cross(gi, gj, i, j, d, which) + _within(gi, gj, which) + _conflicts(gi, gj, i, j, d, labels)
    return [(k, int(a), int(b), int(dist)) for k, a, b, dist in found], float(dense), hashed


def _dense_share(i: np.ndarray, j: np.ndarray, which: np.ndarray) -> float:
    """The share of training images with a near (not identical) partner in train. Photos rarely have one (CIFAR-10:
    2%); in handwritten digits most do (MNIST: 9 in 10: one '1' is much like another at 32×32), and a near-duplicate
    must then be nearly identical (STRICT_BITS) to stand out."""
    n = int((which == 0).sum())
    inside = (which[i] == 0) & (which[j] == 0)
    return len(np.unique(np.concatenate([i[inside], j[inside]]))) / n if n else 0.0


def split_hashes(splits: list[Split]) -> tuple[list[ImageHashes], int]:
    """Each split's hashes, and how many images had to be hashed: a folder split's are read from its cache entry's
    hashes part where it has them (cacheparts.rows_cached), the rest computed and kept there."""
    hashed = 0

    def compute(split: Split, positions: np.ndarray) -> dict[str, np.ndarray]:
        nonlocal hashed
        hashed += len(positions)
        images = split.images if len(positions) == len(split) else split.images[torch.from_numpy(positions)]
        h = hash_images(images)
        return {"exact": h.exact, "perceptual": h.perceptual}

    fields = {"exact": (np.uint64, (2,)), "perceptual": (np.uint64, (WORDS,))}
    tables = rows_cached(splits, "hashes.npz", lambda o: f"v{HASH_VERSION} {o.digest}", fields, compute)
    return [ImageHashes(t["exact"], t["perceptual"]) for t in tables], hashed


def exact_groups(exact: np.ndarray, pixels: Callable[[int], torch.Tensor]) -> np.ndarray:
    """Per image, the index of the first image with identical pixels when there is another (-1 when it is unique):
    images sharing both words of the exact key, confirmed by comparing pixels (`pixels(i)`, a uint8 tensor)."""
    group = np.full(len(exact), -1, dtype=np.int64)
    if len(exact) < 2:
        return group
    order = np.lexsort((np.arange(len(exact)), exact[:, 1], exact[:, 0]))
    key = exact[order]
    starts = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]).any(axis=1)])
    ends = np.r_[starts[1:], len(order)]
    for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
        members = order[s:e]
        first = pixels(int(members[0]))
        same = [int(m) for m in members if torch.equal(pixels(int(m)), first)]
        if len(same) > 1:
            group[same] = same[0]
    return group


def near_pairs(perceptual: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, fine distance) with i < j for the near-duplicate pairs (imagehash.is_near) that the index finds: TABLES
    times the images are sorted on a fixed random order of their coarse hash's bits, and each is compared with the
    WINDOW after it. Near-duplicates share most coarse bits, so they land close in most orders: TABLES × WINDOW × N
    comparisons, not N². On CIFAR-10 it finds 96.5% of the test–train pairs an all-pairs search finds (97.7% of the
    test images that have one)."""
    n = len(perceptual)
    if n < 2:
        return (np.zeros(0, np.int64),) * 3
    columns = np.ascontiguousarray(np.ascontiguousarray(perceptual[:, FINE_WORDS]).view(np.uint8).reshape(n, 8).T)
    found = []
    for tables in _index_orders():
        order = np.argsort(_sort_key(columns, tables))
        words = [np.ascontiguousarray(perceptual[order, w]) for w in range(WORDS)]
        for off in range(1, min(WINDOW, n - 1) + 1):
            fine = popcount(words[0][:-off] ^ words[0][off:])
            for w in words[1:FINE_WORDS]:
                fine += popcount(w[:-off] ^ w[off:])
            coarse = popcount(words[FINE_WORDS][:-off] ^ words[FINE_WORDS][off:])
            hit = np.flatnonzero(is_near(fine, coarse))
            if hit.size:
                found.append(np.stack([order[hit], order[hit + off], fine[hit]], axis=1))
    if not found:
        return (np.zeros(0, np.int64),) * 3
    p = np.concatenate(found).astype(np.int64)
    p[:, :2].sort(axis=1)
    p = p[np.unique(p[:, 0] * n + p[:, 1], return_index=True)[1]]
    return p[:, 0], p[:, 1], p[:, 2]


def _sort_key(columns: np.ndarray, tables: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """uint64 per image made of one index order's bits (_index_orders), through one 256-entry table per source byte
    (`columns`: the hashes' first bytes, one row per byte)."""
    key = np.zeros(columns.shape[1], dtype=np.uint64)
    for byte, table in tables:
        key |= table[columns[byte]]
    return key


@lru_cache(maxsize=1)
def _index_orders() -> list[list[tuple[int, np.ndarray]]]:
    """The index's TABLES orders: each a fixed random order of the coarse hash's 63 bits, the first most significant,
    as (source byte, 256-entry table scattering that byte's bits to their places): 8 gathers per order, not 63
    shifts."""
    rng = np.random.default_rng(_INDEX_SEED)
    values = np.arange(256, dtype=np.uint64)
    orders = []
    for _ in range(TABLES):
        bits = rng.permutation(63)
        places = np.uint64(62) - np.arange(63, dtype=np.uint64)
        tables = []
        for byte in np.unique(bits // 8):
            sel = bits // 8 == byte
            part = ((values[None] >> (bits[sel] % 8).astype(np.uint64)[:, None]) & np.uint64(1)) << places[sel][:, None]
            tables.append((int(byte), part.sum(axis=0, dtype=np.uint64)))
        orders.append(tables)
    return orders


def _group_pairs(group: np.ndarray, which: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(earlier, later) pairs inside the groups of identical images: each member against the first member of every
    (split, label) of its group before it — enough for every finding, and few pairs however large a group."""
    members = np.flatnonzero(group >= 0)
    if not members.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, first = np.unique(np.stack([group[members], which[members], labels[members]], axis=1), axis=0,
                         return_index=True)
    reps = members[first]
    reps = reps[np.argsort(group[reps], kind="stable")]
    lo = np.searchsorted(group[reps], group[members], side="left")
    hi = np.searchsorted(group[reps], group[members], side="right")
    b = np.repeat(members, hi - lo)
    a = reps[np.concatenate([np.arange(x, y) for x, y in zip(lo, hi)])]
    keep = a < b
    return a[keep], b[keep]


def _best(later: np.ndarray, earlier: np.ndarray, dist: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Indices of the closest (then earliest) pair for each distinct (later, by) among the pairs given."""
    if not later.size:
        return np.zeros(0, np.int64)
    order = np.lexsort((earlier, dist, by, later))
    key = np.stack([later[order], by[order]], axis=1)
    first = np.r_[True, (key[1:] != key[:-1]).any(axis=1)]
    return order[first]


def _cross(gi: np.ndarray, gj: np.ndarray, i: np.ndarray, j: np.ndarray, d: np.ndarray, which: np.ndarray
           ) -> list[Found]:
    """exact (from the groups) and near pairs between splits, one per image and earlier split: the closest."""
    out = []
    cross = which[gi] != which[gj]
    a, b = gi[cross], gj[cross]
    for k in _best(b, a, np.zeros(len(a), np.int64), which[a]):
        out.append(("exact", int(b[k]), int(a[k]), 0))
    has_exact = {(int(b[k]), int(which[a[k]])) for k in range(len(a))}
    cross = which[i] != which[j]
    a, b, dist = i[cross], j[cross], d[cross]
    for k in _best(b, a, dist, which[a]):
        if (int(b[k]), int(which[a[k]])) not in has_exact:
            out.append(("near", int(b[k]), int(a[k]), int(dist[k])))
    return out


def _within(gi: np.ndarray, gj: np.ndarray, which: np.ndarray) -> list[Found]:
    """Identical images twice in one split: each against the first one."""
    same = which[gi] == which[gj]
    a, b = gi[same], gj[same]
    return [("exact_within", int(b[k]), int(a[k]), 0) for k in _best(b, a, np.zeros(len(a), np.int64), which[a])]


def _conflicts(gi: np.ndarray, gj: np.ndarray, i: np.ndarray, j: np.ndarray, d: np.ndarray, labels: np.ndarray
               ) -> list[Found]:
    """The same or a near image under another class: each image against its closest such image before it."""
    a = np.concatenate([gi, i])
    b = np.concatenate([gj, j])
    dist = np.concatenate([np.zeros(len(gi), np.int64), d])
    other = labels[a] != labels[b]
    a, b, dist = a[other], b[other], dist[other]
    return [("conflict", int(b[k]), int(a[k]), int(dist[k]))
            for k in _best(b, a, dist, np.zeros(len(a), np.int64))]


def _pair(kind: str, a: int, b: int, dist: int, splits: list[Split], which: np.ndarray, local: np.ndarray) -> Pair:
    sa, sb = splits[which[a]], splits[which[b]]
    return Pair(kind, sa.name, int(local[a]), _file(sa, int(local[a])), sb.name, int(local[b]),
                _file(sb, int(local[b])), dist)


def _file(split: Split, index: int) -> str:
    return split.keys[index] if split.keys is not None else f"#{index}"


def duplicates_csv(findings: Findings) -> str:
    """The pairs as CSV text, one per line: CSV_COLUMNS (file names printable whatever their bytes)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in findings.pairs:
        writer.writerow([p.kind, p.split, printable(p.file), p.other_split, printable(p.other_file), p.distance])
    return buf.getvalue()


def write_duplicates_csv(findings: Findings, path: str | Path) -> Path:
    """Write the pairs to `path` (e.g. a run folder's duplicates.csv) atomically; returns the path."""
    write_text_atomic(path, duplicates_csv(findings))
    return Path(path)


__all__ = ["BITS", "CSV_COLUMNS", "KINDS", "Findings", "Pair", "distances", "find_duplicates", "write_duplicates_csv"]
