"""CIFAR-10/100 in the official "python version" format, read without running any pickle code."""

from __future__ import annotations

import io
import pickle
import tarfile
from collections import Counter
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


def _batch_arrays(d: dict, label_key: str, n_classes: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in d or label_key not in d:
        raise DataError(f"{where}: missing the 'data' or '{label_key}' field; is this the right CIFAR variant?")
    x = d["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise DataError(f"{where}: 'data' must be a uint8 array of shape (N, 3072)")
    y = _labels(d[label_key], label_key, n_classes, where)
    if y.shape != (len(x),):
        raise DataError(f"{where}: {len(y)} labels for {len(x)} images")
    return x.reshape(-1, 3, 32, 32), y


def _labels(raw: object, key: str, n_classes: int, where: str) -> np.ndarray:
    """A batch's labels as int64, or a DataError naming the file, the field and the first bad value: labels are
    whole numbers (a list of ints or a 1-D integer array: never floats, bools or text, which would be truncated or
    converted silently) in 0..n_classes-1."""
    if isinstance(raw, np.ndarray):
        if raw.ndim != 1 or raw.dtype.kind not in "iu":
            raise DataError(f"{where}: '{key}' is a {raw.ndim}-D {raw.dtype} array; labels must be a list of whole "
                            "numbers (class indices)")
        values: list = raw.tolist()
    elif isinstance(raw, (list, tuple)):
        values = list(raw)
    else:
        raise DataError(f"{where}: '{key}' is of type {type(raw).__name__}; labels must be a list of whole numbers")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int):
            raise DataError(f"{where}: '{key}'[{i}] is {repr(v)[:40]} ({type(v).__name__}); labels must be whole "
                            "numbers (class indices), not truncated or converted")
        if not 0 <= v < n_classes:
            raise DataError(f"{where}: '{key}'[{i}] is {str(v)[:40]}: labels outside 0..{n_classes - 1} (the "
                            f"{n_classes} class names in the meta file)")
    return np.asarray(values, dtype=np.int64)


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
    classes = _class_names(names, spec["names_key"], meta_where)
    splits = {}
    for split in ("train", "test"):
        xs, ys = [], []
        for batch in spec[split]:
            data, where = files[batch]
            x, y = _batch_arrays(read_cifar_pickle(data, where), spec["label_key"], len(classes), where)
            xs.append(x)
            ys.append(y)
        splits[split] = Split(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)), split)
    return Dataset(name, splits["train"], splits["test"], classes, source=str(source))


def _class_names(names: list, key: str, where: str) -> list[str]:
    """The meta file's class names as text: each decodable, none repeated (a class index must mean one class)."""
    try:
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    except UnicodeDecodeError:
        raise DataError(f"{where}: '{key}' holds a name that is not UTF-8 text; is this a CIFAR meta file?") from None
    repeated = sorted(c for c, n in Counter(classes).items() if n > 1)
    if repeated:
        raise DataError(f"{where}: '{key}' names the class {repeated[0][:40]!r} more than once; each class needs "
                        "its own name")
    return classes


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int], label_key: str = "labels") -> None:
    """Write a batch file in the official format (used by tests to make small CIFAR files)."""
    d = {b"batch_label": b"test", label_key.encode(): list(map(int, labels)),
         b"data": np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.uint8),
         b"filenames": [f"{i}.png".encode() for i in range(len(images))]}
    path.write_bytes(pickle.dumps(d, protocol=2))
