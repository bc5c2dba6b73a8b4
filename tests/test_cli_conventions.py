"""The issue's CLI conventions and their neighbours: the digits file shipped in the package, --version,
--quiet/--verbose, exit codes, help text, find-lr's run folder, predict --csv and in-memory images, TensorBoard."""

import argparse
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_image_folder
from PIL import Image

import imgclf
from imgclf import __version__, cli
from imgclf.cli import main
from imgclf.data import load_dataset
from imgclf.data.digits import digits_file
from imgclf.engine.stopping import TrainingStopped
from imgclf.errors import DataError
from imgclf.models import MODELS
from imgclf.report.tensorboard import SCALARS, TensorBoardLogger

# sha256 over the train images, train labels, test images and test labels (in that order) as loaded from
# scikit-learn's copy of digits.csv.gz, computed before the file moved into this package
DIGITS_SHA256 = "eaa9834de03c5a5ab5b2e0d1d7b16b2f02b453c1871a3a71f8b2a016964dfb4d"


def test_digits_ship_inside_the_package_and_load_bit_identical_to_before():
    path = digits_file()
    assert path.name == "digits.csv.gz" and path.parent.name == "data"
    assert path.parent.joinpath("DIGITS_LICENSE.txt").read_text().count("10.24432/C50P49") == 1
    ds = load_dataset("digits")
    h = hashlib.sha256()
    for split in (ds.train, ds.test):
        h.update(split.images.numpy().tobytes())
        h.update(split.labels.numpy().tobytes())
    assert h.hexdigest() == DIGITS_SHA256
    assert ds.train.images.shape == (1437, 1, 8, 8) and ds.test.images.shape == (360, 1, 8, 8)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imgclf", *args], capture_output=True, text=True, timeout=300,
                          env=None if env is None else {**os.environ, **env})


def test_version_and_exit_codes_are_documented_in_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"imgclf {__version__}"
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--quiet" in out and "--verbose" in out
    for code in ("0 ", "1 ", "2 ", "3 ", "130 "):
        assert f"\n  {code}" in out.split("exit codes:")[1]


@pytest.mark.parametrize("argv", [["--no-such-flag"], ["train", "--epochs", "many"], ["-q", "-v", "models"]])
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "usage:" in capsys.readouterr().err


