"""The plot painter (report/painter.py): the pictures it draws in its own process are the pictures drawn here; a
painter that dies or is missing costs nothing but time; a write failure there is the same error as here; and the
`imgclf train` command uses it."""

import gc
import os
import sys

import numpy as np
import pytest
from PIL import Image

from imgclf import cli
from imgclf.report import painter, plots
from imgclf.report.painter import Figure


def figures(folder):
    rng = np.random.default_rng(0)
    history = [{"epoch": e, "train_loss": 1 / e, "train_accuracy": 0.5 + e / 10, "val_loss": 1.2 / e,
                "val_accuracy": 0.4 + e / 10, "lr": 0.1} for e in (1, 2, 3)]
    return [
        Figure("curves", folder / "curves.png", dict(history=history, steps=[], best_epoch=2)),
        Figure("confusion", folder / "confusion.png", dict(cm=[[5, 1], [2, 7]], classes=["cat", "dog"],
                                                           normalize=True)),
        Figure("grid", folder / "grid.png", dict(images=rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8),
                                                 titles=[f"image {i}" for i in range(6)], suptitle="six images")),
    ]


def pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture
def no_drawing_here(monkeypatch):
    """Fail if this process draws: what is drawn must come from the painter."""
    def refuse(figure):
        raise AssertionError(f"{figure.path.name} was drawn in the test process, not in the painter")
    monkeypatch.setattr(plots, "draw", refuse)


def test_the_painter_draws_the_pictures_this_process_would(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    (tmp_path / "painter").mkdir()
    expected = [plots.draw(f) for f in figures(tmp_path / "here")]
    monkeypatch.setattr(plots, "draw", lambda f: pytest.fail(f"{f.path.name} drawn here"))
    painter.start()
    drawn = painter.draw_all(figures(tmp_path / "painter"))
    assert [p.name for p in drawn] == [p.name for p in expected]
    for a, b in zip(expected, drawn):
        assert np.array_equal(pixels(a), pixels(b)), a.name
    assert sorted(p.name for p in (tmp_path / "painter").iterdir()) == ["confusion.png", "curves.png", "grid.png"]


def test_a_painter_that_died_costs_only_time(tmp_path):
    painter.start()
    painter._started.kill()
    painter._started.wait()
    drawn = painter.draw_all(figures(tmp_path))
    assert all(pixels(p).shape[2] == 3 for p in drawn)
    assert painter._started is None          # used once, then gone


def test_a_share_whose_forked_copy_died_is_drawn_by_the_painter_itself(tmp_path):
    parent, drawn = os.getpid(), []

    def draw(figure):
        if os.getpid() != parent:
            os._exit(3)                       # the forked copy dies before drawing anything
        drawn.append(figure.path.name)

    figs = figures(tmp_path)
    assert painter._draw_in_two(figs, draw) is None
    assert sorted(drawn) == sorted(f.path.name for f in figs)


def test_a_write_failure_in_the_painter_is_the_error_drawing_here_raises(tmp_path, no_drawing_here):
    painter.start()
    with pytest.raises(FileNotFoundError, match="missing"):   # its class too, as drawing here raises it
        painter.draw_all(figures(tmp_path / "missing"))     # the folder does not exist


@pytest.mark.slow
def test_the_train_command_draws_its_plots_in_the_painter(tmp_path, monkeypatch, no_drawing_here):
    started = []
    real_start = painter.start
    monkeypatch.setattr(painter, "start", lambda: (started.append(True), real_start()))
    monkeypatch.setattr(sys, "argv", ["imgclf", "train", "--epochs", "1", "--out", str(tmp_path), "--name", "r",
                                      "--quiet"])
    try:
        assert cli.entry() == 0
    finally:
        gc.unfreeze()
    assert started == [True]
    names = sorted(p.name for p in (tmp_path / "r" / "plots").iterdir())
    assert names == ["confusion.png", "confusion_normalized.png", "curves.png", "predictions.png",
                     "top_losses.png", "train_batch.png"]     # 1 epoch of digits leaves wrong test images
    assert (tmp_path / "r" / "report.html").stat().st_size > 0


def test_no_painter_without_plots(tmp_path, monkeypatch):
    monkeypatch.setattr(painter, "start", lambda: pytest.fail("a painter started for a run without plots"))
    monkeypatch.setattr(sys, "argv", ["imgclf", "train", "--epochs", "1", "--out", str(tmp_path), "--name", "r",
                                      "--quiet", "--no-plots"])
    try:
        assert cli.entry() == 0
    finally:
        gc.unfreeze()
    assert not (tmp_path / "r" / "plots").exists()


def test_a_class_folder_named_in_bytes_that_are_not_utf8_gets_its_plots_and_report(tmp_path):
    from conftest import make_image_folder

    import imgclf

    root = make_image_folder(tmp_path / "imgs", per_class=12)
    odd = os.fsencode(root) + b"/sq\xff\xfeare"
    try:
        os.rename(root / "square", odd)
    except OSError:
        pytest.skip("this file system refuses a name that is not UTF-8")
    s = imgclf.train(data=str(root), epochs=1, out=str(tmp_path / "r"), device="cpu", quiet=True)
    run = tmp_path / "r" / os.path.basename(s["run_dir"])
    assert len(list((run / "plots").glob("*.png"))) >= 5          # drawn: the name shows as sq\xff\xfeare
    assert "sq\\xff\\xfeare" in (run / "report.html").read_text(encoding="utf-8")
