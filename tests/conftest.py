"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent), an isolated cache,
small generated datasets in the official formats."""

from __future__ import annotations

import http.server
import tarfile
import threading
import typing
from functools import partial
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MNIST_DIR = SHARED / "mnist"
CIFAR_JPEG = SHARED / "cifar10-jpeg.tar.gz"


@pytest.fixture(autouse=True)
def _fixed_threads(monkeypatch):
    """Runs that a test compares bitwise compute with one thread count: a run given no --threads takes the CPUs
    other processes leave free (machine.py), and another test's leftover child can make that differ between the
    two runs. OMP_NUM_THREADS is what a run then follows (and what child processes inherit); tests of the choice
    itself remove it."""
    from imgclf import machine

    monkeypatch.setenv("OMP_NUM_THREADS", str(min(2, machine.usable_cpus())))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own decoded-folder cache and data dir: nothing leaks between tests or into ~/.cache."""
    base = tmp_path_factory.mktemp("imgclf-home")
    monkeypatch.setenv("IMGCLF_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("IMGCLF_DATA_DIR", str(base / "data"))
    # the `datasets` library's cache, and no network (it reads these when first imported: the first test to import
    # it, in-process or in a child, gets a folder of its own)
    monkeypatch.setenv("HF_HOME", str(base / "huggingface"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST files not found at {MNIST_DIR} (shared data absent)")
    return MNIST_DIR


@pytest.fixture(scope="session")
def cifar_jpeg_subset(tmp_path_factory) -> Path:
    """A real image folder: the first 30 train and 10 test JPEGs of each CIFAR-10 class from the shared archive."""
    if not CIFAR_JPEG.is_file():
        pytest.skip(f"{CIFAR_JPEG} not found (shared data absent)")
    out = tmp_path_factory.mktemp("cifar-jpeg")
    keep = {"train": 30, "test": 10}
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(CIFAR_JPEG) as tar:
        for m in tar:
            parts = Path(m.name).parts
            if not m.isfile() or len(parts) < 3:
                continue
            split, cls = parts[-3], parts[-2]
            if split in keep and counts.get((split, cls), 0) < keep[split]:
                counts[(split, cls)] = counts.get((split, cls), 0) + 1
                target = out / split / cls / parts[-1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(m).read())
    return out


def make_image_folder(root: Path, classes=("circle", "square"), per_class: int | list[int] = 12, size: int = 16,
                      seed: int = 0, ext: str = ".png") -> Path:
    """Generated images whose class is visible (a bright disc vs a bright square, colours differ by class), so a
    model can learn them; `per_class` may give each class its own count (an imbalanced folder)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class if isinstance(per_class, int) else per_class[ci]):
            cy, cx = rng.integers(size // 3, 2 * size // 3, 2)
            r = size // 4
            mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) if ci % 2 == 0 else \
                ((abs(yy - cy) <= r) & (abs(xx - cx) <= r))
            img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
            img[mask] = [200 + 20 * (ci // 2), 180, 60 * ci % 255]
            Image.fromarray(img).save(root / c / f"{i:03d}{ext}")
    return root


WEATHER = SHARED / "weather-mwd.tar.gz"


@pytest.fixture(scope="session")
def weather_dir(tmp_path_factory) -> Path:
    """Real photos of 549 sizes (the Multi-class Weather Dataset: train/ and test/, 4 classes), extracted once."""
    if not WEATHER.is_file():
        pytest.skip(f"{WEATHER} not found (shared data absent)")
    out = tmp_path_factory.mktemp("weather")
    with tarfile.open(WEATHER) as tar:
        tar.extractall(out, filter="data")
    return out / "weather-mwd"


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
    """A local HTTP server on 127.0.0.1 for a folder the test fills: yields (folder, base URL, stop). It shuts
    itself down after 120 s whatever happens to the test; `stop()` takes it offline earlier."""
    root = tmp_path / "served"
    root.mkdir()
    RangeHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(root)))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    limit = threading.Timer(120, httpd.shutdown)
    limit.daemon = True
    limit.start()

    def stop():
        limit.cancel()
        httpd.shutdown()
        httpd.server_close()

    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/", stop
    stop()


def printed_config(text: str) -> dict:
    """`imgclf train --print-config`'s output read back: {key: value}, its comments and layer names left out."""
    import json

    return {k: json.loads(v.split("  # ")[0]) for k, v in (line.split(": ", 1) for line in text.splitlines()
                                                          if line and not line.startswith("#"))}


def torchscript_writer(path: Path, victim: Path, channels: int = 1, classes: int = 10) -> Path:
    """A TorchScript program saved as `path` (named like a checkpoint), with imgclf's metadata for an 8×8 input of
    `channels`, whose forward writes XXXX over the first bytes of `victim` (which gets b"user data" first): the
    file that must never run untrusted."""
    import json
    import warnings

    import torch

    class Writer(torch.nn.Module):
        def __init__(self, target: str, classes: int) -> None:
            super().__init__()
            self.target, self.classes = target, classes

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            written = torch.from_file(self.target, shared=True, size=4, dtype=torch.uint8).fill_(88)
            return x.flatten(1)[:, :self.classes] + written[:1].float() * 0

    victim.write_bytes(b"user data")
    meta = {"classes": [str(i) for i in range(classes)], "input_shape": [channels, 8, 8], "mean": [0.5] * channels,
            "std": [0.5] * channels}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.jit.script(Writer(str(victim), classes))
        torch.jit.save(program, str(path), _extra_files={"imgclf.json": json.dumps(meta)})
    return path
