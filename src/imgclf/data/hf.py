"""`--data hf:PATH`: a Hugging Face `datasets` dataset — a folder written by `save_to_disk`, a local image folder
(the library's `imagefolder`), `.parquet` / `.arrow` files, or a Hub id loaded by the library as it loads them — read
into a Listing (listed.py), so that its images go through the folder cache, splits and checks of an image folder.
Its own splits (train, validation, test) are kept; its image column (a `datasets.Image` feature) is decoded by
images.decode_image from the bytes or file each row holds; class names come from a ClassLabel label column. The
`datasets` library is an optional extra: `pip install 'imgclf[hf]'`."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import DataError
from .folder import FileList
from .images import EncodedImage, ImageSource
from .listed import SPLIT_NAMES, Listing, label_order

PREFIX = "hf:"
IMAGE_COLUMNS = ("image", "img", "picture", "photo")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "fine_label")
COLUMNS_FIX = "--columns IMAGE,LABEL names them"
OWN_SPLIT = "give the dataset a test split of its own"
_FILES = (".parquet", ".arrow")


def is_hf(data: Any) -> bool:
    """Whether `--data` names a Hugging Face dataset (hf:PATH or hf:HUB_ID)."""
    return isinstance(data, str) and data.startswith(PREFIX)


def library() -> Any:
    """The `datasets` module, or a one-line error saying how to install it."""
    try:
        import datasets
    except ImportError:
        raise DataError("--data hf:...: reading Hugging Face datasets needs the `datasets` library; "
                        "pip install 'imgclf[hf]'") from None
    return datasets


@contextlib.contextmanager
def _no_bars(datasets: Any) -> Iterator[None]:
    """The library's own progress bars off while imgclf loads (its header and bar say what happens)."""
    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def open_hf(spec: str) -> tuple[dict[str, Any], Path | None]:
    """The dataset `spec` names, as {its split name: datasets.Dataset}, and its local path (None for a Hub id)."""
    datasets, target = library(), spec[len(PREFIX):]
    if not target:
        raise DataError("--data hf:: name a dataset after hf: (a folder written by save_to_disk, an image folder, "
                        ".parquet/.arrow files, or a Hub id)")
    path = Path(target).expanduser()
    local = path if path.exists() else None
    try:
        with _no_bars(datasets):
            if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
                loaded = datasets.load_from_disk(str(path))
            elif path.is_file() and path.suffix.lower() in _FILES:
                loaded = datasets.load_dataset(path.suffix[1:].lower(), data_files=str(path))
            elif path.is_dir():
                loaded = datasets.load_dataset(str(path))
            elif path.exists():
                raise DataError(f"{spec}: not a dataset; give a folder (save_to_disk's, an image folder, or one of "
                                ".parquet/.arrow files) or a .parquet/.arrow file")
            else:
                loaded = datasets.load_dataset(target)
    except DataError:
        raise
    except Exception as e:   # the library's errors are of many kinds: a missing file, no network, a bad format
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        if local is None:
            raise DataError(f"{spec}: no such local path, and the Hugging Face Hub could not give it ({first}); "
                            "offline, run `datasets.load_dataset(...).save_to_disk(FOLDER)` where the Hub is "
                            "reachable and pass hf:FOLDER") from None
        raise DataError(f"{spec}: the datasets library cannot read it ({first}); expected a folder written by "
                        "save_to_disk, an image folder, or .parquet/.arrow files") from None
    splits = dict(loaded) if isinstance(loaded, dict) else {"train": loaded}
    return splits, local


def read_hf(spec: str, columns: str | None = None) -> Listing:
    """The dataset's images, labels and splits as a Listing (see the module docstring)."""
    splits, local = open_hf(spec)
    parts, notes = _parts(spec, splits)
    image_col, label_col = _columns(spec, parts["train"], columns)
    classes, labels = _labels(spec, parts, label_col, notes)
    parts = {p: d for p, d in parts.items() if p in labels}   # a split without labels was left out (a note says so)
    root, record, source, name = _where(spec, local, parts["train"])
    images = _Images([(p, d.with_format("arrow"), image_col) for p, d in parts.items()], spec, root)
    keys, signature = images.keys_and_signature()
    for p, d in parts.items():
        files = [f["filename"] for f in d.cache_files]
        signature.append("\0".join([p, image_col, label_col, str(d.num_rows), *map(_stat, files)])
                         if files else f"{p}\0{image_col}\0{label_col}\0{getattr(d, '_fingerprint', '')}")
    order = [p for p in parts for _ in range(parts[p].num_rows)]
    fl = FileList(root, images, [y for p in parts for y in labels[p]], classes, signature, keys=keys, record=record)
    sizes = ", ".join(f"{p} {d.num_rows:,}" for p, d in parts.items())
    notes.insert(0, f"{spec}: {sizes} images (columns: image {image_col!r}, label {label_col!r})")
    return Listing(fl, order, name, source, notes, OWN_SPLIT)


