"""`imgclf check`: a dataset's health without training — images per class and split, tiny classes, the image files'
sizes, shapes, modes and formats (read from their headers once, then kept beside the folder cache entry), what the
loader warned about (unreadable files, links under two classes), and repeated images (duplicates.py)."""

from __future__ import annotations

import itertools
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cacheparts import rows_cached
from .duplicates import Findings, find_duplicates
from .images import image_header
from .registry import load_dataset
from .split import Dataset, Split

TINY_CLASS = 20   # a class with fewer training images than this is named: too few to learn it, or to measure it
SIDE_BINS = (32, 64, 128, 256, 512, 1024, 2048)         # the longer side's histogram: below 32, 32–63, ..., 2048 up
ASPECT_BINS = (0.5, 0.8, 1.25, 2.0)                     # width / height: below 0.5, ..., 2 and up
MODES = ("?", "1", "L", "LA", "I", "I;16", "F", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "other")
GREY, ALPHA = {"1", "L", "I", "I;16", "F"}, {"LA", "PA", "RGBA"}
FORMATS = ("?", "JPEG", "MPO", "PNG", "BMP", "WEBP", "GIF", "TIFF", "other")
EXPECTED = {".jpg": {"JPEG", "MPO"}, ".jpeg": {"JPEG", "MPO"}, ".png": {"PNG"}, ".bmp": {"BMP"}, ".webp": {"WEBP"},
            ".gif": {"GIF"}, ".tif": {"TIFF"}, ".tiff": {"TIFF"}}
HEADER_VERSION = 1


@dataclass
class FileSurvey:
    """What the image files' headers say, over every split: size and shape histograms, modes, formats."""

    longer_side: dict[str, int]
    aspect: dict[str, Any]
    modes: dict[str, int]
    kinds: dict[str, int]                      # grey, colour, alpha
    mismatched: list[dict[str, str]]           # split, file, format: a name that says another format than its bytes
    unreadable: int                            # headers Pillow could not read (the loader skipped those files)


