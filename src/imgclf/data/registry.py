"""One entry point for every dataset: `load_dataset(name_or_path, ...)` → Dataset (uint8 tensors + classes)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import check_image_size
from ..errors import ConfigError, DataError
from . import cifar, idx
from .digits import load_digits
from .download import download
from .folder import load_folder
from .hf import is_hf, read_hf
from .images import resize_images
from .listed import load_listed
from .split import Dataset, hold_out_val
from .table import dataframe_settings, is_dataframe, is_table, read_table

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"


@dataclass(frozen=True)
class NamedDataset:
    """A dataset we know by name: its files (name → md5), where they come from, and how to read them."""

    name: str
    description: str
    files: dict[str, str]
    base_url: str
    folder_names: tuple[str, ...]   # sub-folders of the data dir searched (ours first, then torchvision's)
    loader: Callable[[Path], Dataset]
    is_present: Callable[[Path], bool]


def _idx_present(folder: Path) -> bool:
    return all(idx.find_idx_file(folder, stem) for stem in idx.IDX_FILES.values())


def _cifar_source(name: str, folder: Path) -> Path | None:
    spec = cifar.CIFAR[name]
    for cand in (folder / spec["folder"], folder):
        if (cand / spec["test"][0]).is_file():
            return cand
    if (folder / spec["archive"]).is_file():
        return folder / spec["archive"]
    return None


def _cifar_loader(name: str) -> Callable[[Path], Dataset]:
    def load(folder: Path) -> Dataset:
        return cifar.load_cifar(name, _cifar_source(name, folder))
    return load


NAMED: dict[str, NamedDataset] = {
    "digits": NamedDataset("digits", "8×8 handwritten digits, embedded in imgclf (1,437 train / 360 test)",
                           {}, "", (), lambda _: load_digits(), lambda _: True),
    "mnist": NamedDataset("mnist", "MNIST handwritten digits, 28×28 grayscale, 60k/10k",
                          {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                           "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                           "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                           "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
                          MNIST_URL, ("mnist", "MNIST"),
                          lambda f: idx.load_idx_dataset("mnist", f, idx.MNIST_CLASSES), _idx_present),
    "fashion-mnist": NamedDataset("fashion-mnist", "Zalando Fashion-MNIST, 28×28 grayscale, 60k/10k",
                                  {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                   "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                                   "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                                   "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
                                  FASHION_URL, ("fashion-mnist", "FashionMNIST"),
                                  lambda f: idx.load_idx_dataset("fashion-mnist", f, idx.FASHION_CLASSES),
                                  _idx_present),
    "cifar10": NamedDataset("cifar10", "CIFAR-10, 32×32 colour, 10 classes, 50k/10k (python version)",
                            {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}, CIFAR_URL,
                            ("cifar10", "cifar-10"), _cifar_loader("cifar10"),
                            lambda f: _cifar_source("cifar10", f) is not None),
    "cifar100": NamedDataset("cifar100", "CIFAR-100, 32×32 colour, 100 classes, 50k/10k (python version)",
                             {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"}, CIFAR_URL,
                             ("cifar100", "cifar-100"), _cifar_loader("cifar100"),
                             lambda f: _cifar_source("cifar100", f) is not None),
}


def default_data_dir() -> Path:
    """$IMGCLF_DATA_DIR, else $XDG_CACHE_HOME/imgclf/data, else ~/.cache/imgclf/data."""
    if os.environ.get("IMGCLF_DATA_DIR"):
        return Path(os.environ["IMGCLF_DATA_DIR"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "imgclf" / "data"


def cache_dir() -> Path:
    """Where decoded image folders are cached ($IMGCLF_CACHE_DIR or <cache>/imgclf/folders)."""
    if os.environ.get("IMGCLF_CACHE_DIR"):
        return Path(os.environ["IMGCLF_CACHE_DIR"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "imgclf" / "folders"


def locate(name: str, data_dir: Path | None = None) -> Path | None:
    """The folder holding `name`'s files under `data_dir` (itself or a known sub-folder), or None."""
    ds = NAMED[name]
    root = Path(data_dir) if data_dir else default_data_dir()
    if not ds.files:
        return root
    for cand in (root, *(root / f for f in ds.folder_names)):
        if cand.is_dir() and ds.is_present(cand):
            return cand
    return None


