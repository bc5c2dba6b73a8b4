"""`--data labels.csv`: a CSV of image files and their labels (Kaggle's usual layout; fastai's from_csv, Keras'
flow_from_dataframe), and in Python a pandas DataFrame of the same columns, read into a Listing (listed.py) that goes
through the image folder's cache, splits and checks. Paths are relative to `images_root` (default: the CSV's folder);
an optional split column says train, val or test per row. Bad rows are one-line errors naming the file, the line,
the column and the fix."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import stat
import warnings
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..fileio import write_text_atomic
from ..words import counted, plural
from .folder import FileList
from .images import IMAGE_EXTENSIONS
from .listed import SPLIT_NAMES, Listing, label_order

TABLE_SUFFIXES = (".csv", ".tsv")
# column names looked for, in this order (case-insensitive), when --columns does not name them
FILE_COLUMNS = ("file", "filename", "file_name", "filepath", "file_path", "path", "image", "image_path", "image_name",
                "image_id", "img", "id")
LABEL_COLUMNS = ("label", "labels", "class", "class_name", "category", "target", "y")
SPLIT_COLUMNS = ("split", "subset", "partition")
COLUMNS_FIX = "--columns FILE,LABEL (or FILE,LABEL,SPLIT) names them"
OWN_SPLIT = "give the test images rows of their own (a split column saying train, val or test)"


def is_table(path: Path) -> bool:
    """Whether `--data PATH` names a CSV (or tab-separated) file of images and labels."""
    return path.suffix.lower() in TABLE_SUFFIXES and not path.is_dir()


def read_table(csv_path: Path, images_root: str | Path | None = None, columns: str | None = None) -> Listing:
    """The CSV's images, labels and splits as a Listing; one image per file (a file listed twice under one label is
    used once, under two labels it is an error)."""
    csv_path = Path(csv_path)
    header, rows = _rows(csv_path)
    cols = _columns(csv_path, header, columns)
    root = Path(images_root).expanduser() if images_root else csv_path.parent
    if not root.is_dir():
        raise DataError(f"--images-root {root}: no such folder (the folder {csv_path.name}'s paths are relative to)")
    found = _resolve(csv_path, root, header, rows, cols, images_root is None)
    labels = sorted({label for _, _, label, _ in found.values()}, key=label_order)
    index = {c: i for i, c in enumerate(labels)}
    listed = sorted(found.items())
    names = [k for k, _ in listed]
    files = [path for _, (path, _, _, _) in listed]
    ints = [index[label] for _, (_, _, label, _) in listed]
    signature = [f"{k}\0{label}\0{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}"
                 for k, (_, st, label, _) in listed]
    parts = [part for _, (_, _, _, part) in listed]
    fl = FileList(root, files, ints, labels, signature, keys=names, record=str(csv_path.resolve()))
    named = ", ".join(f"{what} {header[i]!r}" for what, i in zip(("file", "label", "split"), cols) if i is not None)
    note = f"{csv_path.name}: {len(names):,} images listed (columns: {named}), paths relative to {root}"
    return Listing(fl, parts, csv_path.stem, str(csv_path), [note], OWN_SPLIT)


def _rows(csv_path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and each non-blank row with its line number (as an editor counts lines)."""
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"--data {csv_path}: no such file") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{csv_path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8 CSV") from None
    except OSError as e:
        raise DataError(f"{csv_path}: cannot read it ({e.strerror or e})") from None
    first = text.split("\n", 1)[0]
    delimiter = "\t" if csv_path.suffix.lower() == ".tsv" else max(",;\t", key=lambda d: (first.count(d), d == ","))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader, [])]
        rows = [(reader.line_num, row) for row in reader if any(v.strip() for v in row)]
    except csv.Error as e:
        raise DataError(f"{csv_path} line {reader.line_num}: not valid CSV ({e}); fix the quoting there") from None
    if not any(header):
        raise DataError(f"{csv_path}: empty; expected a header line (e.g. file,label) and a row per image")
    if not rows:
        raise DataError(f"{csv_path}: a header ({', '.join(header)}) but no rows; add a row per image")
    return header, rows


def _columns(csv_path: Path, header: list[str], given: str | None) -> tuple[int, int, int | None]:
    """(file, label, split or None) column indices: as `given` ('FILE,LABEL[,SPLIT]') or found by name."""
    lower = [h.lower() for h in header]
    listed = ", ".join(header)

    def find(name: str) -> int:
        if name in header:
            return header.index(name)
        if name.lower() in lower:
            return lower.index(name.lower())
        raise DataError(f"{csv_path}: no column {name!r} (its columns: {listed}); {COLUMNS_FIX}")

    if given:
        names = [n.strip() for n in given.split(",")]
        if len(names) not in (2, 3) or not all(names):
            raise DataError(f"--columns {given!r}: give FILE,LABEL or FILE,LABEL,SPLIT (column names of "
                            f"{csv_path.name})")
        picked = [find(n) for n in names]
        return picked[0], picked[1], picked[2] if len(picked) == 3 else None

    def first(candidates: tuple[str, ...]) -> int | None:
        return next((lower.index(c) for c in candidates if c in lower), None)

    file, label, split = first(FILE_COLUMNS), first(LABEL_COLUMNS), first(SPLIT_COLUMNS)
    if (file is None or label is None) and len(header) == 2:
        return 0, 1, None        # two columns, named otherwise: the files, then the labels (fastai's default)
    if file is None or label is None:
        what = "files" if file is None else "labels"
        raise DataError(f"{csv_path}: cannot tell which column holds the {what} (its columns: {listed}); "
                        f"{COLUMNS_FIX}")
    return file, label, split


def _cell(row: list[str], i: int) -> str:
    return row[i].strip() if i < len(row) else ""


