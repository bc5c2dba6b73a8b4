"""Every bad input a clear error (issue 12): data files, checkpoints, flags and settings, each refused in one line
that names the file or flag, the field and the fix, before any large allocation or any work."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
from test_data_cifar import make_cifar10

from imgclf.cli import main
from imgclf.data import load_dataset
from imgclf.data.cifar import load_cifar
from imgclf.data.idx import read_idx, write_idx
from imgclf.errors import DataError


def _cli(capsys, *argv: str) -> tuple[int, str]:
    """Run `imgclf ARGV` in this process: (exit code, stderr)."""
    code = main(list(argv))
    return code, capsys.readouterr().err


# 1. IDX datasets -----------------------------------------------------------------------------------------------


def test_idx_train_and_test_image_sizes_must_agree(tmp_path, capsys):
    folder, rng = tmp_path / "mnist", np.random.default_rng(0)
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (8, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (4, 20, 20)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 4))
    code, err = _cli(capsys, "train", "--data", "mnist", "--data-dir", str(tmp_path), "--no-download",
                     "--out", str(tmp_path / "runs"))
    assert code == 3 and "t10k-images-idx3-ubyte.gz: test images are 20×20 but the train images" in err
    assert err.count("\n") == 1 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dims, message", [
    ((2**32 - 1,) * 3, "not a valid dataset"),                        # the product overflows 64 bits
    ((1000, 1000, 1000), "more than this .*-byte file"),              # a gigabyte claimed by a file of a few bytes
])
def test_idx_header_larger_than_the_file_is_refused_before_reading(tmp_path, monkeypatch, gz, dims, message):
    raw = bytes([0, 0, 8, 3]) + struct.pack(">III", *dims) + bytes(64)
    path = tmp_path / ("x-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(raw) if gz else raw)
    reads = []
    monkeypatch.setattr(gzip.GzipFile, "read", lambda self, n=-1, _r=gzip.GzipFile.read: reads.append(n) or _r(self, n))
    with pytest.raises(DataError, match=message) as e:
        read_idx(path)
    assert str(path) in str(e.value) and all(0 <= n <= 12 for n in reads)   # only the header was decompressed


def test_gzipped_idx_within_its_size_still_loads(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    write_idx(path, np.zeros((50, 28, 28)))                               # compresses ~40:1, well under 1032:1
    assert read_idx(path).shape == (50, 28, 28)


# 2. CIFAR labels -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("labels, message", [
    ([1.7, 2.0], r"'labels'\[0\] is 1.7 \(float\); labels must be whole numbers"),
    ([1, True], r"'labels'\[1\] is True \(bool\)"),
    (["1", "2"], r"'labels'\[0\] is '1' \(str\)"),
    (np.array([1.0, 2.0]), "float64 array; labels must be"),
    ([2**70, 1], r"'labels'\[0\] is 1180591620717411303424: labels outside 0..9"),
    ([3, -1], r"'labels'\[1\] is -1: labels outside 0..9"),
    (7, "is of type int"),
])
def test_cifar_labels_that_are_not_class_indices(tmp_path, labels, message):
    folder = make_cifar10(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_4").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}))
    with pytest.raises(DataError, match=message) as e:
        load_cifar("cifar10", folder)
    assert "data_batch_4" in str(e.value)


def test_cifar_integer_label_arrays_load(tmp_path):
    folder = make_cifar10(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_4").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8),
                                                        b"labels": np.array([9, 0], np.uint8)}))
    assert load_dataset("cifar10", tmp_path, download_missing=False).train.labels[18:20].tolist() == [9, 0]


@pytest.mark.parametrize("names, message", [([b"\xff\xfe"] * 10, "not UTF-8"), ([b"cat"] * 10, "'cat' more than once")])
def test_cifar_class_names_must_be_text_and_distinct(tmp_path, names, message):
    folder = make_cifar10(tmp_path / "cifar-10-batches-py")
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    with pytest.raises(DataError, match=f"batches.meta: 'label_names' .*{message}"):
        load_cifar("cifar10", folder)
