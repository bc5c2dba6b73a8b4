"""MNIST-format IDX files: the real ones, generated ones, and every kind of broken one."""

import gzip

import numpy as np
import pytest

from imgclf.data import load_dataset
from imgclf.data.idx import read_idx, write_idx
from imgclf.errors import DataError


def test_real_mnist_loads_with_known_labels(mnist_dir):
    ds = load_dataset("mnist", mnist_dir)
    assert ds.shape == (1, 28, 28) and len(ds.train) == 60000 and len(ds.test) == 10000
    assert ds.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ds.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert ds.train.images.dtype.is_floating_point is False and int(ds.train.images.max()) == 255


def _write_set(folder, n=20, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    sfx = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    for split, m in (("train", n), ("t10k", n // 2)):
        write_idx(folder / f"{split}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (m, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte{sfx}", rng.integers(0, 10, m))
    return folder


@pytest.mark.parametrize("gz", [True, False])
def test_generated_idx_round_trip(tmp_path, gz):
    folder = _write_set(tmp_path / "fashion-mnist", gz=gz)
    ds = load_dataset("fashion-mnist", tmp_path, download_missing=False)
    assert len(ds.train) == 20 and len(ds.test) == 10 and ds.classes[0] == "T-shirt/top"
    again = read_idx(folder / f"train-images-idx3-ubyte{'.gz' if gz else ''}")
    assert np.array_equal(ds.train.images[:, 0].numpy(), again)


def test_torchvision_layout_is_found(tmp_path):
    _write_set(tmp_path / "MNIST" / "raw")
    assert len(load_dataset("mnist", tmp_path, download_missing=False).train) == 20


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b"\x08\x03" + b[2:], "bad magic"),
    (lambda b: b[:2] + b"\x0d" + b[3:], "data type"),
    (lambda b: b"", "bad magic"),
])
def test_broken_idx_files_name_the_file(tmp_path, damage, message):
    p = tmp_path / "train-images-idx3-ubyte"
    write_idx(p, np.zeros((4, 28, 28)))
    p.write_bytes(damage(p.read_bytes()))
    with pytest.raises(DataError, match=message) as e:
        read_idx(p)
    assert str(p) in str(e.value)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    p = tmp_path / "train-labels-idx1-ubyte.gz"
    p.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(5))[:-6] + b"garbage")
    with pytest.raises(DataError, match=str(p)):
        read_idx(p)


def test_swapped_label_and_image_files(tmp_path):
    folder = _write_set(tmp_path / "m")
    a, b = folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz"
    tmp = folder / "x"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    with pytest.raises(DataError, match="swapped"):
        load_dataset("mnist", folder, download_missing=False)


def test_missing_named_dataset_offline_says_where(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz") as e:
        load_dataset("mnist", tmp_path, download_missing=False)
    assert str(tmp_path) in str(e.value)
