"""MNIST / Fashion-MNIST: the official IDX files, gzipped or not."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .split import Dataset, Split

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_MAX_ITEMS = 50_000_000


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (uint8 data only, as MNIST uses) into an array; any defect is a DataError naming the file."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read this IDX file ({e}); delete it and download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number); expected an MNIST-format file "
                        "such as train-images-idx3-ubyte.gz")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise DataError(f"{path}: IDX data type 0x{dtype_code:02x} is not supported (only unsigned byte, 0x08)")
    if ndim not in (1, 3):
        raise DataError(f"{path}: IDX file has {ndim} dimensions; expected 1 (labels) or 3 (images)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    count = int(np.prod(dims, dtype=np.int64))
    if count > _MAX_ITEMS * 1000 or any(d == 0 for d in dims):
        raise DataError(f"{path}: IDX header claims dimensions {dims}, which is not a valid dataset")
    if len(raw) - header != count:
        raise DataError(f"{path}: IDX file is truncated or padded: header says {dims} = {count} bytes of data, "
                        f"file has {len(raw) - header}; download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def find_idx_file(folder: Path, stem: str) -> Path | None:
    """The IDX file `stem` in `folder`, gzipped or plain (also torchvision's `raw/` sub-folder)."""
    for sub in (folder, folder / "raw"):
        for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
            if (sub / name).is_file():
                return sub / name
    return None


def load_idx_dataset(name: str, folder: Path, classes: list[str]) -> Dataset:
    """Load the four IDX files found in `folder` as a Dataset with 1×28×28 uint8 images."""
    paths = {}
    for key, stem in IDX_FILES.items():
        p = find_idx_file(folder, stem)
        if p is None:
            raise DataError(f"{name}: {stem}.gz not found in {folder}")
        paths[key] = p
    arrays = {k: read_idx(p) for k, p in paths.items()}
    splits = {}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1:
            raise DataError(f"{paths[split + '_images']}: expected images (3-D) and labels (1-D) IDX files, "
                            f"got {x.ndim}-D and {y.ndim}-D; are the file names swapped?")
        if len(x) != len(y):
            raise DataError(f"{paths[split + '_labels']}: {len(y)} labels for {len(x)} images")
        if y.max(initial=0) >= len(classes):
            raise DataError(f"{paths[split + '_labels']}: label {int(y.max())} is out of range 0..{len(classes) - 1}")
        splits[split] = Split(torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)), split)
    return Dataset(name, splits["train"], splits["test"], classes, source=str(folder))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in IDX format (gzipped if the name ends in .gz); used by tests and exports."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data, compresslevel=1) if path.suffix == ".gz" else data)