def test_our_errors_exit_3_and_a_stop_130(capsys, tmp_path, monkeypatch):
    assert main(["eval", str(tmp_path / "missing.pt")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.pt" in err and len(err.strip().splitlines()) == 1

    def stopped(_args):
        raise TrainingStopped("stopped by SIGINT at epoch 1, step 3; saved last.pt")

    monkeypatch.setitem(cli.COMMANDS, "models", stopped)
    assert main(["models"]) == 130
    monkeypatch.setitem(cli.COMMANDS, "models", lambda _args: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["models"]) == 130


def test_an_unexpected_exception_is_an_internal_error_with_a_traceback_only_when_verbose(capsys, monkeypatch):
    def bug(_args):
        return {}["no such key"]

    monkeypatch.setitem(cli.COMMANDS, "models", bug)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("internal error: KeyError: 'no such key'\n") and "report it" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2
    assert main(["models", "--verbose"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "in bug" in err and "internal error: KeyError" in err


def test_quiet_prints_only_the_result_line(capsys, tmp_path):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path), "--name", "q", "--no-plots", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and len(out.splitlines()) == 1
    assert out.startswith("test accuracy ") and out.strip().endswith(f"run folder {tmp_path / 'q'}")
    summary = json.loads((tmp_path / "q" / "summary.json").read_text())
    assert f"test accuracy {summary['test_accuracy']:.2%}" in out
    assert main(["eval", str(tmp_path / "q" / "best.pt"), "-q"]) == 0
    assert capsys.readouterr().out.startswith(f"test accuracy {summary['test_accuracy']:.2%} (360 images")


def test_the_level_set_once_holds_for_the_call_and_no_longer(capsys, tmp_path):
    """How much is printed is a level set once (verbosity.py) for a command or an API call, then restored: a quiet
    call prints nothing, and the next call prints as before."""
    import imgclf
    from imgclf import verbosity

    imgclf.train(data="digits", epochs=1, out=str(tmp_path), name="a", plots=False, quiet=True)
    assert capsys.readouterr().out == "" and verbosity.level() == verbosity.NORMAL
    assert main(["-q", "train", "--epochs", "1", "--out", str(tmp_path), "--name", "b", "--no-plots"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 and verbosity.level() == verbosity.NORMAL
    imgclf.train(data="digits", epochs=1, out=str(tmp_path), name="c", plots=False)
    out = capsys.readouterr().out
    assert "training fastcnn-tiny" in out and "epoch   1" in out and "test accuracy" in out


@pytest.mark.slow
def test_warnings_are_hidden_by_quiet_and_placed_by_verbose(tmp_path):
    folder = make_image_folder(tmp_path / "imgs", per_class=6, size=8)
    (folder / "circle" / "broken.png").write_bytes(b"not a png")       # skipped with a warning naming it
    out = str(tmp_path / "g.png")
    # each run decodes the folder afresh (a cached folder holds the good images only, and warns no more)
    plain, quiet, verbose = (run_cli("show", "--data", str(folder), "--n", "4", "--out", out, "--force", *extra,
                                     env={"IMGCLF_CACHE_DIR": str(tmp_path / f"cache{len(extra)}{extra}")})
                             for extra in ([], ["-q"], ["-v"]))
    assert plain.stderr.startswith("warning: skipped ") and "broken.png" in plain.stderr
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.startswith("wrote ")
    assert "broken.png" in verbose.stderr and ".py:" in verbose.stderr and ".py:" not in plain.stderr


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_flag_of_every_command_has_help_that_reads_well():
    for command, p in subcommand_parsers().items():
        for action in p._actions:
            where = f"imgclf {command} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and len(action.help) > 10, where
            assert "None" not in action.help and "default: default" not in action.help, (where, action.help)
        if "--model" in p._option_string_actions:
            model_help = p._option_string_actions["--model"].help
            assert all(name in model_help for name in MODELS), (command, model_help)
    train_help = subcommand_parsers()["train"].format_help()
    assert "default: $IMGCLF_DATA_DIR" in " ".join(train_help.split())


def test_find_lr_takes_only_the_flags_it_uses():
    flags = subcommand_parsers()["find-lr"]._option_string_actions
    for used in ("--data", "--model", "--batch-size", "--optimizer", "--nesterov", "--crop-pad", "--normalize",
                 "--device", "--precision", "--threads", "--seed", "--recipe", "--config", "--steps", "--min-lr",
                 "--max-lr", "--out", "--name"):
        assert used in flags, used
    for unused in ("--epochs", "--lr", "--schedule", "--ema", "--tta", "--plots", "--resume", "--plot"):
        assert unused not in flags, unused


def test_find_lr_writes_its_plot_into_a_new_run_folder(capsys, tmp_path):
    for _ in range(2):
        assert main(["find-lr", "--steps", "6", "--out", str(tmp_path), "--name", "lr", "--batch-size", "32"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr", "lr-2"]     # never overwritten
    for run_dir in ("lr", "lr-2"):
        assert (tmp_path / run_dir / "lr_find.png").stat().st_size > 5_000
        assert f"plot: {tmp_path / run_dir / 'lr_find.png'}" in out


@pytest.mark.parametrize("flags, message", [
    (["--steps", "0"], "--steps must be at least 5 (a range to find the steepest descent in), got 0"),
    (["--min-lr", "0"], "--min-lr must be positive"),
    (["--min-lr=-1e-3"], "--min-lr must be positive"),
    (["--min-lr", "0.1", "--max-lr", "0.1"], "--max-lr must be finite and above --min-lr 0.1"),
    (["--min-lr", "1", "--max-lr", "0.01"], "--max-lr must be finite and above --min-lr 1"),
])
def test_find_lr_range_errors_are_one_line(capsys, tmp_path, flags, message):
    assert main(["find-lr", *flags, "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []                                    # no run folder for a bad range


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> str:
    """A checkpoint of a 1-epoch digits run (accuracy does not matter here, only that predictions agree)."""
    out = tmp_path_factory.mktemp("digits-model")
    return imgclf.train(data="digits", epochs=1, out=str(out), plots=False, quiet=True)["checkpoint"]


def test_predict_writes_csv_as_well_as_json(capsys, digits_model, tmp_path):
    digits = load_dataset("digits")
    files = []
    for i in range(3):
        files.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(digits.test.images[i, 0].numpy()).save(files[-1])
    table = tmp_path / "predictions.csv"
    assert main(["predict", digits_model, *files, "--topk", "3", "--json", "--csv", str(table)]) == 0
    from_json = json.loads(capsys.readouterr().out)
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "class", "probability", "topk"] and len(rows) == 3
    for row, r in zip(rows, from_json):
        assert row["file"] == r["file"] and row["class"] == r["class"] and float(row["probability"]) == r["probability"]
        assert row["topk"] == ";".join(f"{t['class']}:{t['probability']}" for t in r["topk"])
        assert len(row["topk"].split(";")) == 3
    assert main(["predict", digits_model, files[0], "--csv", str(tmp_path / "one.csv")]) == 0
    assert capsys.readouterr().out.endswith(f"wrote {tmp_path / 'one.csv'} (1 prediction)\n")


def test_api_predict_takes_images_in_memory_and_converts_them_like_files(digits_model, tmp_path):
    clf = imgclf.load(digits_model)
    assert repr(clf) == "Classifier(model='fastcnn-tiny', classes=['0', '1', '2', '3', '4', … (10 classes)], " \
                        "input=1×8×8, device=cpu)"
    image = load_dataset("digits").test.images[5]                       # 1×8×8 uint8
    gray = image[0].numpy()
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full_like(gray, 200)[:, :, None]], axis=2)
    big = np.asarray(Image.fromarray(rgb).resize((20, 20)))
    for name, array in [("gray", gray), ("rgb", rgb), ("rgba", rgba), ("big", big)]:
        Image.fromarray(array).save(tmp_path / f"{name}.png")
    file_prob = {name: clf.predict(tmp_path / f"{name}.png")[0]["probability"] for name in ("gray", "rgba", "big")}
    assert len(set(file_prob.values())) == 3                            # the three files are three inputs
    same_as_gray_png = [image, image[None], gray, gray[:, :, None], image.numpy(), image.float() / 255,
                        torch.from_numpy(gray).float() / 255, Image.fromarray(gray), rgb, Image.fromarray(rgb),
                        torch.from_numpy(rgb).permute(2, 0, 1)]
    for x in same_as_gray_png:
        assert clf.predict(x)[0]["probability"] == file_prob["gray"], type(x)
    assert clf.predict(rgba)[0]["probability"] == file_prob["rgba"]     # alpha over white, as for files
    assert clf.predict(big)[0]["probability"] == file_prob["big"]       # resized by the one resizer
    assert clf.predict(Image.fromarray(big))[0]["probability"] == file_prob["big"]
    mixed = clf.predict([tmp_path / "gray.png", gray, tmp_path])          # a folder is walked
    assert [r.get("file") for r in mixed] == [str(tmp_path / "gray.png"), None,
                                              *(str(tmp_path / f"{n}.png") for n in ("big", "gray", "rgb", "rgba"))]


@pytest.mark.parametrize("bad, message", [
    (torch.full((1, 8, 8), 2.0), "float images in [0, 1]"),
    (np.full((8, 8), 300), "uint8 images (0–255)"),
    (np.zeros((5, 8, 8), dtype=np.uint8), "1, 3 or 4 channels"),
    ([], "no images"),
    (42, "got int"),
])
def test_api_predict_explains_what_it_cannot_take(digits_model, bad, message):
    with pytest.raises(DataError, match=re.escape(message)):
        imgclf.load(digits_model).predict(bad)


def read_events(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_runs_figures(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    assert main(["train", "--epochs", "2", "--out", str(tmp_path), "--name", "tb", "--tensorboard", "-q"]) == 0
    run_dir = tmp_path / "tb"
    acc = read_events(run_dir / "tensorboard")
    with (run_dir / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for column, tag in SCALARS.items():
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2], tag
        assert [e.value for e in events] == [np.float32(row[column]) for row in rows], tag   # stored as float32
    summary = json.loads((run_dir / "summary.json").read_text())
    assert acc.Scalars("hparams/test_accuracy")[0].value == np.float32(summary["test_accuracy"])
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["model"].string_value == summary["model"] == "fastcnn-tiny" and hparams["epochs"].number_value == 2
    assert sorted(acc.Tags()["images"]) == ["test/confusion_matrix", "test/predictions"]
    assert acc.Images("test/confusion_matrix")[0].width == Image.open(run_dir / "plots" / "confusion.png").width
    per_step = read_events(run_dir / "tensorboard" / "steps")      # the steps steps.csv records, against the step
    with (run_dir / "steps.csv").open(newline="") as f:
        steps = list(csv.DictReader(f))
    for column in ("loss", "lr"):
        events = per_step.Scalars(f"step/{column}")
        assert [e.step for e in events] == [int(r["step"]) for r in steps] == list(range(1, 41)), column
        assert [e.value for e in events] == pytest.approx([float(r[column]) for r in steps], rel=1e-5), column


def test_tensorboard_without_plots_logs_no_images_and_a_resume_replaces_what_followed_its_checkpoint(tmp_path):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path), "--name", "np", "--tensorboard", "--no-plots",
                 "-q"]) == 0
    acc = read_events(tmp_path / "np" / "tensorboard")
    assert acc.Tags()["images"] == [] and len(acc.Scalars("hparams/test_loss")) == 1
    # a run killed after logging epoch 2 (step 30) but before saving it resumes from epoch 1 (step 20) and logs
    # epoch 2 and step 30 again: each folder is purged from its own x-axis' point on
    first = TensorBoardLogger()
    first.on_train_start({"run_dir": tmp_path / "r", "epoch": 0, "step": 0})
    for step in (10, 20, 30):
        first.on_step(step, {"loss": float(step), "lr": 0.1, "images_per_second": 100.0})
        if step % 20 == 0:
            first.on_epoch_end(step // 20, {"epoch": step // 20, "train_loss": 10.0 + step // 20})
    first.on_epoch_end(2, {"epoch": 2, "train_loss": 12.0})
    first.close()
    again = TensorBoardLogger()
    again.on_train_start({"run_dir": tmp_path / "r", "epoch": 1, "step": 20})
    again.on_step(30, {"loss": 3.0, "lr": 0.1, "images_per_second": 100.0})
    again.on_epoch_end(2, {"epoch": 2, "train_loss": 2.5})
    again.close()
    assert [(e.step, e.value) for e in read_events(tmp_path / "r" / "tensorboard").Scalars("loss/train")] == \
        [(1, 11.0), (2, 2.5)]
    assert [(e.step, e.value) for e in read_events(tmp_path / "r" / "tensorboard" / "steps").Scalars("step/loss")] \
        == [(10, 10.0), (20, 20.0), (30, 3.0)]


def test_tensorboard_not_installed_is_a_one_line_error_naming_the_extra(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)         # as if it could not be imported
    assert main(["train", "--epochs", "1", "--out", str(tmp_path), "--tensorboard"]) == 3
    err = capsys.readouterr().err
    assert "pip install 'imgclf[tensorboard]'" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []                                    # no run folder was made


def test_ctrl_c_while_imgclf_starts_is_one_line_and_exit_130(monkeypatch, capsys):
    """A Ctrl-C during the first seconds (torch importing) printed a 15-40-line traceback."""
    import sys

    import imgclf
    from imgclf.cli import entry

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(imgclf, "import_api", interrupted)
    monkeypatch.setattr(sys, "argv", ["imgclf", "train", "--no-plots"])
    assert entry() == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_outside_a_terminal_progress_is_plain_lines_now_and_then(tmp_path, capsys, monkeypatch):
    """A log file or CI gets a plain progress line at most every PLAIN_EVERY_S (here: every chance), with the step,
    the loss, img/s and when the epoch ends; --quiet gets none."""
    from imgclf.report import console

    monkeypatch.setattr(console, "PLAIN_EVERY_S", 0.0)
    args = ["train", "--data", "digits", "--model", "fastcnn-tiny", "--epochs", "1", "--no-plots", "--out",
            str(tmp_path)]
    assert main(args) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch 1/1  step ")]
    assert lines and "train loss" in lines[0] and "img/s" in lines[0] and "epoch ends in" in lines[0]
    assert main([*args, "--quiet"]) == 0
    assert "step " not in capsys.readouterr().out


def test_small_output_details_read_right():
    """Class names are never cut in a narrow terminal ('sunrise', not 'sunris'); a row-normalized confusion cell
    tells 99.6 from 100 and a few errors from none; the header names the settings profile."""
    from rich.console import Console

    from imgclf.report.console import metrics_table
    from imgclf.report.plots import share_text

    classes = ["cloudy", "rain", "shine", "sunrise"]
    m = {"confusion_matrix": [[5, 0, 0, 0], [0, 5, 0, 0], [0, 0, 5, 0], [0, 0, 1, 4]],
         "per_class_accuracy": {c: 1.0 for c in classes}, "precision": {c: 1.0 for c in classes},
         "recall": {c: 1.0 for c in classes}, "f1": {c: 1.0 for c in classes}}
    narrow = Console(width=52, record=True, file=io.StringIO())
    narrow.print(metrics_table(m, classes, "test"))
    assert "sunrise" in narrow.export_text()
    assert [share_text(v) for v in (0.0, 0.0003, 0.004, 0.996, 1.0)] == ["", "<0.1", "0.4", "99.6", "100.0"]


def test_the_header_names_the_profile(tmp_path, capsys):
    assert main(["train", "--data", "digits", "--model", "fastcnn-tiny", "--epochs", "1", "--no-plots", "--out",
                 str(tmp_path)]) == 0
    assert "(the 8×8 digits profile: the digits dataset; --print-config says where each setting comes from)" \
        in capsys.readouterr().out
