"""Named sets of settings, every value with the reason it has: recipes (`--recipe`), per-dataset profiles (what
`--data X` alone runs) and per-model defaults (what `--model X` alone runs). How they combine with the defaults,
a config file and flags is config.py's job; the figures they give are in benchmarks/RESULTS.md with the commands.
"""

from __future__ import annotations

from typing import Any

# 32×32 colour training (CIFAR-like), tuned on a 10% val hold-out of CIFAR-10 JPEG (benchmarks/RESULTS.md): strong
# label smoothing, 2-px translations, flips alternating per epoch, flip test-time augmentation.
RGB32_TRAINING: dict[str, Any] = dict(batch_size=256, weight_decay=5e-4, label_smoothing=0.2, crop_pad=2,
                                      flip="alternate", tta=True)

# What --budget chooses from on 32×32 colour data when you name no --model or --image-size: cheapest first, each
# with the settings tuned for it, taken when the budget gives it at least `min_epochs` (on a 2-core CPU, FLOPs are
# time: 24×24 costs about half of 32×32, fastcnn-medium 1.9× fastcnn-small). Measured on a 10% val hold-out of
# CIFAR-10 JPEG (benchmarks/RESULTS.md): fastcnn-tiny 24×24 3 epochs lr 0.6 → 75.9%; fastcnn-small 24×24 8 epochs
# → 83.6%; at 32×32 with Muon fastcnn-small 6 epochs → 85.8%, 23 → 87.9%; fastcnn-medium 6 → 87.6%, 13 → 88.9%;
# fastcnn-wide (2.9× small's step) 7 → 89.4%, 9 → 89.9% (so medium from 6 epochs on, wide from 7: 7 of wide beat
# 13 of medium in less time); airbench's six TTA views add 0.1-0.4 points at 32×32 (flip only below). Small at 24×24
# from 5 epochs: at a 1-minute budget on a Zen 5 (val 45k/5k, seeds 0-3) tiny's 1,883-2,092 steps gave 80.98% and
# small's rose with its steps, 776 → 1,109: 80.54, 80.81, 81.15, 81.35, 81.65, 82.44% (even with tiny at ~820 steps,
# 4.2 epochs of 50k). airbench's other knobs, tried on wide's 4 epochs (Zen 5, val, seed 0: 87.51%), moved val by
# less than its noise (±0.4): BN-shift lr ×64 87.55, lookahead 87.53, momentum 0.85 87.77, batch 512 87.11,
# Newton–Schulz 3 steps 87.73 (and no measurable time saved).
BUDGET_LADDER: list[dict[str, Any]] = [
    dict(model="fastcnn-tiny", image_size=24, lr=0.6, warmup=0.3, min_epochs=0),
    dict(model="fastcnn-small", image_size=24, lr=0.2, warmup=0.5, min_epochs=5),
    dict(model="fastcnn-small", image_size=None, lr=0.2, warmup=0.5, optimizer="muon", tta_shift=1, min_epochs=6),
    dict(model="fastcnn-medium", image_size=None, lr=0.2, warmup=0.5, optimizer="muon", tta_shift=1, min_epochs=6),
    dict(model="fastcnn-wide", image_size=None, lr=0.2, warmup=0.5, optimizer="muon", tta_shift=1, min_epochs=7),
    # Where a machine affords more than wide's epochs, the ladder grows into the airbench family instead of leaving
    # the compute to ever more epochs of wide: airbench94's 64/256/256 from 7 epochs (on a Sapphire Rapids, AMX, val
    # 45k/5k, seed 0: 7 epochs 90.64% val in ~0.85× the time of wide's 11, 89.84%; airbench94_muon's 94% on a GPU
    # takes 8), airbench95's 128/384/384 from its published 15 (not tuned here: no 2-core CPU affords it).
    dict(model="fastcnn", image_size=None, lr=0.2, warmup=0.5, optimizer="muon", tta_shift=1, min_epochs=7),
    dict(model="fastcnn-xl", image_size=None, lr=0.2, warmup=0.5, optimizer="muon", tta_shift=1, min_epochs=15),
]
# 28×28 grayscale (the gray28 profile spends a minute, planned as --budget does): fastcnn-tiny, and fastcnn-small
# where the minute gives it 4 epochs; at most 30 epochs (a small folder need not fill the minute). On val (10% of
# train, seed 0; benchmarks/RESULTS.md) tiny 3 → 12 epochs: MNIST 99.52 → 99.58%, Fashion-MNIST 92.14 → 93.49%;
# small 4 / 6 epochs (~2.4× tiny's time an epoch): 99.55 / 99.60% and 93.58 / 93.64%.
GRAY28_LADDER: list[dict[str, Any]] = [
    dict(model="fastcnn-tiny", min_epochs=0, max_epochs=30),
    dict(model="fastcnn-small", min_epochs=4, max_epochs=30),
]
BUDGET_LADDERS = {"rgb32": BUDGET_LADDER, "gray28": GRAY28_LADDER}   # the data kinds each was tuned for