def _resolve(csv_path: Path, root: Path, header: list[str], rows: list[tuple[int, list[str]]],
             cols: tuple[int, int, int | None], default_root: bool) -> dict[str, tuple[str, os.stat_result, str, str]]:
    """Each listed file once, by its name: (path, stat, label, split). Missing or conflicting rows are errors naming
    the line; a file listed twice with one label is used once, with a warning."""
    fcol, lcol, scol = cols
    found: dict[str, tuple[str, os.stat_result, str, str]] = {}
    line_of: dict[str, int] = {}
    by_inode: dict[tuple[int, int], str] = {}
    missing: list[tuple[int, str]] = []
    twice = 0
    ext = [""]   # the extension found for the last name given without one (Kaggle's id columns)
    for line, row in rows:
        value, label = _cell(row, fcol), _cell(row, lcol)
        where = f"{csv_path} line {line}"
        if not value:
            raise DataError(f"{where}: column {header[fcol]!r} (the file) is empty; give every row a file, or remove "
                            "the row")
        if not label:
            raise DataError(f"{where}: column {header[lcol]!r} (the label) is empty for {value!r}; give every row a "
                            "label, or remove the row")
        part = _split(where, header, row, scol)
        hit = _find(root, value, ext)
        if hit is None:
            missing.append((line, value))
            continue
        name, path, st = hit
        if not stat.S_ISREG(st.st_mode):   # never opened: reading a FIFO or device could block
            raise DataError(f"{where}: {value!r} (column {header[fcol]!r}) is not a regular file (a folder, FIFO or "
                            "device); list image files only")
        name = by_inode.setdefault((st.st_dev, st.st_ino), name) if st.st_ino else name
        if name in found:
            _, _, label0, part0 = found[name]
            if (label0, part0) != (label, part):
                what = (f"labels {label0!r} and {label!r} in column {header[lcol]!r}" if label0 != label else
                        f"splits {part0!r} and {part!r} in column {header[scol or 0]!r}")
                raise DataError(f"{csv_path} lines {line_of[name]} and {line}: file {name!r} has {what}; keep one "
                                "row per file")
            twice += 1
            continue
        found[name], line_of[name] = (path, st, label, part), line
    if missing:
        line, value = missing[0]
        more = f" (and {len(missing) - 1} more rows)" if len(missing) > 1 else ""
        hint = f" (default: the CSV's folder, {root})" if default_root else ""
        raise DataError(f"{csv_path} line {line}: file {value!r} (column {header[fcol]!r}) not found in {root}{more}; "
                        f"fix the path, or pass --images-root DIR, the folder the paths are relative to{hint}")
    if twice:
        warnings.warn(f"{csv_path}: {counted(twice, 'row')} {plural('lists', twice, 'list')} a file already "
                      "listed, with the same label: each file is used once", stacklevel=4)
    return found


def _split(where: str, header: list[str], row: list[str], scol: int | None) -> str:
    """The row's split: 'train' without a split column; an empty or unknown value is an error."""
    if scol is None:
        return "train"
    value = _cell(row, scol)
    part = SPLIT_NAMES.get(value.lower())
    if part is None:
        raise DataError(f"{where}: column {header[scol]!r} says {value!r}; a split is train, val (valid, validation) "
                        "or test")
    return part


def _find(root: Path, value: str, ext: list[str]) -> tuple[str, str, os.stat_result] | None:
    """(name, path, stat) of the file a CSV names, relative to `root` (or absolute); a name without an image
    extension is also looked for with each (the one found last first: a column of ids). None when there is none."""
    name = os.path.normpath(value.replace("\\", "/"))
    candidates = [name]
    if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
        candidates += [name + e for e in dict.fromkeys([ext[0], *sorted(IMAGE_EXTENSIONS)]) if e]
    for cand in candidates:
        path = os.path.join(root, cand)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if cand != name:
            ext[0] = os.path.splitext(cand)[1]
        return cand, path, st
    return None


def is_dataframe(data: Any) -> bool:
    """A pandas DataFrame (told by its type's module, so that pandas is imported only by those who use it)."""
    return type(data).__module__.startswith("pandas") and hasattr(data, "to_csv")


def dataframe_csv(df: Any, folder: Path) -> Path:
    """A DataFrame of files and labels written as `folder/<digest>/dataframe.csv` (atomically, once per content), so a
    run records a CSV that eval and --resume read again; a named index (the files, say) is written as a column."""
    if df.index.name is not None or any(n is not None for n in getattr(df.index, "names", [])):
        df = df.reset_index()
    text = df.to_csv(index=False)
    path = folder / hashlib.sha256(text.encode()).hexdigest()[:16] / "dataframe.csv"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    return path


def dataframe_settings(data: Any, images_root: str | Path | None) -> dict[str, str]:
    """The settings that stand for `data=df`: the DataFrame as a CSV file in the cache folder (dataframe_csv), its
    paths relative to `images_root` or, without one, to the working folder (recorded as absolute, so that eval and
    --resume find them from anywhere)."""
    from .registry import cache_dir  # registry reads tables

    return {"data": str(dataframe_csv(data, cache_dir() / "tables")),
            "images_root": str(Path(images_root or ".").resolve())}


def dataframe_as_csv(config: Any, settings: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """train()'s settings (a TrainConfig or dict, then keywords) with `data` given as a DataFrame replaced by the
    settings that stand for it (dataframe_settings); unchanged otherwise."""
    given = config.given() if hasattr(config, "given") else dict(config or {})
    merged = {**given, **settings}
    if not is_dataframe(merged.get("data")):
        return config, settings
    return {**merged, **dataframe_settings(merged["data"], merged.get("images_root"))}, {}
