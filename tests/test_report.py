"""The run report: report.html (self-contained: every image an embedded PNG, nothing fetched), steps.csv (a curve
even for short runs; a resume gives the rows of an uninterrupted run), the top-losses plot, `imgclf report`."""

import base64
import csv
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imgclf
from imgclf.cli import main
from imgclf.report.runfiles import class_metrics, most_confused
from imgclf.report.steps import StepLog, read_steps


def register_crashing_model(name: str, at_step: int) -> None:
    """fastcnn-tiny under `name`, that presses Ctrl-C twice (a hard stop: no save) as training step `at_step`
    (0-based, counted over the process) starts."""
    import signal

    from imgclf.models import MODELS, register_model

    seen = {"steps": 0}

    def builder(**kw):
        model = MODELS["fastcnn-tiny"].builder(**kw)

        def hook(module, _inputs):
            if module.training:
                seen["steps"] += 1
                if seen["steps"] == at_step + 1:   # counted first: the resumed run must not stop again
                    signal.raise_signal(signal.SIGINT)
                    signal.raise_signal(signal.SIGINT)

        model.register_forward_pre_hook(hook)
        return model

    register_model(name, builder)


SECTIONS = ("summary", "checkpoint", "curves", "confusion", "per-class", "most-confused", "predictions", "top-losses",
            "train-batch")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A default tiny run (plots on, as by default): 2 epochs of digits."""
    out = tmp_path_factory.mktemp("runs")
    return Path(imgclf.train(data="digits", epochs=2, out=str(out), quiet=True)["run_dir"])


class Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def embedded_pngs(page: str) -> list[Image.Image]:
    """The page's <img> elements, each checked to be a data: URI holding a PNG, decoded."""
    parser = Tags()
    parser.feed(page)
    images = []
    for tag, attrs in parser.tags:
        if tag == "img":
            prefix = "data:image/png;base64,"
            assert attrs["src"].startswith(prefix), attrs["src"][:60]
            im = Image.open(io.BytesIO(base64.b64decode(attrs["src"][len(prefix):], validate=True)))
            assert im.format == "PNG"
            im.load()
            images.append(im)
    assert not [t for t, _ in parser.tags if t in ("script", "link", "iframe")]
    return images


@pytest.mark.slow
def test_report_html_is_self_contained_with_every_section(run_dir):
    page = (run_dir / "report.html").read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in page, section
    assert "test split" in page and "val split" in page and "balanced accuracy" in page and "macro-F1" in page
    assert "http://" not in page and "https://" not in page
    images = embedded_pngs(page)
    assert len(images) == 6         # curves, 2 confusion matrices, predictions, top losses, a training batch
    for im in images:
        lo_hi = im.convert("RGB").getextrema()
        assert any(lo != hi for lo, hi in lo_hi), "a blank (one-colour) image"
        assert im.size[0] > 300