def fetch(name: str, data_dir: Path | None = None) -> Path:
    """Download `name`'s official files into <data_dir>/<name>/ and return that folder."""
    ds = NAMED[name]
    target = (Path(data_dir) if data_dir else default_data_dir()) / ds.folder_names[0]
    for fname, md5 in ds.files.items():
        try:
            download(ds.base_url + fname, target / fname, md5)
        except DataError as e:
            names = ", ".join(ds.files)
            raise DataError(f"{e}. To use {name} offline, put {names} into {target}/ "
                            "(or pass --data-dir to the folder that has them)") from None
    return target


def _check_table_options(data: Any, images_root: str | Path | None, columns: str | None) -> None:
    """--images-root is for a CSV's paths, --columns for a CSV's or a Hugging Face dataset's columns: given for other
    data, they would be ignored unsaid."""
    table = not is_hf(data) and is_table(Path(str(data)).expanduser())
    if images_root and not table:
        raise ConfigError(f"--images-root {images_root}: the folder a CSV's paths are relative to, but --data {data} "
                          "is no CSV file; drop --images-root")
    if columns and not (table or is_hf(data)):
        raise ConfigError(f"--columns {columns}: names a CSV's or a Hugging Face dataset's columns, but --data {data} "
                          "is neither; drop --columns")


def load_dataset(data: Any = "digits", data_dir: str | Path | None = None, *, download_missing: bool = True,
                 image_size: int | tuple[int, int] | None = None, val_split: float = 0.0, test_split: float = 0.2,
                 seed: int = 0, strict_images: bool = False, resize: str = "crop",
                 auto_size_cap: int = 64, photo_size: int | None = None, images_root: str | Path | None = None,
                 columns: str | None = None) -> Dataset:
    """Load a named dataset (see NAMED), an image folder, a CSV of files and labels (paths relative to
    `images_root`, default its folder; a pandas DataFrame too) or a Hugging Face dataset ('hf:PATH'; `columns` names
    the file/image and label columns when they are not found by name); optionally resize and hold out a validation
    split (`val_split` of each train class, fixed `seed`) unless the data has its own val split. `photo_size`: the
    size a folder of photos gets when none is given (folder.choose_size)."""
    check_image_size(image_size)   # before loading: a size of 0 or 100000 must not reach the resizer
    size = (image_size, image_size) if isinstance(image_size, int) else (tuple(image_size) if image_size else None)
    if is_dataframe(data):
        table = dataframe_settings(data, images_root)
        data, images_root = table["data"], table["images_root"]
    key = str(data).lower()
    _check_table_options(data, images_root, columns)
    listed = {"image_size": size, "test_split": test_split, "seed": seed, "strict": strict_images, "fit": resize,
              "auto_size_cap": auto_size_cap, "photo_size": photo_size}
    if is_hf(data):
        ds, size = load_listed(read_hf(str(data), columns), cache_dir(), **listed), None
    elif key in NAMED:
        folder = locate(key, Path(data_dir) if data_dir else None)
        if folder is None:
            if not download_missing:
                where = Path(data_dir) if data_dir else default_data_dir()
                raise DataError(f"{key} not found in {where}; put {', '.join(NAMED[key].files)} there "
                                "or run without --no-download")
            folder = fetch(key, Path(data_dir) if data_dir else None)
        ds = NAMED[key].loader(folder)
        if ds.train.images.shape[1:] != ds.test.images.shape[1:]:   # each loader checks too; this is the backstop
            raise DataError(f"{key} in {folder}: train images are {tuple(ds.train.images.shape[1:])} but test images "
                            f"are {tuple(ds.test.images.shape[1:])} (C, H, W); the files must come from one dataset")
    else:
        path = Path(data).expanduser()
        if not path.exists():
            raise DataError(f"--data {data}: neither a dataset name ({', '.join(NAMED)}) nor an existing folder or "
                            "CSV file (a Hugging Face dataset is hf:PATH)")
        if is_table(path):
            ds = load_listed(read_table(path, images_root, columns), cache_dir(), **listed)
        else:
            ds = load_folder(path, cache_dir(), **listed)
        size = None  # already decoded at that size
    if size is not None and ds.shape[1:] != size:
        ds.stored_shape = ds.shape
        for s in ds.splits().values():
            s.images = resize_images(s.images, size)
        ds.notes.append(f"images resized to {size[0]}×{size[1]}")
    return hold_out_val(ds, val_split, seed)
