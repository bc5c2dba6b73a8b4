"""Runs that go wrong: NaN loss, unwritable output, bad settings — each a clear error, nothing good lost."""

import pytest
import torch

import imgclf
from imgclf.engine.checkpoint import load_checkpoint
from imgclf.engine.train import NonFiniteLoss
from imgclf.errors import ConfigError, ImgclfError


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import imgclf.engine.train as loop

    real = loop.lr_at
    monkeypatch.setattr(loop, "lr_at", lambda step, *a, **k: 1e12 if step >= 10 else real(step, *a, **k))
    base = dict(data="digits", model="mlp", batch_size=64, out=str(tmp_path), plots=False, val_split=0.0)
    with pytest.raises(NonFiniteLoss, match=r"step \d+ .*keeps the last good state.*lower --lr"):
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
