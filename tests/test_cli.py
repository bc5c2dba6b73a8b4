"""The `imgclf` command as a user runs it: each subcommand on small real data, errors as one line."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from imgclf.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "imgclf", *args], capture_output=True, text=True, timeout=300)


def test_datasets_and_models_lists(capsys, tmp_path):
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "embedded" in out and "cifar-10-python.tar.gz" in out
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tutorial-net" in out and "62,006" in out


def test_show_writes_a_grid_of_real_mnist(mnist_dir, tmp_path):
    assert main(["show", "--data", "mnist", "--data-dir", str(mnist_dir), "--n", "12", "--out",
                 str(tmp_path / "g.png")]) == 0
    w, h = Image.open(tmp_path / "g.png").size
    assert w > 300 and h > 200


@pytest.mark.slow
def test_show_on_the_real_cifar_jpeg_folder(cifar_jpeg_subset, tmp_path):
    assert main(["show", "--data", str(cifar_jpeg_subset), "--split", "test", "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 10_000


@pytest.mark.slow
def test_train_eval_predict_end_to_end(tmp_path):
    r = run("train", "--epochs", "2", "--out", str(tmp_path), "--name", "cli", "--no-plots", "--log-every", "5")
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout and "test split" in r.stdout and "val loss" in r.stdout
    assert "[1,     5] loss:" in r.stdout                              # the tutorial's running-loss line
    summary = json.loads((tmp_path / "cli" / "summary.json").read_text())
    r = run("eval", str(tmp_path / "cli" / "best.pt"), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["test_accuracy"] == summary["test_accuracy"] and len(result["confusion_matrix"]) == 10
    r = run("eval", str(tmp_path / "cli" / "best.pt"))
    assert "per class, test split" in r.stdout and "confusion matrix" in r.stdout


@pytest.mark.slow
def test_predict_on_real_mnist_pngs(mnist_dir, tmp_path):
    from imgclf.data import load_dataset

    assert main(["train", "--data", "mnist", "--data-dir", str(mnist_dir), "--model", "tutorial-net", "--epochs",
                 "1", "--out", str(tmp_path), "--name", "m", "--no-plots"]) == 0
    test = load_dataset("mnist", mnist_dir).test
    for i in range(8):
        Image.fromarray(test.images[i, 0].numpy()).save(tmp_path / f"{i}_label{int(test.labels[i])}.png")
    r = run("predict", str(tmp_path / "m" / "best.pt"), *[str(p) for p in sorted(tmp_path.glob("*.png"))],
            "--json", "--topk", "2")
    assert r.returncode == 0, r.stderr
    preds = json.loads(r.stdout)
    right = sum(p["class"] == p["file"].split("label")[1][0] for p in preds)
    assert right >= 7, preds                        # first 8 test digits: 7 2 1 0 4 1 4 9
    # the same images through the model exported to ONNX (run by onnxruntime): the same classes
    assert main(["export", str(tmp_path / "m" / "best.pt"), "--format", "onnx", "--out", str(tmp_path / "m.onnx"),
                 "--dynamic-batch"]) == 0
    r = run("predict", str(tmp_path / "m.onnx"), *[str(p) for p in sorted(tmp_path.glob("*.png"))], "--json")
    assert r.returncode == 0, r.stderr
    assert [p["class"] for p in json.loads(r.stdout)] == [p["class"] for p in preds]


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "no-such-thing"], "neither a dataset name"),
    (["eval", "missing.pt"], "missing.pt: checkpoint file not found"),
    (["train", "--config", "nope.yaml"], "nope.yaml: config file not found"),
])
@pytest.mark.slow
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    r = run(*args)
    assert r.returncode == 3                        # data/config/checkpoint errors (2 is argparse's usage errors)
    assert message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_predict_on_a_non_image(tmp_path):
    r = run("train", "--epochs", "1", "--out", str(tmp_path), "--name", "p", "--no-plots")
    assert r.returncode == 0
    (tmp_path / "notes.png").write_text("I am text")
    r = run("predict", str(tmp_path / "p" / "best.pt"), str(tmp_path / "notes.png"))
    assert r.returncode == 3 and "notes.png" in r.stderr and "Traceback" not in r.stderr
