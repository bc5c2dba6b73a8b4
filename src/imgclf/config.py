"""Every training setting in one dataclass, and how a run's settings are resolved:
defaults < dataset profile < --recipe < --config file < command-line flags."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class TrainConfig:
    """All settings of `imgclf train`; the CLI flags and config-file keys have these names (with - for _)."""

    # data
    data: str = "digits"
    data_dir: str | None = None
    image_size: int | None = None
    val_split: float = 0.1          # fraction of train held out to pick best.pt (0: best.pt = last epoch)
    test_split: float = 0.2         # for a folder without test/: fraction held out as the test split
    strict_images: bool = False
    download: bool = True
    normalize: str = "dataset"      # dataset (train mean/std) | half (mean 0.5, std 0.5 → [-1, 1], the tutorial's)
    # model
    model: str = "fastcnn-small"
    # optimisation
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.05
    optimizer: str = "sgd"          # sgd | adamw
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    schedule: str = "onecycle"      # constant | onecycle | cosine | step
    warmup: float = 0.5             # epochs of linear warm-up (onecycle/cosine/step)
    # augmentation (train only; on whole batches)
    crop_pad: int = 2
    flip: str = "none"              # none | random | alternate
    cutout: int = 0
    # progressive resizing (fastai's term): the first progressive_epochs epochs train on the images resized to
    # progressive_size (cheaper steps: on a CPU, pixels are time), the rest and all testing at full size
    progressive_size: int = 0       # 0 = off
    progressive_epochs: int = 0
    # evaluation
    ema: float = 0.0                # weight-averaging decay per step (0 = off); val/test use the averaged weights
    tta: bool = False               # test-time augmentation: average over the image and its mirror
    eval_every: int = 1             # validate every N epochs (the last epoch always)
    # machine
    device: str = "auto"            # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"         # auto (CUDA: amp-bf16, else fp32) | fp32 | amp-bf16 | amp-fp16
    channels_last: bool | None = None  # None: on (CPU and CUDA), off on MPS
    compile: bool = False
    threads: int = 0                # torch CPU threads (0: PyTorch's default)
    seed: int = 0
    # output
    out: str = "runs/train"
    name: str | None = None
    log_every: int = 0              # print the tutorial's running-loss line every N steps (0: off)
    save_every_steps: int = 0       # also write last.pt every N steps (0: only at epoch ends)
    plots: bool = True
    recipe: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
CHOICES = {
    "optimizer": ("sgd", "adamw"), "schedule": ("constant", "onecycle", "cosine", "step"),
    "flip": ("none", "random", "alternate"), "normalize": ("dataset", "half"),
    "precision": ("auto", "fp32", "amp-bf16", "amp-fp16"),
}

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
    # CPU time-budget recipes for 32×32 colour data (CIFAR-like), tuned on a 10% val hold-out of CIFAR-10 JPEG,
    # then run with no hold-out (every image trains; best.pt is the last epoch; nothing is picked on test).
    # On a 2-core CPU, FLOPs are time: training at 24×24 costs half of 32×32, ReLU a fraction of GELU.
    # fast-1m: tiny net, 24×24, 3 epochs. Val: lr 0.2 → 72.7%, 0.4 → 75.3%, 0.6 → 75.9% (4 epochs at 0.4: 76.7%,
    # but 1.1 min on 50k images).
    "fast-1m": dict(model="fastcnn-tiny", image_size=24, epochs=3, batch_size=256, lr=0.6, weight_decay=5e-4,
                    label_smoothing=0.2, warmup=0.3, crop_pad=2, flip="alternate", val_split=0.0, tta=True),
    # fast-5m: small net, 24×24, 7 epochs. Val: 2 epochs → 74.2%, 8 epochs → 83.6% (4.6 min on 45k images).
    "fast-5m": dict(model="fastcnn-small", image_size=24, epochs=7, batch_size=256, lr=0.2, weight_decay=5e-4,
                    label_smoothing=0.2, warmup=0.5, crop_pad=2, flip="alternate", val_split=0.0, tta=True),
    # fast-10m: small net at full 32×32, 8 epochs (~60 s each on 2 cores).
    "fast-10m": dict(model="fastcnn-small", epochs=8, batch_size=256, lr=0.2, weight_decay=5e-4,
                     label_smoothing=0.2, warmup=0.5, crop_pad=2, flip="alternate", val_split=0.0, tta=True),
}

# Per-dataset defaults, applied before the recipe: what `imgclf train --data X` alone runs.
PROFILES: dict[str, dict[str, Any]] = {
    # 8×8 digits (1,437 train images): tiny net, many cheap epochs; digits are not mirrored.
    "digits": dict(model="fastcnn-tiny", epochs=15, batch_size=64, lr=0.1, crop_pad=1, flip="none", val_split=0.1),
    # 28×28 grayscale (MNIST-format): a mirrored glyph is another glyph, so no flips; small shifts help.
    # Tuned on MNIST's val hold-out: 99.50% val, 99.56% test in 57.5 s on 2 cores (benchmarks/RESULTS.md).
    "gray28": dict(model="fastcnn-tiny", epochs=3, batch_size=128, lr=0.2, label_smoothing=0.0, crop_pad=2,
                   flip="none", val_split=0.1),
    # 32×32 colour (CIFAR-like): the fast-5m recipe's training at the images' own resolution.
    "rgb32": {k: v for k, v in RECIPES["fast-5m"].items() if k != "image_size"},
    # anything else (a folder of photos): mirrored images are the same class.
    "other": dict(model="fastcnn-small", epochs=15, batch_size=64, flip="random", crop_pad=2),
}


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


def profile_for(name: str, shape: tuple[int, int, int]) -> dict[str, Any]:
    """The per-dataset defaults for a dataset called `name` with images of `shape` (C, H, W)."""
    c, h, w = shape
    if name == "digits":
        return PROFILES["digits"]
    if c == 1 and max(h, w) <= 32:
        return PROFILES["gray28"]
    if c == 3 and max(h, w) <= 32:
        return PROFILES["rgb32"]
    return PROFILES["other"]


def coerce(key: str, value: Any, where: str = "") -> Any:
    """Check a setting's name and convert its value to the field's type; ConfigError names the key and fix."""
    if key not in FIELDS:
        close = [k for k in FIELDS if k.startswith(key[:3])]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"{where}unknown setting {key!r}{hint}")
    ftype = str(FIELDS[key].type)
    try:
        if value is None:
            if "None" not in ftype:
                raise ValueError("may not be empty")
            return None
        if ftype.startswith("bool"):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError("expected true or false")
                return value.lower() in ("true", "1", "yes", "on")
            return bool(value)
        if ftype.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected a whole number")
            return int(value)
        if ftype.startswith("float"):
            return float(value)
        value = str(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}setting {key!r}: bad value {value!r} ({e})") from None
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{where}setting {key!r}: {value!r} is not one of {', '.join(CHOICES[key])}")
    return value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a YAML (.yaml/.yml) or TOML (.toml) file; keys are TrainConfig names (- or _)."""
    path = Path(path)
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot parse config file ({str(e).splitlines()[0]})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of setting: value")
    return {k.replace("-", "_"): coerce(k.replace("-", "_"), v, f"{path}: ") for k, v in raw.items()
            if k.replace("-", "_") not in ("imgclf_version", "torch_version", "device_name")}


