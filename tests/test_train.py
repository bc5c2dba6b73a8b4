"""The whole workflow on small real data: train → run folder → eval reproduces → predict → resume."""

import csv
import json

import numpy as np
import pytest
import torch
from conftest import make_image_folder
from PIL import Image

import imgclf
from imgclf.checkpoint import load_checkpoint

FAST = dict(data="digits", epochs=3, model="fastcnn-tiny", batch_size=64, plots=False, device="cpu")


def register_interrupting_model(name, *at_steps):
    """fastcnn-tiny, registered under `name`, that sends this process a real SIGINT (Ctrl-C) at the start of each
    training step in `at_steps` (0-based, counted over the process), once: what a user's Ctrl-C does mid-run."""
    import signal

    from imgclf.models import MODELS, register_model

    calls = {"n": 0}

    def builder(**kw):
        model = MODELS["fastcnn-tiny"].builder(**kw)

        def hook(module, _inputs):
            if module.training:
                for _ in range(list(at_steps).count(calls["n"])):
                    signal.raise_signal(signal.SIGINT)
                calls["n"] += 1

        model.register_forward_pre_hook(hook)
        return model

    register_model(name, builder)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return imgclf.train(FAST | {"plots": True, "ema": 0.9}, out=str(out), quiet=True)


@pytest.mark.slow
def test_run_folder_is_complete(digits_run):
    from pathlib import Path

    run = Path(digits_run["run_dir"])
    for name in ("config.yaml", "metrics.csv", "summary.json", "last.pt", "best.pt"):
        assert (run / name).is_file(), name
    for plot in ("curves", "confusion", "confusion_normalized", "predictions", "top_losses"):
        png = run / "plots" / f"{plot}.png"
        assert png.is_file() and Image.open(png).size[0] > 200, plot
    summary = json.loads((run / "summary.json").read_text())
    for key in ("dataset", "model", "epochs", "classes", "test_accuracy", "test_loss", "per_class_accuracy",
                "train_seconds", "total_seconds", "images_per_second", "device", "checkpoint"):
        assert key in summary, key
    assert summary["dataset"] == "digits" and summary["checkpoint_selected_on"] == "val"
    assert 0.6 < summary["test_accuracy"] <= 1.0          # 3 epochs on digits learn a lot; chance is 0.1
    assert set(summary["per_class_accuracy"]) == {str(d) for d in range(10)}
    rows = list(csv.DictReader((run / "metrics.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and "val_accuracy" in rows[0]


def test_checkpoint_is_a_plain_dict_loadable_weights_only(digits_run):
    ckpt = torch.load(digits_run["checkpoint"], weights_only=True)
    for key in ("model", "optimizer", "epoch", "global_step", "config", "classes", "normalization",
                "format_version", "best_metric"):
        assert key in ckpt, key
    assert ckpt["classes"] == [str(d) for d in range(10)] and len(ckpt["normalization"]["mean"]) == 1


def test_eval_reproduces_the_summary_exactly(digits_run):
    result = imgclf.evaluate(digits_run["checkpoint"])
    assert result["test_accuracy"] == digits_run["test_accuracy"]
    assert result["test_loss"] == pytest.approx(digits_run["test_loss"], abs=1e-5)
    assert np.asarray(result["confusion_matrix"]).sum() == 360


def test_checkpoint_records_the_activation_and_an_older_format_is_refused(digits_run, tmp_path):
    from imgclf.errors import CheckpointError

    ckpt = torch.load(digits_run["checkpoint"], weights_only=True)
    assert ckpt["model_args"]["act"] == "relu"          # fastcnn-tiny is ReLU (cheaper on CPU)
    clf = imgclf.load(digits_run["checkpoint"])
    assert isinstance(clf.model.act, torch.nn.ReLU)
    # a checkpoint of the format before (its fastcnn models GELU when it recorded no activation) is not guessed at
    older = {**ckpt, "format_version": 1, "model_args": {k: v for k, v in ckpt["model_args"].items() if k != "act"}}
    torch.save(older, tmp_path / "older.pt")
    for use in (imgclf.load, lambda p: imgclf.train(resume=p, quiet=True)):
        with pytest.raises(CheckpointError, match=f"{tmp_path / 'older.pt'}: checkpoint format 1, .*train it again"):
            use(tmp_path / "older.pt")


def test_predict_files_and_tensors(digits_run, tmp_path):
    ds = imgclf.data.load_dataset("digits")
    for i in range(6):
        Image.fromarray(ds.test.images[i, 0].numpy()).save(tmp_path / f"d{i}.png")
    clf = imgclf.load(digits_run["checkpoint"])
    from_files = clf.predict(tmp_path, topk=3)
    from_tensor = clf.predict(ds.test.images[:6])
    assert [r["class"] for r in from_files] == [r["class"] for r in from_tensor]
    assert len(from_files[0]["topk"]) == 3 and from_files[0]["file"].endswith("d0.png")
    assert sum(r["class"] == str(int(y)) for r, y in zip(from_tensor, ds.test.labels[:6])) >= 4


# 22 steps/epoch: the end of epoch 1, and mid-epoch 2; Muon (momentum buffers of its own kind of group) mid-epoch
@pytest.mark.parametrize("stop_step, optimizer", [(22, "sgd"), (33, "sgd"), (33, "muon")])
@pytest.mark.slow
def test_interrupt_and_resume_matches_an_uninterrupted_run(tmp_path, stop_step, optimizer):
    from imgclf.engine.train import TrainingStopped

    base = FAST | {"val_split": 0.0, "batch_size": 64, "out": str(tmp_path), "ema": 0.9, "crop_pad": 1,
                   "optimizer": optimizer}
    full = imgclf.train(base | {"name": "full"}, quiet=True)
    register_interrupting_model(f"tiny-ctrl-c-{stop_step}-{optimizer}", stop_step - 1)
    with pytest.raises(TrainingStopped, match=r"Continue it with imgclf.train\(resume=.*last.pt.\)"):
        imgclf.train(base | {"name": "stopped", "model": f"tiny-ctrl-c-{stop_step}-{optimizer}"}, quiet=True)
    saved = load_checkpoint(tmp_path / "stopped" / "last.pt")
    assert saved["global_step"] == stop_step
    mid_epoch = stop_step % 22 != 0
    assert (saved["epoch_seconds"] > 0) == mid_epoch    # the stopped epoch's time so far travels with its sums
    resumed = imgclf.train(resume=tmp_path / "stopped" / "last.pt", quiet=True)
    assert resumed["resumed"] is True and full["resumed"] is False
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "stopped" / "last.pt")
    assert a["global_step"] == b["global_step"] == 3 * 22
    for part in ("model", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert resumed["test_accuracy"] == full["test_accuracy"]
    stopped_row = b["history"][stop_step // 22]          # the epoch the stop cut: its time counts both commands
    assert not mid_epoch or stopped_row["seconds"] > saved["epoch_seconds"]
    rows = [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in b["history"]]
    assert rows == [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in a["history"]]


def test_a_digits_run_with_muon_learns(tmp_path):
    """--optimizer muon at the digits profile's --lr: 3 epochs well above chance (SGD: ~0.92; Muon ~0.96)."""
    s = imgclf.train(FAST | {"optimizer": "muon", "out": str(tmp_path)}, quiet=True)
    assert s["test_accuracy"] >= 0.85


def test_a_second_interrupt_stops_at_once_and_keeps_the_last_save(tmp_path):
    import signal

    register_interrupting_model("tiny-ctrl-c-twice", 29, 29)  # mid-epoch 2 (22 steps/epoch): Ctrl-C, Ctrl-C again
    with pytest.raises(KeyboardInterrupt):
        imgclf.train(FAST | {"val_split": 0.0, "batch_size": 64, "out": str(tmp_path), "name": "s",
                             "model": "tiny-ctrl-c-twice"}, quiet=True)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # handlers given back
    saved = load_checkpoint(tmp_path / "s" / "last.pt")                         # epoch 1's save, intact
    assert saved["global_step"] == 22 and saved["epoch"] == 1
    assert sorted(p.name for p in (tmp_path / "s").iterdir() if "tmp" in p.name) == []


def test_image_folder_learns(tmp_path):
    root = make_image_folder(tmp_path / "shapes", per_class=40, size=16)
    s = imgclf.train(data=str(root), epochs=6, batch_size=16, lr=0.05, model="fastcnn-tiny", out=str(tmp_path / "r"),
                     quiet=True, plots=False, val_split=0.0)
    assert s["classes"] == ["circle", "square"] and 8 <= s["test_split_size"] <= 24      # ~20% of 80
    assert s["test_accuracy"] >= 0.8


def test_config_file_and_overrides(tmp_path):
    from imgclf.config import read_config_file

    (tmp_path / "c.yaml").write_text("epochs: 2\nbatch-size: 32\nmodel: mlp\n")
    (tmp_path / "c.toml").write_text('epochs = 1\nlr = 0.01\nflip = "random"\n')
    assert read_config_file(tmp_path / "c.yaml") == {"epochs": 2, "batch_size": 32, "model": "mlp"}
    assert read_config_file(tmp_path / "c.toml")["flip"] == "random"
    s = imgclf.train(read_config_file(tmp_path / "c.yaml") | {"epochs": 1}, out=str(tmp_path), quiet=True, plots=False)
    assert s["epochs"] == 1 and s["model"] == "mlp"
    (tmp_path / "bad.yaml").write_text("epoch: 2\n")
    with pytest.raises(imgclf.errors.ConfigError, match="unknown setting 'epoch'.*epochs"):
        read_config_file(tmp_path / "bad.yaml")


def test_tutorial_state_dict_loads_directly(tmp_path):
    """A state_dict saved by the CIFAR-10 tutorial's own class loads into --model tutorial-net."""
    from tutorial_reference import Net  # the tutorial's class, as the tutorial writes it

    net = Net()
    torch.save(net.state_dict(), tmp_path / "cifar_net.pth")
    with pytest.warns(UserWarning, match=r"a bare state_dict, which records none of this: assuming 32×32 input "
                                         r"\(--image-size N .*\); pixels normalized as \(x-0.5\)/0.5"):
        clf = imgclf.load(tmp_path / "cifar_net.pth", model="tutorial-net", classes=[f"c{i}" for i in range(10)])
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        logits = net((x.float() / 255 - 0.5) / 0.5)
        # same function, not just same answers (our forward pools before the relu: exactly equal maths)
        torch.testing.assert_close(clf.model((x.float() / 255 - 0.5) / 0.5), logits)
    assert [r["class"] for r in clf.predict(x)] == [f"c{int(i)}" for i in logits.argmax(1)]
    with pytest.raises(imgclf.errors.CheckpointError, match="pass model= "):
        imgclf.load(tmp_path / "cifar_net.pth")
    with pytest.raises(imgclf.errors.CheckpointError, match="do not fit model 'mlp'"):
        imgclf.load(tmp_path / "cifar_net.pth", model="mlp")


@pytest.mark.slow
def test_recipes_run_and_learn(tmp_path):
    """Every named recipe runs end to end on a small image folder (few epochs) and beats chance."""
    from imgclf.recipes import RECIPES

    root = make_image_folder(tmp_path / "shapes", per_class=24, size=32)
    for name in RECIPES:
        faster = {"lr": 0.01} if name == "tutorial" else {}  # its lr 0.001 needs far more than 3 tiny epochs
        s = imgclf.train(data=str(root), recipe=name, epochs=min(3, RECIPES[name].get("epochs", 3)), batch_size=8,
                         out=str(tmp_path / "r"), quiet=True, plots=False, log_every=0, **faster)
        history = load_checkpoint(f"{s['run_dir']}/last.pt")["history"]
        assert s["recipe"] == name and history[-1]["train_loss"] < history[0]["train_loss"], name
        size = RECIPES[name].get("image_size") or 32  # a recipe that names a resolution trains and tests at it
        assert load_checkpoint(f"{s['run_dir']}/last.pt")["model_args"]["image_size"] == [size, size], name
        if not name.startswith("tutorial"):  # the tutorial net needs far more than a few dozen steps to separate
            assert s["test_accuracy"] > 0.5, name


@pytest.mark.slow
def test_a_trainconfig_object_keeps_the_recipe_and_profile_values(tmp_path):
    from imgclf.config import TrainConfig
    from imgclf.recipes import RECIPES

    cfg = TrainConfig(data="digits", recipe="fast-1m", epochs=1, out=str(tmp_path), plots=False)
    summary = imgclf.train(cfg, quiet=True)
    used = load_checkpoint(summary["checkpoint"])["config"]
    # the recipe's values, not TrainConfig's defaults (label smoothing 0.1, no TTA ...), except where set: the
    # recipe's time budget gives way to the epochs you name
    assert used["label_smoothing"] == RECIPES["fast-1m"]["label_smoothing"] == 0.2 and used["tta"] is True
    assert used["epochs"] == 1 and used["budget"] is None and used["steps"] == 0


def test_progressive_resizing_trains_small_first_then_full_size(tmp_path):
    from imgclf.models import MODELS, register_model

    seen = []

    def recording(**kw):
        model = MODELS["fastcnn-tiny"].builder(**kw)
        model.register_forward_pre_hook(lambda m, inp: seen.append((m.training, tuple(inp[0].shape[2:]))))
        return model

    register_model("tiny-recording-sizes", recording)
    root = make_image_folder(tmp_path / "shapes", per_class=40, size=16)
    s = imgclf.train(data=str(root), epochs=6, batch_size=16, lr=0.05, model="tiny-recording-sizes", val_split=0.0,
                     progressive_size=8, progressive_epochs=3, out=str(tmp_path / "r"), quiet=True, plots=False)
    train_sizes = [size for training, size in seen if training]
    steps = len(train_sizes) // 6
    assert train_sizes == [(8, 8)] * (3 * steps) + [(16, 16)] * (3 * steps)
    assert {size for training, size in seen if not training} <= {(16, 16), (8, 8)}   # (8, 8): the size probe
    assert s["test_accuracy"] >= 0.8


def test_progressive_resizing_with_a_fixed_size_net_is_a_clear_error(tmp_path):
    from imgclf.errors import ImgclfError

    with pytest.raises(ImgclfError, match="only takes images of its full size"):
        imgclf.train(data="digits", model="mlp", epochs=2, progressive_size=8, progressive_epochs=1,
                     image_size=16, out=str(tmp_path), quiet=True, plots=False)
