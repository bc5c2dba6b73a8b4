"""Downloads against a local HTTP server on 127.0.0.1 that serves files the test generates (Range supported)."""

import hashlib

import numpy as np
import pytest
from conftest import RangeHandler

from imgclf.data import load_dataset, registry
from imgclf.data.download import download
from imgclf.data.idx import write_idx
from imgclf.errors import DataError


def md5(p):
    return hashlib.md5(p.read_bytes()).hexdigest()


def test_download_verifies_and_resumes(server, tmp_path):
    root, url, _ = server
    (root / "blob.bin").write_bytes(np.random.default_rng(0).bytes(200_000))
    dest = tmp_path / "dl" / "blob.bin"
    dest.parent.mkdir()
    (dest.parent / "blob.bin.part").write_bytes((root / "blob.bin").read_bytes()[:70_000])  # an interrupted earlier try
    download(url + "blob.bin", dest, md5(root / "blob.bin"))
    assert dest.read_bytes() == (root / "blob.bin").read_bytes()
    assert RangeHandler.requests[-1][1] == "bytes=70000-"
    assert not (dest.parent / "blob.bin.part").exists()


def test_checksum_mismatch_removes_the_bad_file(server, tmp_path):
    root, url, _ = server
    (root / "f.gz").write_bytes(b"not what was promised")
    with pytest.raises(DataError, match="checksum mismatch"):
        download(url + "f.gz", tmp_path / "f.gz", "0" * 32)
    assert not (tmp_path / "f.gz").exists() and not (tmp_path / "f.gz.part").exists()


def test_named_dataset_downloads_from_its_url(server, tmp_path, monkeypatch):
    root, url, _ = server
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", 12), ("t10k", 6)):
        write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    for p in root.iterdir():
        files[p.name] = md5(p)
    spec = registry.NAMED["mnist"]
    monkeypatch.setitem(registry.NAMED, "mnist", registry.NamedDataset(
        "mnist", spec.description, files, url, spec.folder_names, spec.loader, spec.is_present))
    ds = load_dataset("mnist", tmp_path / "data")
    assert len(ds.train) == 12 and (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_offline_error_says_which_files_go_where(tmp_path, monkeypatch):
    spec = registry.NAMED["cifar10"]
    monkeypatch.setitem(registry.NAMED, "cifar10", registry.NamedDataset(
        "cifar10", spec.description, spec.files, "http://127.0.0.1:9/", spec.folder_names, spec.loader,
        spec.is_present))
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path / "d")
    msg = str(e.value)
    assert "cifar-10-python.tar.gz" in msg and str(tmp_path / "d" / "cifar10") in msg