# Named recipes: each value is exactly what it changes, with the reason. The figures they give are in
# benchmarks/RESULTS.md with the command that produced them.
RECIPES: dict[str, dict[str, Any]] = {
    # The PyTorch CIFAR-10 tutorial as written: batch 4, 2 epochs, SGD 0.001/0.9, no augmentation, [-1, 1].
    "tutorial": dict(model="tutorial-net", epochs=2, batch_size=4, lr=0.001, optimizer="sgd", momentum=0.9,
                     nesterov=False, weight_decay=0.0, label_smoothing=0.0, schedule="constant", warmup=0.0,
                     crop_pad=0, flip="none", cutout=0, normalize="half", val_split=0.0, log_every=2000),
    # The tutorial's network, trained the way a modern loop would: batch 64, Nesterov, one-cycle. Tuned on a
    # CIFAR-10 val hold-out: 1 epoch reached 53.6% val, 2 epochs 60.2%; batch 128 at lr 0.1 once collapsed.
    "tutorial-fast": dict(model="tutorial-net", epochs=2, batch_size=64, lr=0.05, weight_decay=5e-4,
                          label_smoothing=0.0, schedule="onecycle", warmup=0.3, crop_pad=0, flip="none",
                          val_split=0.0),
    # Time budgets for 32×32 colour data (CIFAR-like): `--recipe fast-5m` is `--budget 5m` with the 32×32 colour
    # training settings below; the budget measures this machine and plans the steps, model and size (BUDGET_LADDER),
    # so a faster machine trains longer and reaches more. No val hold-out: every image trains, best.pt is the end.
    "fast-1m": dict(budget="1m", **RGB32_TRAINING, val_split=0.0),
    "fast-5m": dict(budget="5m", **RGB32_TRAINING, val_split=0.0),
    "fast-10m": dict(budget="10m", **RGB32_TRAINING, val_split=0.0),
}

