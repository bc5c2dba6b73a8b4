"""Every bad input a clear error: data files, checkpoints, flags and settings, each refused in one line
that names the file or flag, the field and the fix, before any large allocation or any work."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import re
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import torchscript_writer
from PIL import Image
from test_data_cifar import make_cifar10

import imgclf
from imgclf.checkpoint import FORMAT_VERSION, load_checkpoint
from imgclf.cli import main
from imgclf.data import load_dataset
from imgclf.data.cifar import load_cifar
from imgclf.data.idx import read_idx, write_idx
from imgclf.errors import CheckpointError, DataError, ImgclfError
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


def _shared_nest(depth: int) -> list:
    nest: list = []
    for _ in range(depth):
        nest = [nest, nest]
    return nest


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
    (lambda c: c.update(normalization={"mean": [0.5], "std": [0.0]}), "field 'normalization'.*std in \\[0.0001"),
    (lambda c: c.update(normalization={"mean": [1e300], "std": [0.3]}), "field 'normalization'.*mean"),
    (lambda c: c.update(normalization={"mean": [0.5], "std": [1e-300]}), "field 'normalization'.*std in"),
    # a list 60 deep whose two items are the same list: 2**60 leaves, a few bytes in the file; its repr never ends
    (lambda c: c.update(classes=_shared_nest(60)), "field 'classes' is \\[\\[\\[\\.\\.\\.\\]"),
    (lambda c: c["config"].update(epochs=_shared_nest(60)), "field 'config': setting 'epochs': bad value \\[\\["),
    (lambda c: c["model_args"].update(image_size=_shared_nest(60)), "'model_args.image_size' is \\[\\["),
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
    torch.save({"format_version": FORMAT_VERSION, "model": {"w": torch.zeros(16 << 20)}}, tmp_path / "big.pt")  # 64 MiB
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
    torch.save({"format_version": FORMAT_VERSION, "model": {"w": torch.zeros(16 << 20)}}, tmp_path / "big.pt")
    bomb = _deflated(tmp_path / "big.pt", tmp_path / "bomb.pt")
    monkeypatch.setenv("IMGCLF_MAX_CHECKPOINT_BYTES", str(80 << 20))
    assert load_checkpoint(bomb)["model"]["w"].numel() == 16 << 20


# 4 and 6. Flags and settings -----------------------------------------------------------------------------------

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + "epochs: *i\n"
CONFIG_FILES = {"int-key.yaml": "1: 3\n", "bool-key.yaml": "true: 3\n", "null-key.yaml": "epochs: 1\nnull: 2\n",
                "laughs.yaml": LAUGHS, "long.yaml": "epochs: " + "9" * 100_000 + "x\n", "bool.yaml": "plots: 5\n",
                "dict.yaml": "data: {a: 1}\n", "code.yaml": "!!python/object/apply:os.system [echo hi]\n",
                "list.yaml": "[1, 2]\n", "float-epochs.yaml": "epochs: 1.5\n", "inf-epochs.yaml": "epochs: .inf\n",
                "twice.yaml": "epochs: 1\nepochs: 3\n", "upper.TOML": "epochs = 1.5\n"}
BAD_COMMANDS = [
    (["train", "--image-size", "0"], "'image_size' must be unset or in [4, 2048], got 0"),
    (["train", "--image-size", "1"], "'image_size' must be unset or in [4, 2048], got 1"),
    (["train", "--image-size", "-4"], "'image_size' must be unset or in [4, 2048], got -4"),
    (["train", "--image-size", "100000"], "'image_size' must be unset or in [4, 2048], got 100000"),
    (["train", "--threads", "-1"], "'threads' must be in [0, 1024]"),
    (["train", "--seed", str(2**63)], "'seed' must be in [0, 2**63), got 9223372036854775808"),
    (["train", "--seed", "-1"], "'seed' must be in [0, 2**63), got -1"),
    (["train", "--epochs", "0"], "'epochs' must be at least 1, got 0"),
    (["train", "--batch-size", "0"], "'batch_size' must be at least 1, got 0"),
    (["train", "--val-split", "1.5"], "'val_split' must be in [0, 1), got 1.5"),
    (["train", "--lr", "inf"], "'lr' must be positive, at most 10000, got inf"),
    (["train", "--lr", "nan"], "'lr' must be positive, at most 10000, got nan"),
    (["train", "--lr", "1e308"], "'lr' must be positive, at most 10000, got 1e+308"),
    (["train", "--momentum", "nan"], "'momentum' must be in [0, 1), got nan"),
    (["train", "--weight-decay", "-1"], "'weight_decay' must be in [0, 10000], got -1.0"),
    (["train", "--weight-decay", "1e308"], "'weight_decay' must be in [0, 10000], got 1e+308"),
    (["train", "--warmup", "inf"], "'warmup' must be at most 10000 epochs, got inf"),
    (["train", "--warmup", "1e308"], "'warmup' must be at most 10000 epochs, got 1e+308"),
    (["train", "--budget", "1e308s"], "'budget' must be a time such as 90s, 5m or 1h (at least 10s, at most a week)"),
    (["train", "--progressive-size", "100000", "--progressive-epochs", "1"],
     "'progressive_size' must be 0 (off) or in [8, 2048], got 100000"),
    (["train", "--config", "twice.yaml"], "twice.yaml: cannot parse config file (setting 'epochs' is given twice"),
    (["train", "--config", "upper.TOML"], "upper.TOML: setting 'epochs': bad value 1.5"),
    (["train", "--log-every", "-1"], "'log_every' must be ≥ 0 (0: off), got -1"),
    (["train", "--save-every-steps", "-5"], "'save_every_steps' must be ≥ 0"),
    (["train", "--cutout", "9"], "'cutout' must be at most the images' side (8 px), got 9"),
    (["train", "--crop-pad", "8"], "'crop_pad' must be below the images' side (8 px), got 8"),
    (["train", "--config", "int-key.yaml"], "int-key.yaml: setting names must be text, got '1'"),
    (["train", "--config", "bool-key.yaml"], "bool-key.yaml: setting names must be text, got 'True'"),
    (["train", "--config", "null-key.yaml"], "null-key.yaml: setting names must be text, got 'None'"),
    (["train", "--config", "laughs.yaml"], "laughs.yaml: cannot parse config file (aliases (*name) are not allowed"),
    (["train", "--config", "long.yaml"], "long.yaml: setting 'epochs': bad value '9999999999"),
    (["train", "--config", "bool.yaml"], "bool.yaml: setting 'plots': bad value 5 (expected true or false)"),
    (["train", "--config", "dict.yaml"], "dict.yaml: setting 'data': bad value {'a': 1} (expected text, got a dict)"),
    (["train", "--config", "code.yaml"], "code.yaml: cannot parse config file"),
    (["train", "--config", "list.yaml"], "list.yaml: a config file must be a mapping"),
    (["train", "--config", "float-epochs.yaml"], "setting 'epochs': bad value 1.5 (expected a whole number)"),
    (["train", "--config", "inf-epochs.yaml"], "setting 'epochs': bad value inf (expected a whole number)"),
    (["find-lr", "--steps", "0"], "--steps must be at least 5 (a range to find the steepest descent in), got 0"),
    (["find-lr", "--steps", "1"], "--steps must be at least 5"),
    (["find-lr", "--min-lr", "0"], "--min-lr must be positive"),
    (["find-lr", "--min-lr", "nan"], "--min-lr must be positive"),
    (["find-lr", "--min-lr", "2", "--max-lr", "1"], "--max-lr must be finite and above --min-lr 2, got 1"),
    (["find-lr", "--max-lr", "inf"], "--max-lr must be finite and above --min-lr 1e-05, got inf"),
    (["find-lr", "--max-lr", "nan"], "--max-lr must be finite and above --min-lr 1e-05, got nan"),
    (["show", "--n", "-1"], "--n -1: how many images to draw must be at least 1"),
    (["show", "--n", "0"], "--n 0: how many images to draw must be at least 1"),
    (["show", "--image-size", "100000"], "--image-size 100000: must be unset or in [4, 2048]"),
    (["show", "--image-size", "0"], "--image-size 0: must be unset or in [4, 2048]"),
    (["show", "--seed", str(2**70)], f"--seed {2**70}: which images to draw must be a seed in [0, 2**63)"),
    (["show", "--seed", "-1"], "--seed -1: which images to draw must be a seed in [0, 2**63)"),
    (["show", "--augmented", "--seed", str(2**63)], f"--seed {2**63}: which images to draw must be a seed in"),
]


def test_bad_flags_and_settings_are_one_line_errors_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, text in CONFIG_FILES.items():
        (tmp_path / name).write_text(text)
    out = ["--out", str(tmp_path / "runs")]
    for argv, message in BAD_COMMANDS:
        extra = {"train": ["--data", "digits", *out], "find-lr": ["--data", "digits", *out],
                 "show": ["--data", "digits", "--out", str(tmp_path / "grid.png")]}[argv[0]]
        code, err = _cli(capsys, *argv, *extra)
        assert code == 3 and err.startswith("error: ") and message in err, (argv, err)
        assert err.count("\n") == 1 and len(err) < 400, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(CONFIG_FILES)        # no run folder, no grid


def test_a_plot_out_that_is_a_folder_is_a_one_line_error_naming_it(tmp_path, capsys):
    from imgclf.report.curves import InlineFigure, save_figure

    folder = tmp_path / "adir"
    folder.mkdir()
    code, err = _cli(capsys, "show", "--data", "digits", "--out", str(folder))
    assert code == 3 and f"--out {folder}: is a folder; name the file to write" in err and err.count("\n") == 1
    fig = InlineFigure()
    with pytest.raises(ImgclfError, match=f"{folder}: is a folder, not a file to write the plot to"):
        save_figure(fig, folder, 50)        # every plot (training curves, confusion matrices), not only show's
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["adir"]


def test_predict_and_eval_flags(trained, tmp_path, capsys):
    bare = tmp_path / "bare.pt"
    torch.save(torch.load(trained, weights_only=True)["model"], bare)
    for argv, message in [(["eval", str(bare), "--model", "fastcnn-tiny", "--image-size", "0"], "--image-size 0: "),
                          (["predict", str(bare), str(tmp_path), "--model", "fastcnn-tiny", "--image-size", "-4"],
                           "--image-size -4: must be unset or in [4, 2048]"),
                          (["predict", str(trained), str(tmp_path), "--topk", "0"], "--topk 0: how many classes"),
                          (["predict", str(trained), ""], "'': an empty path"),
                          (["eval", str(trained), "--device", "cpu:1"], "--device cpu:1: there is one CPU device")]:
        code, err = _cli(capsys, *argv)
        assert code == 3 and message in err and err.count("\n") == 1, (argv, err)


def test_find_lr_that_diverges_at_once_suggests_no_lr(tmp_path, capsys):
    code, err = _cli(capsys, "find-lr", "--data", "digits", "--model", "fastcnn-tiny", "--min-lr", "1e6",
                     "--max-lr", "1e9", "--steps", "20", "--out", str(tmp_path))
    assert code == 3 and "the loss diverged within" in err and "lower --min-lr (now 1e+06)" in err
    assert list(tmp_path.iterdir()) == [] and "suggested" not in capsys.readouterr().out


# 7. predict on a folder with an unreadable file ----------------------------------------------------------------


def test_predict_skips_an_unreadable_file_with_a_warning_unless_strict(trained, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "c.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / name)
    (folder / "b.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match=f"skipped {folder / 'b.png'}: not a readable image"):
        assert main(["predict", str(trained), str(folder), "--json"]) == 0
    assert [r["file"] for r in json.loads(capsys.readouterr().out)] == [str(folder / "a.png"), str(folder / "c.png")]
    code, err = _cli(capsys, "predict", str(trained), str(folder), "--strict-images")
    assert code == 3 and f"first: {folder / 'b.png'}: not a readable image" in err and err.count("\n") == 1
    code, err = _cli(capsys, "predict", str(trained), str(folder / "b.png"))
    assert code == 3 and "no readable image was left" in err


def test_predict_prints_a_file_name_that_is_not_utf8(trained, tmp_path, capsys):
    """A name of raw bytes (Linux allows any) comes back with surrogate escapes that a UTF-8 stream refuses: the
    table and the CSV show its odd bytes as \\xNN, the JSON keeps the escapes (json.loads + os.fsencode: the name)."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    odd = os.fsencode(folder) + b"/\xff\xfe.png"
    try:
        with open(odd, "wb") as f:
            f.write((folder / "a.png").read_bytes())
    except OSError:
        pytest.skip("this file system refuses a file name that is not UTF-8")
    assert main(["predict", str(trained), str(folder), "--csv", str(tmp_path / "p.csv")]) == 0
    out = capsys.readouterr().out
    assert f"{folder}/\\xff\\xfe.png: " in out and f"{folder}/a.png: " in out
    assert f"{folder}/\\xff\\xfe.png," in (tmp_path / "p.csv").read_text(encoding="utf-8")
    assert main(["predict", str(trained), str(folder), "--json"]) == 0
    assert odd in [os.fsencode(r["file"]) for r in json.loads(capsys.readouterr().out)]


