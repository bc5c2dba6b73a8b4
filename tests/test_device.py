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


@pytest.mark.parametrize("native", [True, False])
def test_a_model_is_tested_in_its_runs_precision_where_native_else_fp32(monkeypatch, native):
    """The run's --precision, where this CPU computes it natively; never an emulated half precision."""
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    bf16 = torch.bfloat16 if native else None
    assert [dev.inference_dtype(s, cpu) for s in ("auto", "amp-bf16", "amp-fp16", "fp32")] == [bf16, bf16, None, None]
    assert dev.inference_dtype("auto", torch.device("mps")) is None


def test_eval_reproduces_the_runs_test_figure_in_its_precision_and_fp32_on_request(tmp_path, capsys):
    """A run tests in its own precision (bf16 where this CPU has it natively, else fp32) and records which;
    `imgclf eval` computes the same way by default, so the figure is the run's to the image, and says so; with
    --precision fp32 it computes as an exported file does, and says that."""
    import json

    from imgclf.cli import main

    s = imgclf.train(data="digits", epochs=2, out=str(tmp_path), plots=False, quiet=True, device="cpu")
    expected = "amp-bf16" if dev.cpu_has_native_bf16() else "fp32"
    assert s["test_computed_in"] == expected
    assert main(["eval", s["checkpoint"], "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["computed_in"] == expected and again["test_accuracy"] == s["test_accuracy"]
    assert main(["eval", s["checkpoint"], "--precision", "fp32"]) == 0
    assert "computed in fp32" in capsys.readouterr().out
    assert imgclf.load(s["checkpoint"], precision="fp32").evaluate()["computed_in"] == "fp32"
