"""The embedded dataset: scikit-learn's 8×8 handwritten digits (1,797 images), needing no network.

The split is fixed and documented: the file's first 1,437 images (80%) are train, the last 360 are test.
Pixels (0–16 in the file) are scaled to 0–255.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .split import Dataset, Split

N_TRAIN = 1437


def digits_file() -> Path:
    """Where scikit-learn keeps digits.csv.gz (found without importing scikit-learn, which is slow)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the 'digits' dataset ships with scikit-learn, which is not installed: "
                        "pip install scikit-learn")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DataError(f"{path}: scikit-learn's digits data file is missing; reinstall scikit-learn")
    return path


def load_digits() -> Dataset:
    """Load the 8×8 digits as a Dataset of 1×8×8 uint8 images, 10 classes '0'..'9'."""
    path = digits_file()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    images = np.round(table[:, :64] * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = table[:, 64].astype(np.int64)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    return Dataset("digits", Split(x[:N_TRAIN], y[:N_TRAIN], "train"), Split(x[N_TRAIN:], y[N_TRAIN:], "test"),
                   [str(d) for d in range(10)], source=str(path))
