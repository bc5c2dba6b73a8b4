"""The embedded dataset: the 8×8 handwritten digits (1,797 images), shipped inside this package, needing no network.

digits.csv.gz is the UCI Optical Recognition of Handwritten Digits test set, the same file scikit-learn ships
(57 KB; see DIGITS_LICENSE.txt: CC BY 4.0, E. Alpaydin and C. Kaynak). The split is fixed and documented: the
file's first 1,437 images (80%) are train, the last 360 are test. Pixels (0–16 in the file) are scaled to 0–255.
"""

from __future__ import annotations

import gzip
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import DataError
from .split import Dataset, Split

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

N_TRAIN = 1437


def digits_file() -> Traversable:
    """digits.csv.gz inside the installed package (package data, see pyproject.toml)."""
    path = resources.files(__package__).joinpath("digits.csv.gz")
    if not path.is_file():
        raise DataError(f"{path}: the embedded digits data file is missing from the imgclf package; reinstall imgclf")
    return path


def load_digits() -> Dataset:
    """Load the 8×8 digits as a Dataset of 1×8×8 uint8 images, 10 classes '0'..'9'."""
    path = digits_file()
    with path.open("rb") as raw, gzip.open(raw, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    images = np.round(table[:, :64] * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = table[:, 64].astype(np.int64)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    return Dataset("digits", Split(x[:N_TRAIN], y[:N_TRAIN], "train"), Split(x[N_TRAIN:], y[N_TRAIN:], "test"),
                   [str(d) for d in range(10)], source=str(path))