# Per-dataset defaults, applied before the recipe: what `imgclf train --data X` alone runs.
PROFILES: dict[str, dict[str, Any]] = {
    # 8×8 digits (1,437 train images): tiny net, many cheap epochs; digits are not mirrored.
    "digits": dict(model="fastcnn-tiny", epochs=15, batch_size=64, lr=0.1, crop_pad=1, flip="none", val_split=0.1),
    # 28×28 grayscale (MNIST-format): a mirrored glyph is another glyph, so no flips; small shifts help. Tuned on
    # MNIST's val hold-out (benchmarks/RESULTS.md). Muon tied SGD on that val (99.45-99.50% vs 99.47%, seeds 0-2)
    # for 15% more training time, so SGD stays. Testing on the image and its ±1 px shifts (no mirrors: tta with
    # flip none) raised val in all three seeds (99.47 → 99.51% mean) for 3× a test pass of ~0.3 s. It spends a
    # minute, planned as --budget plans (GRAY28_LADDER): 3 epochs left an unseen clothing set 1.3-1.5 points short
    # of more training on val. The 3 epochs stand where a budget cannot plan (torchrun).
    "gray28": dict(model="fastcnn-tiny", epochs=3, budget="1m", batch_size=128, lr=0.2, label_smoothing=0.0,
                   crop_pad=2, flip="none", tta=True, tta_shift=1, val_split=0.1),
    # 32×32 colour (CIFAR-like): the small fast CNN at the images' own resolution, 7 epochs (about 5 minutes on
    # a 2-core Zen 3; --budget or a fast-* recipe fits the epochs to the machine instead). A mirrored photo is the
    # same class, so TTA mirrors even where a recipe trains without flips (the tutorial's net: worth 1.6 points).
    "rgb32": dict(model="fastcnn-small", epochs=7, lr=0.2, warmup=0.5, **RGB32_TRAINING, val_split=0.0,
                  tta_mirror=True),
    # anything else (a folder of photos): mirrored images are the same class (so TTA mirrors, even with --flip none).
    "photos": dict(model="fastcnn-small", epochs=15, batch_size=64, flip="random", crop_pad=0, crop_scale=0.35,
                   color_jitter=0.2, tta_mirror=True),
}


# A folder of photos with no model named, when EfficientNet-Lite0's ImageNet weights are installed (photos_layer):
# epoch 1 is a linear probe (a head fitted on the frozen backbone's cached features, its weight decay chosen on val:
# engine/probe.py); each epoch after it fine-tunes the whole network from that head with BatchNorm's statistics kept
# (train-mode BN invalidates the probe's head), AdamW at a low lr, the photo augmentation. best.pt is chosen on val
# among all epochs, so a fine-tune that does not beat the probe on val is not kept.
PHOTO_PRETRAINED_SIZE = 224   # the size the ImageNet weights were trained at; decoded once, cached
PRETRAINED_PHOTOS: dict[str, Any] = dict(
    model="efficientnet-lite0", pretrained=True, linear_probe=True, freeze_bn=True, epochs=1, batch_size=32,
    optimizer="adamw", lr=3e-4, weight_decay=0.01, label_smoothing=0.1, warmup=0.3, tta=True, tta_mirror=True)


# Per-model defaults, applied after the dataset profile when a model is named: what `--model X` alone runs.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    # The tutorial's net, one epoch: beats the tutorial's 2-epoch accuracy (53.8%) ~20x sooner. Chosen on a 10%
    # val hold-out of CIFAR-10 JPEG, 1 epoch, seeds 0-2: tutorial-fast's settings 53.7% val; warm-up 0.1 epoch
    # + label smoothing 0.1 55.5% (flip TTA is worth 1.6 of it); batch 128 ≤ 53.5%. 2 epochs: --recipe tutorial-fast.
    "tutorial-net": {**{k: v for k, v in RECIPES["tutorial-fast"].items() if k != "model"},
                     "epochs": 1, "warmup": 0.1, "label_smoothing": 0.1},
    "tutorial-classifier": {k: v for k, v in RECIPES["tutorial-fast"].items() if k != "model"},
    "mlp": dict(epochs=5, batch_size=64, lr=0.05, crop_pad=0, flip="none", label_smoothing=0.0),
}


# Why a dataset gets each profile (the run header says it).
PROFILE_WHY = {"digits": "the digits dataset", "gray28": "grayscale images trained at 32×32 or less",
               "rgb32": "colour images trained at 32×32 or less", "photos": "images trained at more than 32×32"}


def profile_name(name: str, shape: tuple[int, int, int]) -> str:
    """Which PROFILES entry a dataset called `name` with images of `shape` (C, H, W, as trained: the settings are
    tuned for the size the network sees; data_policy.profile_note says when the images as stored would get another)
    gets."""
    c, h, w = shape
    if name == "digits":
        return "digits"
    if c == 1 and max(h, w) <= 32:
        return "gray28"
    if c == 3 and max(h, w) <= 32:
        return "rgb32"
    return "photos"
