"""ImageNet-form models (torchvision's keys, shapes and parameter counts), pretrained weights fetched through torch.hub
from a local HTTP server on 127.0.0.1 (generated files named by their sha256, as torchvision's are), loading weights
into models of other class and channel counts, and freezing the backbone."""

import hashlib
import socket

import pytest
import torch
import torch.nn.functional as F
from conftest import RangeHandler, make_image_folder

import imgclf
from imgclf.checkpoint import load_checkpoint
from imgclf.engine.optim import SGD
from imgclf.engine.step import set_lr
from imgclf.errors import CheckpointError, ImgclfError
from imgclf.models import MODELS, build_model, imagenet, pretrained
from imgclf.models.pretrained import (
    WeightsFile,
    backbone_parameters,
    freeze_backbone,
    head_module,
    head_parameters,
    init_from_state,
    keep_frozen_bn_eval,
    normalization_of,
    param_groups,
    pretrained_normalization,
    pretrained_state,
)

# torchvision's parameter counts at 1000 classes, and a few of its (key, shape) pairs per model
LAYOUT = {
    "resnet18-imagenet": (11_689_512, {
        "conv1.weight": (64, 3, 7, 7), "bn1.running_var": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer2.0.downsample.1.bias": (128,),
        "layer4.1.bn2.weight": (512,), "fc.weight": (1000, 512), "fc.bias": (1000,)}),
    "resnet34-imagenet": (21_797_672, {
        "conv1.weight": (64, 3, 7, 7), "layer1.2.conv2.weight": (64, 64, 3, 3),
        "layer3.5.conv2.weight": (256, 256, 3, 3), "layer4.0.downsample.0.weight": (512, 256, 1, 1),
        "layer4.2.bn2.num_batches_tracked": (), "fc.weight": (1000, 512)}),
    "resnet50-imagenet": (25_557_032, {
        "conv1.weight": (64, 3, 7, 7), "layer1.0.conv1.weight": (64, 64, 1, 1),
        "layer1.0.conv3.weight": (256, 64, 1, 1), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.5.bn3.running_mean": (1024,), "layer4.2.conv3.weight": (2048, 512, 1, 1), "fc.weight": (1000, 2048)}),
    "mobilenet-v3-small": (2_542_856, {
        "features.0.0.weight": (16, 3, 3, 3), "features.0.1.running_mean": (16,),
        "features.1.block.0.0.weight": (16, 1, 3, 3), "features.1.block.1.fc1.weight": (8, 16, 1, 1),
        "features.1.block.2.0.weight": (16, 16, 1, 1), "features.2.block.1.0.weight": (72, 1, 3, 3),
        "features.4.block.2.fc2.weight": (96, 24, 1, 1), "features.9.block.1.0.weight": (288, 1, 5, 5),
        "features.11.block.3.1.weight": (96,), "features.12.0.weight": (576, 96, 1, 1),
        "classifier.0.weight": (1024, 576), "classifier.3.weight": (1000, 1024), "classifier.3.bias": (1000,)}),
}
ABSENT = {"resnet18-imagenet": "layer1.0.downsample.0.weight", "resnet34-imagenet": "layer3.6.conv1.weight",
          "resnet50-imagenet": "layer1.0.conv3.bias", "mobilenet-v3-small": "features.13.0.weight"}


@pytest.mark.parametrize("name", list(LAYOUT))
def test_imagenet_models_have_torchvisions_layout(name):
    count, shapes = LAYOUT[name]
    model = MODELS[name].builder(in_channels=3, num_classes=1000, image_size=(224, 224), source="own")
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == count
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    assert ABSENT[name] not in state
    small = build_model(name, 1, 5, (32, 32)).eval()  # one channel, 5 classes, 32×32: still a working network
    stem = next(iter(shapes))
    assert tuple(small.state_dict()[stem].shape)[:2] == (shapes[stem][0], 1)
    with torch.no_grad():  # training steps: test_optim_models (every registered model) and the freezing tests here
        assert small(torch.randn(2, 1, 32, 32)).shape == (2, 5)


def test_mobilenet_uses_the_reference_batchnorm_settings():
    bn = build_model("mobilenet-v3-small", 3, 10, (32, 32)).features[0][1]
    assert (bn.eps, bn.momentum) == (0.001, 0.01)


def test_torchvision_is_used_when_importable(monkeypatch):
    calls = []

    class FakeModels:
        @staticmethod
        def resnet18(weights=None, num_classes=1000):
            calls.append(num_classes)
            return imagenet.ImageNetResNet(imagenet.BasicBlock, (2, 2, 2, 2), 3, num_classes)

    monkeypatch.setattr(imagenet, "torchvision_models", lambda: FakeModels)
    model = build_model("resnet18-imagenet", 1, 4, (32, 32))
    assert calls == [4] and model.conv1.weight.shape == (64, 1, 7, 7)  # stem swapped for the data's channels
    build_model("resnet18-imagenet", 1, 4, (32, 32), source="own")
    assert calls == [4]


# ------------------------------------------------------------------------------ weights served over HTTP


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path / "torch-home" / "hub" / "checkpoints"


def publish(root, model_name, monkeypatch, seed=0):
    """Seeded random weights of `model_name` in torchvision's format, saved as torchvision names its files
    (stem-<first 8 hex digits of the sha256>.pth), and the weights table pointed at the file."""
    torch.manual_seed(seed)
    model = build_model(model_name, 3, 1000, (32, 32))
    state = {k: (v + 7 if not v.is_floating_point() else torch.rand_like(v) + 0.5 if k.endswith("running_var")
                 else torch.randn_like(v) * 0.05)   # small weights, positive variances: a net that computes
             for k, v in model.state_dict().items()}
    tmp = root / "upload.tmp"
    torch.save(state, tmp)
    stem = pretrained.WEIGHTS[model_name].file.split("-")[0]
    name = f"{stem}-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(root / name)
    monkeypatch.setitem(pretrained.WEIGHTS, model_name, WeightsFile(name, "test"))
    return state, name


def test_pretrained_weights_download_then_come_from_the_cache(server, torch_home, monkeypatch):
    root, url, stop = server
    monkeypatch.setenv("IMGCLF_WEIGHTS_URL", url)
    published, name = publish(root, "mobilenet-v3-small", monkeypatch)
    state = pretrained_state("mobilenet-v3-small")
    assert state.keys() == published.keys() and all(torch.equal(state[k], v) for k, v in published.items())
    assert (torch_home / name).is_file() and [path for path, _ in RangeHandler.requests] == [f"/{name}"]
    stop()  # offline now: the second load must come from torch.hub's cache
    again = pretrained_state("mobilenet-v3-small")
    assert all(torch.equal(again[k], v) for k, v in published.items())


def test_pretrained_weights_fit_other_class_and_channel_counts(server, torch_home, monkeypatch):
    root, url, _ = server
    monkeypatch.setenv("IMGCLF_WEIGHTS_URL", url)
    published, _ = publish(root, "mobilenet-v3-small", monkeypatch)
    state = pretrained_state("mobilenet-v3-small")
    torch.manual_seed(1)
    model = build_model("mobilenet-v3-small", 1, 4, (32, 32))
    fresh_head = model.classifier[3].weight.detach().clone()
    notes = init_from_state(model, state, "test weights")
    assert "new head (classifier.3): 1000 → 4 classes" in notes
    assert any("first conv features.0.0 adapted: 3 → 1" in n for n in notes)
    got = model.state_dict()
    for k, v in published.items():
        if k.startswith("classifier.3."):
            continue
        want = v.sum(1, keepdim=True) if k == "features.0.0.weight" else v
        assert torch.equal(got[k], want), k
    assert torch.equal(model.classifier[3].weight, fresh_head)  # the new head keeps its own initialisation
    assert pretrained_normalization(1) == ([0.449], [0.226])
    assert pretrained_normalization(3) == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def test_offline_error_names_the_url_the_file_and_the_folder(torch_home, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("IMGCLF_WEIGHTS_URL", f"http://127.0.0.1:{port}/models")
    with pytest.raises(ImgclfError) as e:
        pretrained_state("resnet50-imagenet")
    msg = str(e.value)
    assert f"http://127.0.0.1:{port}/models/resnet50-0676ba61.pth" in msg
    assert "put it into" in msg and f"{torch_home}/" in msg and "resnet50-0676ba61.pth" in msg


def test_a_file_that_fails_its_checksum_is_not_kept(server, torch_home, monkeypatch):
    root, url, _ = server
    monkeypatch.setenv("IMGCLF_WEIGHTS_URL", url)
    (root / "resnet18-00000000.pth").write_bytes(b"not the promised weights")
    monkeypatch.setitem(pretrained.WEIGHTS, "resnet18-imagenet", WeightsFile("resnet18-00000000.pth", "test"))
    with pytest.raises(ImgclfError, match="checksum mismatch"):
        pretrained_state("resnet18-imagenet")
    assert not (torch_home / "resnet18-00000000.pth").exists()


def test_no_weights_for_models_without_them():
    with pytest.raises(ImgclfError, match="--pretrained works with: efficientnet-lite0, resnet18-imagenet"):
        pretrained_state("fastcnn-tiny")


# ---------------------------------------------------------------------------------- init_from_state


def test_init_from_an_imgclf_checkpoint_dict_and_file(tmp_path):
    torch.manual_seed(0)
    trained = build_model("resnet18-imagenet", 3, 10, (32, 32))
    ckpt = {"format_version": 1, "model_name": "resnet18-imagenet",
            "normalization": {"mean": [0.1] * 3, "std": [0.2] * 3},
            "model": {k: v.clone() for k, v in trained.state_dict().items()}}
    model = build_model("resnet18-imagenet", 3, 4, (32, 32))
    notes = init_from_state(model, ckpt, "run/best.pt")
    assert notes[0] == "weights from run/best.pt (120 of 122 tensors)" and "new head (fc): 10 → 4 classes" in notes
    assert torch.equal(model.layer4[1].conv2.weight, trained.layer4[1].conv2.weight)
    assert normalization_of(ckpt, 3) == ([0.1] * 3, [0.2] * 3)
    assert normalization_of(ckpt, 1) == pretrained_normalization(1)  # other channels: the checkpoint's do not fit
    torch.save(ckpt, tmp_path / "best.pt")
    same = build_model("resnet18-imagenet", 3, 10, (32, 32))
    assert init_from_state(same, tmp_path / "best.pt") == [f"weights from {tmp_path / 'best.pt'} (122 of 122 tensors)"]
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), trained.state_dict().values()))
    torch.save({f"module.{k}": v for k, v in ckpt["model"].items()}, tmp_path / "ddp.pth")  # a DDP-saved state_dict
    init_from_state(build_model("resnet18-imagenet", 3, 10, (32, 32)), tmp_path / "ddp.pth")