@pytest.mark.parametrize("shape, field", [([1, 100000, 100000], "model_args.image_size"),
                                          ([0, 8, 8], "model_args.in_channels"), ("1x8x8", "input_shape")])
def test_exported_file_metadata_is_checked_like_a_checkpoint(tmp_path, capsys, shape, field):
    path = tmp_path / "m.torchscript.pt"
    with warnings.catch_warnings():   # torch 2.13 calls TorchScript deprecated; its files still load
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.Flatten()), str(path))   # no metadata inside: the sidecar's is used
    (tmp_path / "m.torchscript.pt.json").write_text(json.dumps(
        {"classes": ["a", "b"], "input_shape": shape, "mean": [0.5], "std": [0.5]}))
    code, err = _cli(capsys, "predict", str(path), str(tmp_path), "--trust-exported")
    assert code == 3 and str(path) in err and field in err and err.count("\n") == 1, err


def test_an_output_file_that_exists_is_never_replaced_without_force(tmp_path, capsys):
    """predict --csv, report --out and show --out: a checkpoint, a dataset's image or an earlier result named by
    mistake stays as it was (one-line error naming --force); with --force the file is replaced."""
    from PIL import Image

    assert main(["train", "--epochs", "1", "--no-plots", "--out", str(tmp_path), "--name", "r"]) == 0
    best = tmp_path / "r" / "best.pt"
    before = best.read_bytes()
    image = tmp_path / "seven.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(image)
    capsys.readouterr()
    for argv in (["predict", str(best), str(image), "--csv", str(best)],
                 ["report", str(tmp_path / "r"), str(tmp_path / "r"), "--out", str(best)],
                 ["show", "--data", "digits", "--out", str(image)]):
        code, err = _cli(capsys, *argv)
        assert code == 3 and "the file exists; pass --force" in err and err.count("\n") == 1, argv
    assert best.read_bytes() == before and Image.open(image).size == (8, 8)
    code, err = _cli(capsys, "show", "--data", "digits", "--out", str(tmp_path / "grid.pt"))
    assert code == 3 and "end the name in .png" in err
    csv = tmp_path / "p.csv"
    csv.write_text("mine\n")
    assert main(["predict", str(best), str(image), "--csv", str(csv), "--force"]) == 0
    assert csv.read_text().startswith("file,class,probability,topk")