def _where(spec: str, local: Path | None, train: Any) -> tuple[Path, str, str, str]:
    """(the folder file paths are relative to, what the cache records as the origin, Dataset.source, the name): a
    local dataset by its resolved path, a Hub id by itself (its files lie in the library's cache)."""
    if local is not None:
        where = local.resolve()
        return (where if where.is_dir() else where.parent), str(where), f"{PREFIX}{where}", \
            where.name if where.is_dir() else where.stem
    files = train.cache_files
    root = Path(files[0]["filename"]).parent if files else Path.cwd()
    return root, str(root) if files else spec, spec, spec[len(PREFIX):].rstrip("/").split("/")[-1]


def _parts(spec: str, splits: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The dataset's splits under imgclf's names (train, val, test); others are left out, with a note."""
    parts: dict[str, Any] = {}
    notes = []
    for name, d in splits.items():
        part = SPLIT_NAMES.get(name.lower())
        if part is None or part in parts:
            notes.append(f"{spec}: split {name!r} ({d.num_rows:,} rows) not used (imgclf uses train, validation "
                         "and test)")
            continue
        parts[part] = d
    if "train" not in parts:
        raise DataError(f"{spec}: no train split (its splits: {', '.join(splits) or 'none'}); imgclf trains on one "
                        "named train")
    return {p: parts[p] for p in ("train", "val", "test") if p in parts}, notes


def _columns(spec: str, ds: Any, given: str | None) -> tuple[str, str]:
    """(image column, label column): as `given` ('IMAGE,LABEL') or found by type (datasets.Image, ClassLabel) and
    name."""
    datasets = library()
    features = ds.features
    listed = ", ".join(f"{k} ({type(v).__name__})" for k, v in features.items())
    if given:
        names = [n.strip() for n in given.split(",")]
        if len(names) != 2 or not all(names):
            raise DataError(f"--columns {given!r}: give IMAGE,LABEL (column names of {spec})")
        for n in names:
            if n not in features:
                raise DataError(f"{spec}: no column {n!r} (its columns: {listed}); {COLUMNS_FIX}")
        image, label = names
    else:
        image = _pick([k for k, v in features.items() if isinstance(v, datasets.Image)], IMAGE_COLUMNS)
        label = _pick([k for k, v in features.items() if isinstance(v, datasets.ClassLabel)], LABEL_COLUMNS) or \
            next((c for c in LABEL_COLUMNS if c in features), None)
        if image is None or label is None:
            what = "images (a datasets.Image feature)" if image is None else "labels (a ClassLabel, or one named " \
                   f"{'/'.join(LABEL_COLUMNS)})"
            raise DataError(f"{spec}: cannot tell which column holds the {what} (its columns: {listed}); "
                            f"{COLUMNS_FIX}")
    if not isinstance(features[image], datasets.Image):
        raise DataError(f"{spec}: column {image!r} holds {type(features[image]).__name__}, not images (a "
                        f"datasets.Image feature; its columns: {listed}); {COLUMNS_FIX}")
    return image, label


def _pick(found: list[str], preferred: tuple[str, ...]) -> str | None:
    """The one column found, or among several the first of `preferred` (None when that does not decide)."""
    if len(found) == 1:
        return found[0]
    return next((p for p in preferred if p in found), None)


def _labels(spec: str, parts: dict[str, Any], column: str, notes: list[str]
            ) -> tuple[list[str], dict[str, list[int]]]:
    """(class names, each split's class indices): a ClassLabel's names, else the values' (numbers by value). A split
    whose rows have no label at all (an unlabelled test split, -1) is left out with a note; some rows without one is
    an error naming the first."""
    datasets = library()
    feature = parts["train"].features[column]
    raw = {p: d.with_format("arrow")[column].to_pylist() for p, d in parts.items()}
    missing = {p: [i for i, v in enumerate(vals) if v is None or v == "" or (v == -1 and isinstance(
        feature, datasets.ClassLabel))] for p, vals in raw.items()}
    for p in list(raw):
        if raw[p] and len(missing[p]) == len(raw[p]) and p != "train":
            notes.append(f"{spec}: the {p} split has no labels in {column!r}; left out")
            del raw[p]
        elif missing[p]:
            raise DataError(f"{spec}: {p} split row {missing[p][0]} has no label in column {column!r} "
                            f"({len(missing[p])} such rows); label every row, or drop those rows (Dataset.filter)")
    if isinstance(feature, datasets.ClassLabel):
        for p, d in parts.items():
            if p in raw and d.features[column] != feature:
                raise DataError(f"{spec}: the {p} split's classes in {column!r} differ from train's; give every "
                                "split one ClassLabel")
        return list(feature.names), {p: [int(v) for v in vals] for p, vals in raw.items()}
    classes = sorted({str(v) for vals in raw.values() for v in vals}, key=label_order)
    index = {c: i for i, c in enumerate(classes)}
    return classes, {p: [index[str(v)] for v in vals] for p, vals in raw.items()}


def _stat(path: str) -> str:
    """A file's name, size, modification and change times and inode: what the cache key is made of."""
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}\0missing"
    return f"{path}\0{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}"


class _Images(Sequence):
    """The image of every row of the splits, in order, read from the Arrow tables a slice at a time (decoding holds a
    few chunks' bytes in memory, never the dataset): an EncodedImage of the bytes a row holds, or the file it names."""

    def __init__(self, parts: list[tuple[str, Any, str]], spec: str, root: Path):
        self.parts, self.spec, self.root = parts, spec, root
        self.starts = [0]
        for _, d, _ in parts:
            self.starts.append(self.starts[-1] + d.num_rows)

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [item for a, b in self._pieces(*index.indices(len(self))[:2]) for item in self._read(a, b)]
        i = index + len(self) if index < 0 else index
        if not 0 <= i < len(self):
            raise IndexError(index)
        return self._read(i, i + 1)[0]

    def __iter__(self) -> Iterator[ImageSource]:
        for s in range(0, len(self), 256):
            yield from self[s:s + 256]

    def _pieces(self, start: int, stop: int) -> list[tuple[int, int]]:
        """[start, stop) cut where one split ends and the next begins."""
        cuts = sorted({start, stop, *(s for s in self.starts if start < s < stop)})
        return [(a, b) for a, b in itertools.pairwise(cuts) if a < b]

    def _locate(self, i: int) -> tuple[int, int]:
        k = max(j for j, s in enumerate(self.starts[:-1]) if s <= i)
        return k, i - self.starts[k]

    def _read(self, a: int, b: int) -> list[ImageSource]:
        """Rows [a, b) of one split as images to decode."""
        k, row = self._locate(a)
        split, table, column = self.parts[k]
        cells = table[row:row + b - a].column(column).to_pylist()
        return [self._item(split, row + n, c) for n, c in enumerate(cells)]

    def _item(self, split: str, row: int, cell: dict[str, Any] | None) -> ImageSource:
        data, path = (cell or {}).get("bytes"), (cell or {}).get("path")
        if data is None and path:
            return path if os.path.isabs(path) else str(self.root / path)
        return EncodedImage(f"{self.spec} {split} row {row}" + (f" ({path})" if path else ""), data or b"")

    def keys_and_signature(self) -> tuple[list[str], list[str]]:
        """Each image's name (its file relative to the dataset's folder, or the name its row records; the split and
        row where those do not tell images apart), and for images in files of their own, each file's signature."""
        import pyarrow.compute as pc  # pyarrow comes with datasets

        names: list[str] = []
        signature: list[str] = []
        for _, table, column in self.parts:
            cells = table[:].column(column)
            paths = pc.struct_field(cells, "path").to_pylist()
            stored = pc.is_null(pc.struct_field(cells, "bytes")).to_pylist()
            for path, in_file in zip(paths, stored):
                if in_file and path:
                    full = path if os.path.isabs(path) else str(self.root / path)
                    signature.append(_stat(full))
                    rel = os.path.relpath(full, self.root)
                    names.append(rel if not rel.startswith("..") else full)
                else:
                    names.append(path or "")
        rows = [f"{split}/{row}" for split, table, _ in self.parts for row in range(table.num_rows)]
        unique = all(names) and len(set(names)) == len(names)
        return (names if unique else rows), signature
