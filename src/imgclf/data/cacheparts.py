"""What is computed from a folder-cache entry, kept beside it as `<key>.<part>` (foldercache.DERIVED): per row of the
entry, arrays that take seconds to compute and milliseconds to read — the duplicate finder's hashes, the image files'
headers for `imgclf check`. A part records what it was computed from (a stamp: its format and the entry's pixel digest
or key) and which rows it holds so far (`known`); it is written atomically and only while its entry is complete (its
meta.json exists), so it never outlives the entry (Entry.remove and cachedir remove it with it). One that cannot be
read as it was written is removed with a one-line notice and computed again; one of another stamp is replaced."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write
from .foldercache import DERIVED
from .split import Origin, Split

Fields = dict[str, tuple[Any, tuple[int, ...]]]   # name -> (dtype, shape of one row's value)
Computed = dict[str, np.ndarray]


def rows_cached(splits: list[Split], part: str, stamp: Callable[[Origin], str], fields: Fields,
                compute: Callable[[Split, np.ndarray], Computed]) -> list[Computed]:
    """Per split, `fields` for each of its images. For a split held in the folder cache (its `origin`), the rows its
    entry's `part` holds are read and the others computed (`compute(split, positions)`) and written back: one read
    and at most one write per entry, however many splits share it; other splits are computed. Returns one dict of
    arrays per split."""
    if part not in DERIVED:
        raise ValueError(f"{part}: not a part the folder cache knows (foldercache.DERIVED)")
    out: list[Computed | None] = [None] * len(splits)
    by_entry: dict[Path, list[int]] = {}
    for k, s in enumerate(splits):
        if s.origin is None or len(s.origin.rows) != len(s):
            out[k] = compute(s, np.arange(len(s)))
        else:
            by_entry.setdefault(s.origin.stem, []).append(k)
    for stem, members in by_entry.items():
        origin = splits[members[0]].origin
        path, tag = stem.with_name(f"{stem.name}.{part}"), stamp(origin)
        table = read_part(path, tag, fields, origin.total) or _blank(fields, origin.total)
        changed = False
        for k in members:
            rows = splits[k].origin.rows
            todo = np.flatnonzero(~table["known"][rows])
            if todo.size:
                new = compute(splits[k], todo)
                for name in fields:
                    table[name][rows[todo]] = new[name]
                table["known"][rows[todo]] = True
                changed = True
            out[k] = {name: table[name][rows] for name in fields}
        if changed:
            write_part(path, tag, table)
    return out


def _blank(fields: Fields, total: int) -> Computed:
    table = {name: np.zeros((total, *shape), dtype=dtype) for name, (dtype, shape) in fields.items()}
    table["known"] = np.zeros(total, dtype=bool)
    return table


def read_part(path: Path, tag: str, fields: Fields, total: int) -> Computed | None:
    """The part's arrays (`known` and `fields`), or None: no part, one of another stamp (an older format, an entry
    rebuilt with other pixels: replaced on the next write), or a damaged one, which is removed with a notice."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {name: z[name] for name in z.files}
    except FileNotFoundError:
        return None
    except Exception as e:   # whatever a damaged zip or .npy member makes numpy raise (BadZipFile: a CRC mismatch)
        return _damaged(path, f"{type(e).__name__}: {e}")
    stamp = data.get("stamp")
    if stamp is None or stamp.shape != () or stamp.dtype.kind != "U":
        return _damaged(path, "no stamp")
    if str(stamp) != tag:
        return None
    expected = {"known": (bool, ())} | fields
    if set(data) != {"stamp", *expected}:
        return _damaged(path, f"arrays {sorted(data)}, not as imgclf writes them")
    for name, (dtype, shape) in expected.items():
        got = data[name]
        if got.dtype != np.dtype(dtype) or got.shape != (total, *shape):
            return _damaged(path, f"its {name!r} is {got.dtype} {got.shape}, not {np.dtype(dtype)} {(total, *shape)}")
    return {name: data[name] for name in expected}


def _damaged(path: Path, why: str) -> None:
    warnings.warn(f"damaged cache entry {path.name} ({why[:120]}): removed, computing it again", stacklevel=4)
    with contextlib.suppress(OSError):
        path.unlink()


def write_part(path: Path, tag: str, table: Computed) -> bool:
    """Write the part atomically if its entry is complete; False when it is not, or the folder cannot be written
    (then it is computed again next time: the decoded images themselves are what a run needs)."""
    meta = path.with_name(path.name.split(".", 1)[0] + ".meta.json")
    if not meta.is_file():
        return False
    try:
        with atomic_write(path) as f:
            np.savez(f, stamp=np.array(tag), **table)
        return True
    except OSError:
        return False