def test_report_figures_come_from_the_confusion_matrix(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    cm = np.asarray(summary["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == summary["test_split_size"] == 360
    rows, balanced, macro_f1 = class_metrics(summary)
    recall = cm.diagonal() / cm.sum(1)
    assert balanced == pytest.approx(recall.mean())
    assert [r["recall"] for r in rows] == pytest.approx(list(summary["recall"].values()), abs=1e-6)
    assert [r["f1"] for r in rows] == pytest.approx(list(summary["f1"].values()), abs=1e-6)
    assert macro_f1 == pytest.approx(np.mean(list(summary["f1"].values())), abs=1e-6)
    pairs = most_confused(summary)
    counts = [n for _, _, n, _ in pairs]
    assert counts == sorted(counts, reverse=True) and len(pairs) <= 10
    assert counts[0] == max(cm[i, j] for i in range(10) for j in range(10) if i != j)
    page = (run_dir / "report.html").read_text()
    assert f"{balanced:.2%}" in page and f"epoch {summary['best_epoch']}" in page.lower()


def test_steps_csv_logs_every_step_of_a_short_run(run_dir):
    header = (run_dir / "steps.csv").read_text().splitlines()[0]
    assert header == "step,epoch,loss,lr"
    rows = read_steps(run_dir)
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) and steps[0] == 1
    done = torch.load(run_dir / "last.pt", weights_only=True)["global_step"]
    assert steps == list(range(1, done + 1))        # under 200 steps: every step is a row
    assert rows[-1]["epoch"] == 2.0 and all(r["loss"] > 0 for r in rows)
    last_epoch_lr = list(csv.DictReader((run_dir / "metrics.csv").read_text().splitlines()))[-1]["lr"]
    assert rows[-1]["lr"] == pytest.approx(float(last_epoch_lr), rel=1e-4)


def test_step_log_drops_a_torn_line_and_rows_past_the_resumed_step(tmp_path):
    (tmp_path / "steps.csv").write_text("step,epoch,loss,lr\n" + "".join(
        f"{s},{s / 10},{2 - s / 10},0.1\n" for s in range(1, 8)) + "8,0.8,1.")
    log = StepLog(tmp_path, total_steps=1000, steps_per_epoch=10, done=5)
    assert [r["step"] for r in read_steps(tmp_path)] == [1, 2, 3, 4, 5]
    assert log.every == 5 and [s for s in range(1, 21) if log.wants(s)] == [1, 5, 10, 15, 20]
    log.write(10, 1.25, 0.05)
    assert (tmp_path / "steps.csv").read_text().splitlines()[-1] == "10,1,1.25,0.05"


@pytest.mark.slow
def test_a_resumed_run_writes_the_rows_of_an_uninterrupted_one(tmp_path):
    base = dict(data="digits", epochs=2, model="fastcnn-tiny", batch_size=64, val_split=0.0, plots=False,
                save_every_steps=8, out=str(tmp_path))
    imgclf.train(base | {"name": "full"}, quiet=True)
    # Ctrl-C twice in step 31 (22 steps/epoch): stops at once, after the mid-epoch save at step 24
    register_crashing_model("tiny-report-crash", 30)
    with pytest.raises(KeyboardInterrupt):
        imgclf.train(base | {"name": "crashed", "model": "tiny-report-crash"}, quiet=True)
    crashed = tmp_path / "crashed"
    assert torch.load(crashed / "last.pt", weights_only=True)["global_step"] == 24
    assert read_steps(crashed)[-1]["step"] == 30                    # rows past the checkpoint, to be dropped
    imgclf.train(resume=crashed / "last.pt", quiet=True)
    full, resumed = read_steps(tmp_path / "full"), read_steps(crashed)
    assert [r["step"] for r in full] == list(range(1, 45))
    assert resumed == full                                         # parsed values: float formatting aside


def test_top_losses_are_sorted_by_loss_and_show_both_probabilities(tmp_path):
    from imgclf.data.split import Split
    from imgclf.report.figures import run_figures

    classes = ["a", "b", "c"]
    labels = torch.tensor([0, 0, 1, 2, 1])
    # wrong: image 1 (p(true) 0.30, p(pred) 0.45), 3 (p(true) 0.05, p(pred) 0.50: most wrong), 4 (p(true) 0.10,
    # p(pred) 0.85: the most confident, but not the highest loss)
    probs = torch.tensor([[.9, .05, .05], [.30, .45, .25], [.1, .8, .1], [.45, .50, .05], [.05, .10, .85]])
    split = Split(torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 1, 4, 4).contiguous(), labels, "test")
    test = {"confusion_matrix": [[1, 1, 0], [0, 1, 1], [0, 1, 0]]}
    grids = {f.path.name: f.args for f in run_figures(tmp_path, [], test, probs.log(), split, classes)}
    top = grids["top_losses.png"]
    assert top["suptitle"].startswith("top losses: wrong test images with the highest loss")
    assert top["titles"] == ["pred b 50%\ntrue c 5%", "pred c 85%\ntrue b 10%", "pred b 45%\ntrue a 30%"]
    assert top["images"][:, 0, 0, 0].tolist() == [3, 4, 1]      # the images themselves, in the same order
    assert sorted(grids) == ["confusion.png", "confusion_normalized.png", "predictions.png", "top_losses.png"]


def test_imgclf_report_rebuilds_and_compares_runs(run_dir, tmp_path, capsys):
    other = Path(imgclf.train(data="digits", epochs=1, lr=0.03, out=str(tmp_path), name="slower", quiet=True,
                              plots=False)["run_dir"])
    (run_dir / "report.html").unlink()
    out = tmp_path / "cmp.html"
    # --out naming a run's own report would replace it with the comparison: refused, even with --force, before any work
    assert main(["report", str(run_dir), str(other), "--out", str(other / "report.html"), "--force"]) == 3
    assert "is the run report of" in capsys.readouterr().err and not (run_dir / "report.html").exists()
    assert main(["report", str(run_dir), str(other), "--out", str(out)]) == 0
    assert (run_dir / "report.html").is_file() and (other / "report.html").is_file()
    assert str(out) in capsys.readouterr().out
    page = out.read_text()
    parser = Tags()
    parser.feed(page)
    assert "Settings that differ" in page and ">lr<" in page and ">0.03<" in page and ">epochs<" in page
    assert ">seed<" not in page                                      # the same in both: not listed
    for metric in ("balanced accuracy", "macro-F1", "training time", "images/s"):
        assert metric in page, metric
    assert len(embedded_pngs(page)) == 1 and "https://" not in page
    no_plots = (other / "report.html").read_text()
    assert "no plots/curves.png" in no_plots and 'id="per-class"' in no_plots
    assert main(["report", str(tmp_path)]) == 3                   # not a run folder: one-line error, code 3
    assert "no summary.json" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    (("summary.json", "[1, 2]"), "summary.json: holds a JSON list, not the object imgclf writes"),
    (("summary.json", '{"test_accuracy": "high", "classes": ["a"], "confusion_matrix": "x"}'),
     "its files do not make a report .*damaged or was not written by imgclf"),
    (("metrics.csv", "\udcff"), "metrics.csv: cannot read it"),
])
def test_a_damaged_run_folder_is_a_one_line_report_error(run_dir, tmp_path, capsys, damage, message):
    run = shutil.copytree(run_dir, tmp_path / "run")
    name, text = damage
    (run / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    assert main(["report", str(run)]) == 3
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1, err


def test_metrics_csv_cells_beyond_its_header_are_ignored(run_dir, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    with (run / "metrics.csv").open("a") as f:
        f.write("3,0.5,0.5,0.1,9,9,9,9,9,9,9,9,9\n")                   # more cells than columns
    assert main(["report", str(run)]) == 0 and (run / "report.html").is_file()


CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium) to render the "
                    "report in a browser; the other tests parse its HTML")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    shot = tmp_path / "report.png"
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,4000",
                        (run_dir / "report.html").resolve().as_uri()], capture_output=True, text=True, timeout=180)
    assert shot.is_file(), r.stderr[-2000:]
    im = Image.open(shot)
    assert im.format == "PNG" and im.size == (1280, 4000)
    gray = np.asarray(im.convert("L"), dtype=np.float64)
    assert (gray[:100] < 80).mean() > 0.8                           # the dark header band is drawn
    assert (gray < 200).mean() > 0.08                               # text, cards and figures, not a blank page
    dark_rows = (gray < 200).mean(1) > 0.1
    assert dark_rows[1000:].sum() > 300                              # figures further down the page, not only text


def test_the_report_names_the_views_a_run_tested_with():
    from imgclf.report.html import mirrored, settings_rows

    digits = {"tta": True, "tta_shift": 1, "flip": "none", "tta_mirror": None, "lr": 0.1, "optimizer": "sgd"}
    assert dict(settings_rows(digits, mirrored({"tta_mirror": False}, digits)))["test-time augmentation"] == \
        "3 views (image, shifted ±1 px)"
    assert dict(settings_rows(digits, mirrored({"tta_mirror": True}, digits)))["test-time augmentation"] == \
        "6 views (image and mirror, shifted ±1 px)"
    photos = digits | {"tta_mirror": True}                            # no summary.json (a killed run): the config
    assert mirrored({}, photos) and not mirrored({}, digits)