def test_a_torchscript_program_runs_only_when_trusted(tmp_path, capsys):
    """A TorchScript file is code, whatever its name: one named like a checkpoint, carrying imgclf's metadata,
    whose forward writes into a file, is refused by predict and eval (the file untouched) and by load; it runs only
    with --trust-exported."""
    victim = tmp_path / "victim.txt"
    path = torchscript_writer(tmp_path / "best.pt", victim, channels=3, classes=2)
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    for cmd in (["predict", str(path), str(image)], ["eval", str(path), "--data", "digits"]):
        code, err = _cli(capsys, *cmd)
        assert code == 3 and "TorchScript program" in err and "--trust-exported" in err, err
    with pytest.raises(CheckpointError, match="trust_exported=True"):
        imgclf.load(path)
    assert victim.read_bytes() == b"user data"
    assert _cli(capsys, "predict", str(path), str(image), "--trust-exported")[0] == 0   # trusted: its code ran
    assert victim.read_bytes() == b"XXXX data"


def test_an_output_that_is_a_link_fifo_or_device_is_never_replaced(trained, tmp_path, capsys):
    """--force replaces a file; a symbolic link, a FIFO or a device node named as the output is refused, even with
    --force (an atomic rename would replace the node itself: /dev/null became a regular file)."""
    target = tmp_path / "target.csv"
    target.write_text("mine")
    (tmp_path / "link.csv").symlink_to(target)
    os.mkfifo(tmp_path / "fifo.csv")
    for out in (tmp_path / "link.csv", tmp_path / "fifo.csv", Path("/dev/null")):
        code, err = _cli(capsys, "predict", str(trained), str(tmp_path / "target.csv"), "--csv", str(out), "--force")
        assert code == 3 and "never does" in err, err
    assert (tmp_path / "link.csv").is_symlink() and target.read_text() == "mine"
    assert Path("/dev/null").is_char_device()


def test_find_lr_never_suggests_an_lr_outside_the_range_it_tried():
    from imgclf.engine.lr_finder import suggest

    assert suggest([1e-3, 1e-2, 1e-1], [2.0, 1.5, float("nan")]) == 1e-3   # diverged early: not 1e-3 / 10
