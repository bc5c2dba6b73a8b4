"""--precision auto follows the CPU's capability (detection mocked: the test means the same on every machine)."""

import pytest
import torch

import imgclf
from imgclf.config import TrainConfig
from imgclf.engine import device as dev


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, None)])
def test_auto_precision_on_a_cpu_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: native)
    prec = dev.pick_precision(TrainConfig(), torch.device("cpu"))
    assert prec.autocast_dtype == expected and not prec.scaler.is_enabled()
    assert ("natively" in prec.reason) == native and ("emulated" in prec.reason) == (not native)


def test_explicit_precision_wins_and_warns_where_bf16_is_emulated(monkeypatch):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        prec = dev.pick_precision(TrainConfig(precision="amp-bf16"), torch.device("cpu"))
    assert prec.autocast_dtype == torch.bfloat16 and prec.reason == "set by --precision"
    assert dev.pick_precision(TrainConfig(precision="fp32"), torch.device("cpu")).autocast_dtype is None


def test_a_run_says_which_precision_and_why(monkeypatch, tmp_path):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    s = imgclf.train(data="digits", epochs=1, out=str(tmp_path), plots=False, quiet=True, device="cpu")
    assert s["precision_mode"] == "fp32" and "no native bf16" in s["precision_reason"]


@pytest.mark.parametrize("native, ns_dtype", [(True, torch.bfloat16), (False, None)])
def test_muon_s_newton_schulz_runs_in_bf16_only_where_the_run_does(monkeypatch, native, ns_dtype):
    """Native bf16 (auto picks amp-bf16): Muon's matmuls in bf16 too; emulated: fp32 (orthogonalize's default)."""
    from imgclf.engine.setup import build_run

    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: native)
    run = build_run({"data": "digits", "optimizer": "muon", "device": "cpu", "plots": False})
    assert run.opt.ns_dtype == ns_dtype
    fp32 = build_run({"data": "digits", "optimizer": "muon", "device": "cpu", "precision": "fp32"})
    assert fp32.opt.ns_dtype is None
