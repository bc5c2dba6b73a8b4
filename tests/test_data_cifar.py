"""CIFAR python-format files written by the tests in the official layout, the archive form, and hostile pickles."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from imgclf.data import load_dataset
from imgclf.data.cifar import load_cifar, write_cifar_batch
from imgclf.errors import DataError

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_cifar10(folder, per_batch=6, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_cifar_batch(folder / name, rng.integers(0, 256, (per_batch, 3, 32, 32)), rng.integers(0, 10, per_batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in NAMES],
                                                        b"num_vis": 3072}, protocol=2))
    return folder


def test_extracted_folder(tmp_path):
    src = make_cifar10(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", tmp_path, download_missing=False)
    assert ds.shape == (3, 32, 32) and len(ds.train) == 30 and len(ds.test) == 6 and ds.classes == NAMES
    raw = pickle.loads((src / "test_batch").read_bytes(), encoding="bytes")
    assert np.array_equal(ds.test.images.numpy().reshape(6, -1), raw[b"data"])
    assert ds.test.labels.tolist() == raw[b"labels"]


def test_official_archive_without_extracting(tmp_path):
    src = make_cifar10(tmp_path / "build" / "cifar-10-batches-py")
    archive = tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    ds = load_dataset("cifar10", tmp_path / "data", download_missing=False)
    assert len(ds.train) == 30


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 8), ("test", 4)):
        write_cifar_batch(folder / name, rng.integers(0, 256, (n, 3, 32, 32)), rng.integers(0, 100, n), "fine_labels")
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}))
    ds = load_dataset("cifar100", tmp_path, download_missing=False)
    assert ds.num_classes == 100 and len(ds.train) == 8


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_MARKER",))


def test_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = make_cifar10(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [1]}))
    with pytest.raises(DataError, match="data_batch_3.*refusing to load global"):
        load_cifar("cifar10", folder)
    assert not (tmp_path / "PWNED_MARKER").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "not a valid CIFAR"),
    (b"\x80\x02}q\x00(", "not a valid CIFAR"),               # truncated pickle
    (pickle.dumps([1, 2, 3]), "expected a dict"),
    (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "shape"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "1 labels for 2 images"),
    (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [42]}), "labels outside"),
    (pickle.dumps({b"nothing": 1}), "missing the 'data'"),
])
def test_malformed_batches_name_the_file(tmp_path, content, message):
    folder = make_cifar10(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_2").write_bytes(content)
    with pytest.raises(DataError, match=message) as e:
        load_cifar("cifar10", folder)
    assert "data_batch_2" in str(e.value)


def test_truncated_archive(tmp_path):
    src = make_cifar10(tmp_path / "b" / "cifar-10-batches-py")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        load_cifar("cifar10", archive)
