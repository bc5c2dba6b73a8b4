"""MNIST / Fashion-MNIST: the official IDX files, gzipped or not."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import BinaryIO

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
_DEFLATE_MAX_RATIO = 1032   # deflate's best case: no gzip file decompresses to more than ~1032× its size


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (uint8 data only, as MNIST uses) into an array; any defect is a DataError naming the file.
    The header's dimensions are checked against the file's size before the data is read (or decompressed), so a
    damaged or hostile header cannot make us allocate more than the file can hold."""
    gz = path.suffix == ".gz"
    try:
        size = path.stat().st_size
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            dims = _read_header(f, path)
            count = _checked_count(dims, size, gz, path)
            data = f.read(count + 1)           # one byte more than the header says: padding is a defect too
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read this IDX file ({e}); delete it and download it again") from None
    if len(data) != count:
        raise DataError(f"{path}: IDX file is truncated or padded: header says {dims} = {count} bytes of data, "
                        f"file has {'more' if len(data) > count else len(data)}; download it again")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _read_header(f: BinaryIO, path: Path) -> list[int]:
    """The dimensions in an IDX header (magic, type, rank, then one big-endian uint32 per dimension)."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number); expected an MNIST-format file "
                        "such as train-images-idx3-ubyte.gz")
    dtype_code, ndim = magic[2], magic[3]
    if dtype_code != 0x08:
        raise DataError(f"{path}: IDX data type 0x{dtype_code:02x} is not supported (only unsigned byte, 0x08)")
    if ndim not in (1, 3):
        raise DataError(f"{path}: IDX file has {ndim} dimensions; expected 1 (labels) or 3 (images)")
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{path}: IDX header is truncated")
    return [int.from_bytes(raw[4 * i: 4 * i + 4], "big") for i in range(ndim)]


def _checked_count(dims: list[int], size: int, gz: bool, path: Path) -> int:
    """The number of data bytes the header declares (exact integer product: no overflow), refused when it is zero,
    beyond any dataset, or more than a file of `size` bytes can hold (gzip: at most deflate's 1032:1 ratio)."""
    count = math.prod(dims)
    if count > _MAX_ITEMS * 1000 or count == 0:
        raise DataError(f"{path}: IDX header claims dimensions {dims}, which is not a valid dataset")
    room = size * _DEFLATE_MAX_RATIO if gz else size - 4 - 4 * len(dims)
    if count > room:
        raise DataError(f"{path}: IDX header claims dimensions {dims} = {count:,} bytes of data, more than this "
                        f"{size:,}-byte file{' (gzipped)' if gz else ''} can hold: the file is truncated or damaged; "
                        "download it again")
    return count


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
    train_hw, test_hw = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if train_hw != test_hw:
        raise DataError(f"{paths['test_images']}: test images are {test_hw[0]}×{test_hw[1]} but the train images in "
                        f"{paths['train_images'].name} are {train_hw[0]}×{train_hw[1]}; both files must come from the "
                        "same dataset (download them again)")
    return Dataset(name, splits["train"], splits["test"], classes, source=str(folder))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in IDX format (gzipped if the name ends in .gz); used by tests and exports."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data, compresslevel=1) if path.suffix == ".gz" else data)
