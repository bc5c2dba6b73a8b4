"""Every bad input a clear error (issue 12): data files, checkpoints, flags and settings, each refused in one line
that names the file or flag, the field and the fix, before any large allocation or any work."""

from __future__ import annotations

import gzip
import pickle
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data_cifar import make_cifar10

import imgclf
from imgclf.cli import main
from imgclf.data import load_dataset
from imgclf.data.cifar import load_cifar
from imgclf.data.idx import read_idx, write_idx
from imgclf.engine.checkpoint import load_checkpoint
from imgclf.errors import CheckpointError, DataError
from imgclf.exported import open_exported
from imgclf.models.pretrained import read_weights


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


# 3 and 5. Checkpoints ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real best.pt: fastcnn-tiny on digits, one epoch (~2 s)."""
    out = tmp_path_factory.mktemp("runs")
    imgclf.train(data="digits", model="fastcnn-tiny", epochs=1, out=str(out), name="r", plots=False, quiet=True)
    return out / "r" / "best.pt"


def _edited(trained: Path, tmp_path: Path, edit) -> Path:
    ckpt = torch.load(trained, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, tmp_path / "edited.pt")
    return tmp_path / "edited.pt"


def _nan_first_weight(c):
    key = next(iter(c["model"]))
    c["model"][key] = torch.full_like(c["model"][key], float("nan"))


def test_eval_refuses_weights_with_nan(trained, tmp_path, capsys):
    path = _edited(trained, tmp_path, _nan_first_weight)
    code, err = _cli(capsys, "eval", str(path))
    assert code == 3 and f"{path}: weights hold NaN or infinite values" in err and err.count("\n") == 1
    assert "%" not in capsys.readouterr().out


@pytest.mark.parametrize("edit, field", [
    (lambda c: c.pop("model_name"), "no 'model_name' field"),
    (lambda c: c.update(model_name=7), "field 'model_name' is 7"),
    (lambda c: c["model_args"].update(act="swish"), "field 'model_args.act' is 'swish'; expected one of gelu, relu"),
    (lambda c: c["model_args"].update(image_size=[0, 0]), "'model_args.image_size' is \\[0, 0\\]"),
    (lambda c: c["model_args"].update(image_size=[-4, -4]), "'model_args.image_size' is \\[-4, -4\\]"),
    (lambda c: c["model_args"].update(image_size=[100000, 100000]), "expected \\[height, width\\] in 1..2048"),
    (lambda c: c["model_args"].update(image_size="8"), "'model_args.image_size' is '8'"),
    (lambda c: c["model_args"].update(in_channels=True), "'model_args.in_channels' is True"),
    (lambda c: c.update(model_args=[1, 10]), "field 'model_args' is \\[1, 10\\]"),
    (lambda c: c.update(classes=10), "field 'classes' is 10"),
    (lambda c: c.update(normalization={"mean": [0.5], "std": [0.0]}), "field 'normalization'.*std positive"),
    (lambda c: c["config"].update(resize=7), "field 'config': setting 'resize'"),
    (lambda c: c["config"].update(val_split=3), "field 'config': setting 'val_split' must be in"),
    (lambda c: c["model"].update(extra=5), "field \"model\\['extra'\\]\" is 5"),
])
def test_checkpoint_fields_are_checked_and_named(trained, tmp_path, capsys, edit, field):
    path = _edited(trained, tmp_path, edit)
    for command in (["eval", str(path)], ["predict", str(path), str(tmp_path)]):
        code, err = _cli(capsys, *command)
        assert code == 3 and re.search(field, err) and str(path) in err and err.count("\n") == 1, err


def _deflated(src: Path, dst: Path) -> Path:
    """`src` re-zipped with every member deflated (torch.save stores them), which torch.load reads as well."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    return dst


def test_compressed_checkpoint_is_refused_by_its_declared_size(tmp_path, monkeypatch):
    torch.save({"format_version": 1, "model": {"w": torch.zeros(16 << 20)}}, tmp_path / "big.pt")   # 64 MiB
    bomb = _deflated(tmp_path / "big.pt", tmp_path / "bomb.pt")                                # ~70 KB
    assert bomb.stat().st_size < 200_000 and torch.load(bomb, weights_only=True)["model"]["w"].numel() == 16 << 20
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load reached"))
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load reached"))
    for load in (load_checkpoint, read_weights, lambda p: open_exported(p, "torchscript", "cpu")):
        with pytest.raises(CheckpointError, match=f"{bomb}: refused: .* would expand to 67,109,"):
            load(bomb)


def test_honestly_compressed_checkpoints_load_and_the_cap_can_be_raised(trained, tmp_path, monkeypatch):
    small = _deflated(trained, tmp_path / "deflated.pt")
    assert imgclf.load(small, device="cpu").classes == imgclf.load(trained, device="cpu").classes
    torch.save({"format_version": 1, "model": {"w": torch.zeros(16 << 20)}}, tmp_path / "big.pt")
    bomb = _deflated(tmp_path / "big.pt", tmp_path / "bomb.pt")
    monkeypatch.setenv("IMGCLF_MAX_CHECKPOINT_BYTES", str(80 << 20))
    assert load_checkpoint(bomb)["model"]["w"].numel() == 16 << 20
