"""CIFAR-10/100 in the official "python version" format, read without running any pickle code."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .split import Dataset, Split

CIFAR = {
    "cifar10": {"archive": "cifar-10-python.tar.gz", "folder": "cifar-10-batches-py",
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "meta": "batches.meta", "label_key": "labels", "names_key": "label_names"},
    "cifar100": {"archive": "cifar-100-python.tar.gz", "folder": "cifar-100-python",
                 "train": ["train"], "test": ["test"],
                 "meta": "meta", "label_key": "fine_labels", "names_key": "fine_label_names"},
}


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; any other global is refused (no code runs)."""

    # What the official files (and the same data re-pickled by Python 3) need to rebuild arrays and bytes;
    # none of these can run code. _codecs.encode is how protocol-2 pickles from Python 3 spell bytes.
    _ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    })

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: CIFAR files hold plain data only")


def read_cifar_pickle(data: bytes, where: str) -> dict:
    """Decode one CIFAR batch file's bytes into a dict with str keys; DataError naming `where` on any defect."""
    try:
        obj = _PlainDataUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:  # any malformed pickle: report it by file, never a deep traceback
        raise DataError(f"{where}: not a valid CIFAR python-format file ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a dict in the CIFAR file, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _batch_arrays(d: dict, label_key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in d or label_key not in d:
        raise DataError(f"{where}: missing the 'data' or '{label_key}' field; is this the right CIFAR variant?")
    x = d["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise DataError(f"{where}: 'data' must be a uint8 array of shape (N, 3072)")
    try:
        y = np.asarray(d[label_key], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: '{label_key}' is not a list of integers") from None
    if y.shape != (len(x),):
        raise DataError(f"{where}: {len(y)} labels for {len(x)} images")
    return x.reshape(-1, 3, 32, 32), y


def _read_members(source: Path, spec: dict) -> dict[str, tuple[bytes, str]]:
    """The batch files' bytes, from the extracted folder or straight from the .tar.gz archive."""
    names = spec["train"] + spec["test"] + [spec["meta"]]
    if source.is_dir():
        out = {}
        for n in names:
            p = source / n
            if not p.is_file():
                raise DataError(f"{p}: missing; the folder must hold the extracted {spec['folder']}/ files")
            out[n] = (p.read_bytes(), str(p))
        return out
    out = {}
    try:
        with tarfile.open(source, "r:*") as tar:
            for m in tar:
                base = m.name.rsplit("/", 1)[-1]
                if base in names and m.isfile():
                    f = tar.extractfile(m)
                    out[base] = (f.read() if f else b"", f"{source}!{m.name}")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{source}: cannot read this archive ({e}); delete it and download it again") from None
    missing = [n for n in names if n not in out]
    if missing:
        raise DataError(f"{source}: archive lacks {', '.join(missing)}; is it the python version of CIFAR?")
    return out


def load_cifar(name: str, source: Path) -> Dataset:
    """Load CIFAR-10 or CIFAR-100 from the extracted folder or the official archive at `source`."""
    spec = CIFAR[name]
    files = _read_members(source, spec)
    meta_bytes, meta_where = files[spec["meta"]]
    meta = read_cifar_pickle(meta_bytes, meta_where)
    names = meta.get(spec["names_key"])
    if not isinstance(names, list) or not names:
        raise DataError(f"{meta_where}: missing the class names field '{spec['names_key']}'")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    splits = {}
    for split in ("train", "test"):
        xs, ys = [], []
        for batch in spec[split]:
            data, where = files[batch]
            x, y = _batch_arrays(read_cifar_pickle(data, where), spec["label_key"], where)
            if len(y) and (y.min() < 0 or y.max() >= len(classes)):
                raise DataError(f"{where}: labels outside 0..{len(classes) - 1}")
            xs.append(x)
            ys.append(y)
        splits[split] = Split(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)), split)
    return Dataset(name, splits["train"], splits["test"], classes, source=str(source))


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int], label_key: str = "labels") -> None:
    """Write a batch file in the official format (used by tests to make small CIFAR files)."""
    d = {b"batch_label": b"test", label_key.encode(): list(map(int, labels)),
         b"data": np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.uint8),
         b"filenames": [f"{i}.png".encode() for i in range(len(images))]}
    path.write_bytes(pickle.dumps(d, protocol=2))
