"""Runs that go wrong: NaN loss, unwritable output, bad settings — each a clear error, nothing good lost."""

import pytest
import torch

import imgclf
from imgclf.checkpoint import load_checkpoint
from imgclf.engine.train import NonFiniteLoss
from imgclf.errors import ConfigError, ImgclfError


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    from imgclf.models import MODELS, register_model

    steps = {"n": 0}

    def blowing_up(**kw):   # the tutorial MLP whose outputs turn NaN from its 11th training step on
        model = MODELS["mlp"].builder(**kw)

        def hook(module, _inputs, out):
            if module.training:
                steps["n"] += 1
                return out * float("nan") if steps["n"] > 10 else out
            return out

        model.register_forward_hook(hook)
        return model

    register_model("mlp-blowing-up", blowing_up)
    base = dict(data="digits", model="mlp-blowing-up", batch_size=64, out=str(tmp_path), plots=False, val_split=0.0)
    with pytest.raises(NonFiniteLoss, match=r"step \d+ .*keeps the last good state.*lower lr="):
        imgclf.train(base | {"name": "nan", "epochs": 3, "save_every_steps": 5}, quiet=True)
    ckpt = load_checkpoint(tmp_path / "nan" / "last.pt")
    assert ckpt["global_step"] == 10                       # saved at 5 and 10; the blow-up after step 10 is not saved
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_unwritable_out_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ImgclfError, match="cannot create a run folder"):
        imgclf.train(data="digits", epochs=1, out=str(blocker / "runs"), quiet=True)


@pytest.mark.parametrize("settings, message", [
    ({"epochs": 0}, "'epochs' must be at least 1"),
    ({"optimizer": "rmsprop"}, "not one of sgd, adamw"),
    ({"model": "resnet99"}, "unknown model 'resnet99'"),
    ({"recipe": "fastest"}, "unknown recipe"),
    ({"lr": "fast"}, "bad value 'fast'"),
    ({"batch_size": 100000}, "larger than the"),
])
def test_bad_settings(tmp_path, settings, message):
    with pytest.raises((ConfigError, ImgclfError), match=message):
        imgclf.train(dict(data="digits", out=str(tmp_path)) | settings, quiet=True)


@pytest.mark.parametrize("settings, message", [
    ({"image_size": 0}, "'image_size' must be unset or in"), ({"image_size": 100000}, "'image_size' must be"),
    ({"image_size": -4}, "'image_size' must be"), ({"threads": -1}, "'threads' must be in"),
    ({"seed": 2**70}, "'seed' must be in"), ({"lr": float("inf")}, "'lr' must be positive, at most 10000"),
])
def test_out_of_range_settings_are_clear_errors_before_any_work(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        imgclf.train(dict(data="digits", out=str(tmp_path)) | settings, quiet=True)
    assert list(tmp_path.iterdir()) == []                                 # no run folder was made


def test_a_yaml_billion_laughs_is_refused_quickly(tmp_path):
    lol = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    (tmp_path / "lol.yaml").write_text(lol + "epochs: *i\n")
    from imgclf.config import read_config_file

    with pytest.raises(ConfigError, match="aliases .* are not allowed"):
        read_config_file(tmp_path / "lol.yaml")
    (tmp_path / "long.yaml").write_text("epochs: " + "x" * 100_000 + "\n")
    with pytest.raises(ConfigError) as e:
        read_config_file(tmp_path / "long.yaml")
    assert len(str(e.value)) < 400                                        # the message never prints a huge value
