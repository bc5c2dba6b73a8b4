"""Repeated images stay on one side of a held-out split: where a folder's test (or val) split is drawn by a hash of
each file's path (split.stable_holdout), an image that repeats another of the folder — identical pixels, a
near-duplicate (duplicates.py's rule), or the same image under another class — is drawn by its group's key instead,
so a copy can never be trained on while its twin is tested. Images that repeat nothing keep their own key: adding or
removing files moves no other file, and a group moves only when a file joins or leaves it."""

from __future__ import annotations

import numpy as np

from .dupcache import findings_key, read_record, write_record
from .duplicates import (
    CROSS_CLASS_BITS,
    DENSE_SHARE,
    STRICT_BITS,
    TABLES,
    WINDOW,
    _dense_share,
    exact_groups,
    near_pairs,
    split_hashes,
)
from .imagehash import HASH_VERSION
from .split import Split

# Copies come in pairs and small groups; a larger group is look-alikes (frames of one scene, one synthetic pattern),
# and moving it whole would empty a split: such images keep their own keys.
MAX_GROUP, MAX_GROUP_SHARE = 16, 0.1


def holdout_keys(split: Split) -> list[str] | None:
    """Per image, the key whose hash decides its side: its own, or the smallest key of the group of images it
    repeats (connected by identical pixels or near-duplicate pairs; a group of at most MAX_GROUP images and
    MAX_GROUP_SHARE of the split); None for a split without keys."""
    if split.keys is None:
        return None
    n = len(split)
    if n < 2:
        return list(split.keys)
    key = findings_key([split], ["together", HASH_VERSION, DENSE_SHARE, STRICT_BITS, CROSS_CLASS_BITS, TABLES, WINDOW,
                                 MAX_GROUP, MAX_GROUP_SHARE])
    record = read_record(key, lambda r: isinstance(r.get("groups"), list) and all(
        isinstance(g, list) and all(type(i) is int and 0 <= i < n for i in g) for g in r["groups"]))
    groups = record["groups"] if record is not None else _groups(split)
    if record is None:
        write_record(key, {"groups": groups})
    drawn_by = list(split.keys)
    for members in groups:
        first = min(split.keys[i] for i in members)
        for i in members:
            drawn_by[i] = first
    return drawn_by


def _groups(split: Split) -> list[list[int]]:
    """The groups of repeated images that are drawn together (2 to the limit of images each), as image indices."""
    n = len(split)
    [h], _ = split_hashes([split])
    group = exact_groups(h.exact, lambda k: split.images[k])
    i, j, d = near_pairs(h.perceptual)
    labels = split.labels.cpu().numpy()
    keep = (d <= STRICT_BITS) if _dense_share(i, j, np.zeros(n, dtype=np.int64)) > DENSE_SHARE else \
        np.ones(len(d), dtype=bool)
    keep &= (labels[i] == labels[j]) | (d <= CROSS_CLASS_BITS)
    parent = list(range(n))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in [*zip(i[keep].tolist(), j[keep].tolist()), *((k, int(g)) for k, g in enumerate(group) if g >= 0)]:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for k in range(n):
        members.setdefault(root(k), []).append(k)
    limit = min(MAX_GROUP, int(n * MAX_GROUP_SHARE))
    return [group for group in members.values() if 2 <= len(group) <= limit]