def test_weights_that_do_not_fit_say_which_keys(tmp_path):
    ckpt = {"model_name": "resnet18-imagenet", "model": build_model("resnet18-imagenet", 3, 10, (32, 32)).state_dict()}
    with pytest.raises(CheckpointError, match=r"missing layer1\.2\.conv1\.weight.*for model 'resnet18-imagenet'"):
        init_from_state(build_model("resnet34-imagenet", 3, 10, (32, 32)), ckpt, "r18.pt")
    with pytest.raises(CheckpointError, match=r"unexpected features\.0\.0\.weight"):
        init_from_state(build_model("resnet18-imagenet", 3, 10, (32, 32)),
                        build_model("mobilenet-v3-small", 3, 10, (32, 32)).state_dict(), "mnv3")


class NotATensor:
    pass


def test_files_that_would_run_code_are_refused(tmp_path):
    torch.save({"conv1.weight": NotATensor()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused to load"):
        init_from_state(build_model("resnet18-imagenet", 3, 10, (32, 32)), tmp_path / "evil.pth")


# --------------------------------------------------------------------------- head, backbone, freezing


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_has_a_head_and_a_backbone(name):
    model = build_model(name, 3, 7, (32, 32))
    head, back = head_parameters(model), backbone_parameters(model)
    assert head and head[0].shape[0] == 7 and back
    assert {id(p) for p in head} | {id(p) for p in back} == {id(p) for p in model.parameters()}
    assert not {id(p) for p in head} & {id(p) for p in back}


@pytest.mark.parametrize("make_opt", ["sgd", "adamw"])
def test_a_frozen_backbone_stays_bit_identical(make_opt):
    """With the engine's two optimizers (imgclf's SGD with momentum, torch's AdamW with decoupled weight decay) over
    every parameter, only the head moves while frozen: no update, no decay, no BN statistics."""
    torch.manual_seed(0)
    model = build_model("mobilenet-v3-small", 3, 4, (32, 32))
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4,))
    groups = param_groups(model, weight_decay=5e-2, backbone_lr_mult=0.1)
    opt = (SGD(groups, lr=0.1, momentum=0.9, nesterov=True) if make_opt == "sgd"
           else torch.optim.AdamW(groups, lr=0.1))
    set_lr(opt, 0.1)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.01, 0.01, 0.1, 0.1])
    freeze_backbone(model, True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head_name = head_module(model)[0]

    def steps(n):
        for _ in range(n):
            model.train()
            keep_frozen_bn_eval(model)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    steps(3)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {f"{head_name}.weight", f"{head_name}.bias"}  # BN running stats and counters too: unchanged
    freeze_backbone(model, False)
    assert all(p.requires_grad for p in model.parameters()) and model.features[0][1].training
    steps(1)
    after = model.state_dict()
    assert not torch.equal(before["features.0.0.weight"], after["features.0.0.weight"])
    assert not torch.equal(before["features.0.1.running_mean"], after["features.0.1.running_mean"])


def test_unfreezing_leaves_parameters_a_model_keeps_frozen_frozen():
    model = build_model("fastcnn-tiny", 3, 10, (32, 32))
    designed = {n: p.requires_grad for n, p in model.named_parameters()}
    assert not all(designed.values())  # fastcnn's whitening layer and BN scales never train
    freeze_backbone(model, True)
    freeze_backbone(model, True)  # twice: still remembers what it switched off
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight"]
    param_names = {id(p) for g in param_groups(model, 5e-4) for p in g["params"]}
    assert param_names == {id(p) for n, p in model.named_parameters() if designed[n]}
    freeze_backbone(model, False)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == designed


# ------------------------------------------------------------------------ fine-tuning through imgclf.train


def test_train_fine_tunes_from_served_imagenet_weights(server, torch_home, monkeypatch, tmp_path):
    root, url, _ = server
    monkeypatch.setenv("IMGCLF_WEIGHTS_URL", url)
    published, _ = publish(root, "mobilenet-v3-small", monkeypatch)
    folder = make_image_folder(tmp_path / "shapes", per_class=16, size=32)
    s = imgclf.train(data=str(folder), model="mobilenet-v3-small", pretrained=True, epochs=1, freeze_epochs=1,
                     val_split=0.0, out=str(tmp_path / "r"), plots=False, quiet=True, device="cpu")
    ckpt = load_checkpoint(f"{s['run_dir']}/last.pt")
    assert ckpt["model"]["classifier.3.weight"].shape == (2, 1024)            # a new head for 2 classes
    assert ckpt["normalization"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    frozen = [k for k in published if not k.startswith("classifier.3.")]
    assert all(torch.equal(ckpt["model"][k], published[k]) for k in frozen)  # weights and BN statistics untouched
    assert ckpt["global_step"] > 0 and not torch.equal(ckpt["model"]["classifier.3.bias"], torch.zeros(2))


@pytest.mark.slow
def test_init_weights_freeze_then_unfreeze_and_resume_exactly(tmp_path):
    from test_train import register_interrupting_model

    from imgclf.engine.train import TrainingStopped

    base = dict(data="digits", model="fastcnn-tiny", epochs=2, batch_size=64, val_split=0.0, plots=False,
                device="cpu", out=str(tmp_path))
    source = imgclf.train(base | {"name": "source", "epochs": 1}, quiet=True)
    start = load_checkpoint(source["checkpoint"])["model"]
    tune = base | {"init_weights": source["checkpoint"], "freeze_epochs": 1, "backbone_lr_mult": 0.1, "lr": 0.05}
    head_only = imgclf.train(tune | {"name": "head-only", "epochs": 1}, quiet=True)
    after = load_checkpoint(head_only["checkpoint"])["model"]
    head = {"head.weight", "head.bias"}
    assert all(torch.equal(after[k], v) for k, v in start.items() if k not in head)   # the backbone froze
    assert not torch.equal(after["head.weight"], start["head.weight"])
    full = load_checkpoint(imgclf.train(tune | {"name": "full"}, quiet=True)["checkpoint"])["model"]
    assert [k for k in start if k not in head and not torch.equal(full[k], start[k])]   # epoch 2 trains it all
    register_interrupting_model("tiny-ctrl-c-unfreeze", 30)        # mid-epoch 2, after the unfreeze at step 22
    with pytest.raises(TrainingStopped):
        imgclf.train(tune | {"name": "stopped", "model": "tiny-ctrl-c-unfreeze", "save_every_steps": 100},
                     quiet=True)
    imgclf.train(resume=tmp_path / "stopped" / "last.pt", quiet=True)
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "stopped" / "last.pt")
    assert a["global_step"] == b["global_step"] == 44
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
