"""The Python API's run object (TrainedRun), its notebook display, continuing a run, and errors in keyword terms."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import imgclf
from imgclf.checkpoint import load_checkpoint
from imgclf.errors import ConfigError, DataError
from imgclf.keywords import as_keywords


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return imgclf.train(data="digits", epochs=1, out=str(out), name="r<b>", quiet=True)


def test_a_run_is_its_summary_and_holds_the_run(run):
    assert isinstance(run, dict) and run["test_accuracy"] == run.summary["test_accuracy"]
    assert json.loads((run.run_dir / "summary.json").read_text()) == json.loads(json.dumps(run))
    assert imgclf.TrainedRun.open(run.run_dir) == run
    clf = run.classifier()
    assert clf is run.load() and clf.source == run["checkpoint"]
    assert run.evaluate()["test_accuracy"] == run["test_accuracy"]   # the tested checkpoint, its own test split
    images = imgclf.data.load_dataset("digits").test.images[:3]
    assert run.predict(images) == clf.predict(images)


def test_report_and_export(run):
    (run.run_dir / "report.html").unlink()
    page = run.report()
    assert page == run.run_dir / "report.html" and "test accuracy" in page.read_text()
    out = run.export("torchscript")
    assert out.is_file() and out.name.endswith(".pt")
    again = imgclf.load(out, trust_exported=True).predict(imgclf.data.load_dataset("digits").test.images[:4])
    assert [r["class"] for r in again] == [r["class"] for r in run.predict(
        imgclf.data.load_dataset("digits").test.images[:4])]


def test_notebook_card_names_the_split_and_escapes(run):
    page = run._repr_html_()
    assert "test split, 360 images" in page and "digits" in page and "fastcnn-tiny" in page
    assert "r&lt;b&gt;" in page and "r<b>" not in page       # the run folder's name, escaped
    card = run.classifier()._repr_html_()
    assert "1×8×8" in card and "10: 0, 1, 2" in card and "r&lt;b&gt;" in card


def test_figures_are_matplotlib_figures_that_render_as_png(run):
    from matplotlib.figure import Figure

    shown = run.show_results(n=8)
    matrix = run.confusion()
    batch = imgclf.show_batch("digits", n=6)
    for fig in (shown, matrix, batch):
        assert isinstance(fig, Figure) and fig._repr_png_().startswith(b"\x89PNG")
    texts = [t.get_text() for ax in shown.axes for t in ax.texts]
    assert len(texts) == 8 and all("(true " in t for t in texts)
    assert "test split" in matrix.axes[0].get_title()
    assert "matplotlib.pyplot" not in sys.modules   # drawing picked no backend: a notebook's stays its own


def test_api_errors_name_keyword_arguments(run, tmp_path):
    with pytest.raises(DataError, match=r"^data='nope': neither a dataset name"):
        imgclf.train(data="nope", out=str(tmp_path), quiet=True)
    with pytest.raises(ConfigError, match=r"^steps=5 and epochs=2 both set"):
        imgclf.train(data="digits", steps=5, epochs=2, out=str(tmp_path), quiet=True)
    with pytest.raises(ConfigError, match=r"^n=0: "):
        imgclf.show_batch("digits", n=0)
    with pytest.raises(ConfigError, match=r"schedule='onecycle' sets each step's learning rate.*init_weights=") as e:
        run.continue_training(epochs=3)
    assert "--" not in str(e.value)


def test_the_command_line_keeps_its_flags(tmp_path, capsys):
    from imgclf.cli import main

    assert main(["train", "--data", "nope", "--out", str(tmp_path)]) == 3
    assert "error: --data nope: neither" in capsys.readouterr().err
    with pytest.raises(DataError, match="^data='nope'"):   # and the Python API its keywords, after a command ran
        imgclf.train(data="nope", out=str(tmp_path), quiet=True)


@pytest.mark.parametrize("cli, python", [
    ("--lr 0.5 (run: 0.1) differ; only --device, --threads may", "lr=0.5 (run: 0.1) differ; only device=, threads may"),
    ("pass --allow-changed-data to evaluate anyway", "pass allow_changed_data=True to evaluate anyway"),
    ("--budget 30s is too short; drop --epochs (or drop --budget)",
     "budget='30s' is too short; drop epochs= (or drop budget=)"),
    ("--name 'a/b': use --out to choose", "name='a/b': use out to choose"),
    ("use --device cpu or auto; --no-download", "use device='cpu' or auto; download=False"),
    ("(--steps: total optimizer steps", "(steps: total optimizer steps"),
    ("saved /r/last.pt. Resume with: imgclf train --resume /r/last.pt",
     "saved /r/last.pt. Continue it with imgclf.train(resume='/r/last.pt') or, for a run you hold, "
     "run.continue_training()"),
])
def test_flags_in_keyword_terms(cli, python):
    assert as_keywords(cli).startswith(python)


@pytest.mark.slow
def test_continue_training_equals_a_longer_run_bitwise(tmp_path):
    base = dict(data="digits", model="fastcnn-tiny", schedule="constant", warmup=0.5, ema=0.9, crop_pad=1,
                out=str(tmp_path), plots=False)
    full = imgclf.train(base | {"name": "full", "epochs": 3}, quiet=True)
    short = imgclf.train(base | {"name": "short", "epochs": 2}, quiet=True)
    with pytest.raises(ConfigError, match=r"epochs=1 \(run: 2\).*cannot be shortened"):
        short.continue_training(epochs=1, quiet=True)
    longer = short.continue_training(epochs=3, quiet=True)
    assert isinstance(longer, imgclf.TrainedRun) and longer.run_dir == short.run_dir and longer["resumed"]
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "short" / "last.pt")
    assert a["global_step"] == b["global_step"] and b["epoch"] == 3
    for part in ("model", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    timing = ("seconds", "images_per_second")
    assert [{k: v for k, v in r.items() if k not in timing} for r in a["history"]] == \
        [{k: v for k, v in r.items() if k not in timing} for r in b["history"]]
    assert longer["test_accuracy"] == full["test_accuracy"] and longer["epochs"] == 3
