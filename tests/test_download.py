"""Downloads against a local HTTP server on 127.0.0.1 that serves files the test generates (Range supported)."""

import hashlib
import http.server
import threading
import typing
from functools import partial

import numpy as np
import pytest

from imgclf.data import load_dataset, registry
from imgclf.data.download import download
from imgclf.data.idx import write_idx
from imgclf.errors import DataError


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; honours 'Range: bytes=N-' so resumed downloads can be tested. Counts requests."""

    requests: typing.ClassVar[list] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        type(self).requests.append((self.path, self.headers.get("Range")))
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    RangeHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def md5(p):
    return hashlib.md5(p.read_bytes()).hexdigest()


def test_download_verifies_and_resumes(server, tmp_path):
    root, url = server
    (root / "blob.bin").write_bytes(np.random.default_rng(0).bytes(200_000))
    dest = tmp_path / "dl" / "blob.bin"
    dest.parent.mkdir()
    (dest.parent / "blob.bin.part").write_bytes((root / "blob.bin").read_bytes()[:70_000])  # an interrupted earlier try
    download(url + "blob.bin", dest, md5(root / "blob.bin"), quiet=True)
    assert dest.read_bytes() == (root / "blob.bin").read_bytes()
    assert RangeHandler.requests[-1][1] == "bytes=70000-"
    assert not (dest.parent / "blob.bin.part").exists()


def test_checksum_mismatch_removes_the_bad_file(server, tmp_path):
    root, url = server
    (root / "f.gz").write_bytes(b"not what was promised")
    with pytest.raises(DataError, match="checksum mismatch"):
        download(url + "f.gz", tmp_path / "f.gz", "0" * 32, quiet=True)
    assert not (tmp_path / "f.gz").exists() and not (tmp_path / "f.gz.part").exists()


def test_named_dataset_downloads_from_its_url(server, tmp_path, monkeypatch):
    root, url = server
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
    ds = load_dataset("mnist", tmp_path / "data", quiet=True)
    assert len(ds.train) == 12 and (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_offline_error_says_which_files_go_where(tmp_path, monkeypatch):
    spec = registry.NAMED["cifar10"]
    monkeypatch.setitem(registry.NAMED, "cifar10", registry.NamedDataset(
        "cifar10", spec.description, spec.files, "http://127.0.0.1:9/", spec.folder_names, spec.loader,
        spec.is_present))
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path / "d", quiet=True)
    msg = str(e.value)
    assert "cifar-10-python.tar.gz" in msg and str(tmp_path / "d" / "cifar10") in msg