def resolve(user: dict[str, Any], dataset_name: str, shape: tuple[int, int, int]) -> TrainConfig:
    """Defaults < dataset profile < model defaults < recipe (user['recipe']) < user settings (file, then flags)."""
    user = {k: coerce(k, v) for k, v in user.items()}
    merged: dict[str, Any] = dict(profile_for(dataset_name, shape))
    merged.update(MODEL_DEFAULTS.get(user.get("model", ""), {}))
    recipe = user.get("recipe")
    if recipe:
        if recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
        merged.update(RECIPES[recipe])
    merged.update(user)
    cfg = TrainConfig(**merged)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Range checks that a type alone cannot express."""
    checks = [("epochs", cfg.epochs >= 1, "at least 1"), ("batch_size", cfg.batch_size >= 1, "at least 1"),
              ("lr", cfg.lr > 0, "positive"), ("val_split", 0 <= cfg.val_split < 1, "in [0, 1)"),
              ("test_split", 0 < cfg.test_split < 1, "in (0, 1)"), ("ema", 0 <= cfg.ema < 1, "in [0, 1)"),
              ("label_smoothing", 0 <= cfg.label_smoothing < 1, "in [0, 1)"), ("warmup", cfg.warmup >= 0, "≥ 0"),
              ("crop_pad", cfg.crop_pad >= 0, "≥ 0"), ("cutout", cfg.cutout >= 0, "≥ 0"),
              ("eval_every", cfg.eval_every >= 1, "at least 1"),
              ("progressive_size", cfg.progressive_size == 0 or cfg.progressive_size >= 8, "0 (off) or at least 8"),
              ("progressive_epochs", 0 <= cfg.progressive_epochs <= cfg.epochs, "in [0, epochs]")]
    for key, ok, want in checks:
        if not ok:
            raise ConfigError(f"setting {key!r} must be {want}, got {getattr(cfg, key)!r}")


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=False)


__all__ = ["FIELDS", "PROFILES", "RECIPES", "TrainConfig", "coerce", "read_config_file", "resolve"]