@dataclass
class CheckReport:
    """Everything `imgclf check` reports on one dataset."""

    dataset: Dataset
    findings: Findings
    files: FileSurvey | None
    loader_warnings: list[str]
    seconds: dict[str, float] = field(default_factory=dict)

    def per_class(self) -> dict[str, list[int]]:
        """Split name → images per class (in class order)."""
        n = len(self.dataset.classes)
        return {name: np.bincount(s.labels.numpy(), minlength=n).tolist() for name, s in self.dataset.splits().items()}

    def tiny_classes(self) -> list[str]:
        train = self.per_class()["train"]
        return [c for c, k in zip(self.dataset.classes, train) if k < TINY_CLASS]

    def to_json(self, max_pairs: int = 10_000) -> dict[str, Any]:
        """The report as one JSON-ready dict (at most `max_pairs` pairs listed; the counts count them all)."""
        ds, f = self.dataset, self.findings
        splits = {name: {"images": len(s), "per_class": dict(zip(ds.classes, self.per_class()[name]))}
                  for name, s in ds.splits().items()}
        return {"dataset": ds.name, "source": ds.source, "classes": list(ds.classes), "image_shape": list(ds.shape),
                "notes": list(ds.notes), "splits": splits, "tiny_classes": self.tiny_classes(),
                "files": asdict(self.files) if self.files else None, "loader_warnings": self.loader_warnings,
                "duplicates": {"counts": f.counts, "test_repeating_train": len(f.test_indices_repeating_train()),
                               "pairs": [asdict(p) for p in f.pairs[:max_pairs]]},
                "problems": f.problems(), "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


def check_data(data: str | Path, data_dir: str | Path | None = None, *, image_size: int | None = None,
               test_split: float = 0.2, seed: int = 0, photo_size: int | None = None,
               download_missing: bool = True, images_root: str | Path | None = None,
               columns: str | None = None) -> CheckReport:
    """Load the data as `imgclf train` would (no val hold-out: the splits on disk) and survey it. What the loader
    warns about is collected into the report, not printed."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(data, data_dir, image_size=image_size, test_split=test_split, seed=seed,
                          download_missing=download_missing, photo_size=photo_size, images_root=images_root,
                          columns=columns)
    t1 = time.perf_counter()
    files = survey_files(ds)
    t2 = time.perf_counter()
    findings = find_duplicates(ds)
    seconds = {"load": t1 - t0, "files": t2 - t1, "duplicates": findings.seconds}
    return CheckReport(ds, findings, files, [str(w.message) for w in caught], seconds)


def survey_files(ds: Dataset) -> FileSurvey | None:
    """The files' headers summed up (None for a named dataset, or a Hugging Face dataset holding its images as bytes:
    their images are arrays or rows, not files)."""
    splits = [s for s in ds.splits().values() if s.keys is not None and len(s)
              and (_split_root(ds, s) / s.keys[0]).is_file()]
    if not splits:
        return None
    fields = {"size": (np.int32, (2,)), "mode": (np.uint8, ()), "format": (np.uint8, ())}
    tables = rows_cached(splits, "headers.npz", lambda o: f"v{HEADER_VERSION} {o.stem.name}", fields,
                         lambda s, positions: _headers(s, positions, _split_root(ds, s)))
    size = np.concatenate([t["size"] for t in tables]).astype(np.int64)
    mode = np.concatenate([t["mode"] for t in tables])
    known = size[:, 0] > 0
    mismatched = []
    for s, t in zip(splits, tables):
        for i in np.flatnonzero(t["format"] > 0):
            got = FORMATS[t["format"][i]]
            if got not in EXPECTED.get(os.path.splitext(s.keys[i])[1].lower(), {got}):
                mismatched.append({"split": s.name, "file": s.keys[i], "format": got})
    names = [MODES[m] for m in mode[known]]
    return FileSurvey(_side_histogram(size[known].max(axis=1)), _aspect(size[known]),
                      {m: names.count(m) for m in sorted(set(names))},
                      {"grey": sum(m in GREY for m in names), "alpha": sum(m in ALPHA for m in names),
                       "colour": sum(m not in GREY | ALPHA for m in names)}, mismatched, int((~known).sum()))


def _split_root(ds: Dataset, split: Split) -> Path:
    """The folder a split's keys are relative to: its cache origin's, else the dataset's (a folder split into train
    and test by file) or its split folder (root/train, root/test, root/val)."""
    if split.origin is not None:
        return split.origin.root
    root = Path(ds.source)
    return root / split.name if (root / split.name / split.keys[0]).is_file() else root


def _headers(split: Split, positions: np.ndarray, root: Path) -> dict[str, np.ndarray]:
    size = np.zeros((len(positions), 2), np.int32)
    mode = np.zeros(len(positions), np.uint8)
    fmt = np.zeros(len(positions), np.uint8)
    for k, i in enumerate(positions.tolist()):
        head = image_header(root / split.keys[i])
        if head is not None:
            size[k] = head[:2]
            mode[k] = MODES.index(head[2]) if head[2] in MODES else MODES.index("other")
            fmt[k] = FORMATS.index(head[3]) if head[3] in FORMATS else FORMATS.index("other")
    return {"size": size, "mode": mode, "format": fmt}


def _side_histogram(longer: np.ndarray) -> dict[str, int]:
    edges = (0, *SIDE_BINS)
    labels = [f"<{SIDE_BINS[0]}"] + [f"{a}–{b - 1}" for a, b in itertools.pairwise(SIDE_BINS)] + [f"≥{SIDE_BINS[-1]}"]
    counts = np.bincount(np.searchsorted(edges, longer, side="right") - 1, minlength=len(labels))
    return dict(zip(labels, counts.tolist()))


def _aspect(size: np.ndarray) -> dict[str, Any]:
    """Width / height: min, median, max and a histogram."""
    if not len(size):
        return {}
    ratio = size[:, 0] / size[:, 1]
    b = ASPECT_BINS
    labels = [f"<{b[0]}"] + [f"{x}–{y}" for x, y in itertools.pairwise(b)] + [f"≥{b[-1]}"]
    counts = np.bincount(np.searchsorted(b, ratio, side="right"), minlength=len(labels))
    return {"min": round(float(ratio.min()), 3), "median": round(float(np.median(ratio)), 3),
            "max": round(float(ratio.max()), 3), "bins": dict(zip(labels, counts.tolist()))}
