"""The 28×28 grayscale profile spends a minute, planned as --budget plans (recipes.GRAY28_LADDER): which rung, the
cap on its epochs, and where the profile's budget gives way (your --epochs, torchrun)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image
from test_budget import fixed_calibration

from imgclf.cli import main
from imgclf.engine import budget
from imgclf.recipes import GRAY28_LADDER


def gray_folder(root: Path, per_class: int = 16) -> Path:
    """A 28×28 grayscale folder (train/ and test/) whose classes are visible: a disc or a square, made grey."""
    from conftest import make_image_folder

    for split, n in (("train", per_class), ("test", 6)):
        make_image_folder(root / split, per_class=n, size=28, seed=len(split))
    for f in root.rglob("*.png"):
        Image.open(f).convert("L").save(f)
    return root


@pytest.mark.parametrize("pace, chosen", [
    ({"fastcnn-tiny": 0.01, "fastcnn-small": 5.0}, "fastcnn-tiny"),   # small's 4 epochs do not fit the minute
    ({"fastcnn-tiny": 0.01, "fastcnn-small": 0.02}, "fastcnn-small")])
def test_the_28x28_default_spends_a_minute_on_its_ladder(tmp_path, monkeypatch, pace, chosen):
    """No flags on 28×28 grayscale: the profile's minute is planned (mocked calibration: no clocks) onto the rung
    whose minimum epochs fit, and a fast machine stops at the rung's most epochs instead of training a tiny folder
    for hundreds."""
    root = gray_folder(tmp_path / "g")
    monkeypatch.setattr(budget, "calibrate", fixed_calibration(pace))
    plan = budget.plan_budget({"data": str(root), "out": str(tmp_path / "r"), "device": "cpu"}, None,
                              time.perf_counter())
    assert plan.layer["model"] == chosen and plan.record["budget_seconds"] == 60
    rung = next(c for c in plan.record["calibration"] if c["chosen"])
    most = next(r["max_epochs"] for r in GRAY28_LADDER if r["model"] == chosen)
    assert plan.layer["steps"] == most * rung["steps_per_epoch"] == plan.max_steps   # 10 ms a step: the cap binds
    assert "the gray28 profile's" in plan.note and "the most this rung trains" in plan.note


def test_the_profiles_minute_gives_way_to_your_epochs_and_to_torchrun(tmp_path, monkeypatch, capsys):
    """--epochs replaces the profile's budget; under torchrun (one plan per process would differ) the profile's
    epochs run instead, and the header says why. --print-config shows both as a run would record them."""
    root = gray_folder(tmp_path / "g")

    def printed(*flags: str) -> dict:
        assert main(["train", "--data", str(root), "--print-config", *flags]) == 0
        out = capsys.readouterr().out
        return {**yaml.safe_load(out), "#": out}

    mine = printed("--epochs", "2")
    assert (mine["budget"], mine["epochs"], mine["steps"]) == (None, 2, 0)
    monkeypatch.setenv("WORLD_SIZE", "1")
    planned = printed()
    assert planned["budget"] == "1m" and planned["steps"] > 0 and planned["model"] in {r["model"] for r in
                                                                                      GRAY28_LADDER}
    monkeypatch.setenv("WORLD_SIZE", "2")
    under_torchrun = printed()
    assert (under_torchrun["budget"], under_torchrun["epochs"], under_torchrun["steps"]) == (None, 3, 0)
    plan = budget.plan_budget({"data": str(root)}, None, time.perf_counter())
    assert plan.record is None and "torchrun" in plan.note


@pytest.mark.slow
def test_a_28x28_folder_trains_its_minute_capped_and_records_the_plan(tmp_path):
    """A real default run on a small 28×28 grayscale folder: the budget is planned on this machine, the run ends at
    the rung's most epochs (a small folder does not need the minute), and config.yaml and summary.json record it."""
    root = gray_folder(tmp_path / "g")
    out = tmp_path / "runs"
    assert main(["train", "--data", str(root), "--out", str(out), "--no-plots", "-q"]) == 0
    run_dir = next(out.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    rung = next(r for r in GRAY28_LADDER if r["model"] == summary["model"])
    assert config["budget"] == "1m" and summary["budget"]["seconds"] == 60
    assert summary["epochs_run"] == summary["epochs"] <= rung["max_epochs"]
    assert summary["test_accuracy"] >= 0.8   # disc against square, learnt
