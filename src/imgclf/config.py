"""Every training setting in one dataclass, and the one place where a run's settings are resolved.

Layers, lowest first; each later layer overrides the earlier ones for the keys it sets:

    1. defaults        TrainConfig's field defaults
    2. dataset profile PROFILES, chosen from the dataset's name and image shape (profile_for)
    2b. data           what is decided from the loaded data and this machine: the size chosen for a folder of mixed
                       sizes or of photos, and a photo folder with no model named starting from installed ImageNet
                       weights (PRETRAINED_PHOTOS, `photos_layer`)
    3. model defaults  MODEL_DEFAULTS[model], when you name a --model
    4. recipe          RECIPES[recipe], when you name a --recipe
    5. budget plan     with --budget: the steps (and, where it chooses them, model and size) planned for this machine
    6. config file     --config FILE (YAML or TOML, same names)
    7. your settings   command-line flags, or keyword arguments / a dict / a TrainConfig in the Python API

`resolve()` applies them; `explain()` says which layer each value came from (`imgclf train --print-config`).
Given the training split's size, `resolve()` also fits what depends on it, once: a batch too large for the split
gets smaller (at least MIN_STEPS_PER_EPOCH steps an epoch, unless you or a config file set --batch-size; the lr is
kept: fewer images a step, more steps), and a length in --steps becomes whole epochs (the last one cut short). So
`--print-config` shows what runs, and config.yaml records it.
A resumed run starts from the checkpoint's resolved settings instead, and only RESUME_OVERRIDABLE may change.
Profiles and model defaults never set the keys that say how data is loaded (LOAD_KEYS), so the data can be
loaded first (`load_settings`) and the profile then chosen from what was loaded. One exception: a profile's
`budget` (gray28 spends a minute), which the budget plan reads once the data is loaded (budget.profile_budget).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, shown
from .recipes import MODEL_DEFAULTS, PRETRAINED_PHOTOS, PROFILES, RECIPES, profile_name
from .words import counted, plural

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(kw_only=True, frozen=True, init=False)
class TrainConfig:
    """All settings of `imgclf train`; the CLI flags and config-file keys have these names (with - for _).

    A TrainConfig remembers which fields were given to it: only those count as your settings, so
    `TrainConfig(recipe="fast-1m", epochs=1)` keeps the recipe's values for everything else, and
    `TrainConfig(batch_size=256)` means 256 even though that is also the field's default. It is frozen: a run's
    settings are resolved once (`resolve`) and never change after (`dataclasses.replace` makes a changed copy).
    """

    # data
    data: str = "digits"
    data_dir: str | None = None
    images_root: str | None = None  # a CSV's paths are relative to this folder (None: the CSV's own folder)
    columns: str | None = None      # a CSV's FILE,LABEL[,SPLIT] or a Hugging Face dataset's IMAGE,LABEL columns
                                    # (None: found by name, and for hf: by type)
    image_size: int | None = None   # None: the images' own size (a folder of mixed sizes gets one chosen for it)
    resize: str = "crop"            # how an image meets image_size: crop (shorter side, centre) | squash | pad
    val_split: float = 0.1          # fraction of train held out to pick best.pt (0: best.pt = last epoch)
    test_split: float = 0.2         # for a folder without test/: fraction held out as the test split
    strict_images: bool = False
    download: bool = True
    normalize: str = "dataset"      # dataset (train mean/std) | half (mean 0.5, std 0.5 → [-1, 1], the tutorial's)
    # model
    model: str = "fastcnn-small"
    pretrained: bool = False        # start from the model's ImageNet weights (torchvision's files, torch.hub's cache)
    init_weights: str | None = None  # start from this state_dict or imgclf checkpoint (a new head if classes differ)
    freeze_epochs: int = 0          # train only the head for this many epochs, then the whole network
    linear_probe: bool = False      # epoch 1 fits the head on the frozen backbone's cached features (engine/probe.py);
                                    # the epochs after it fine-tune the whole network
    freeze_bn: bool = False         # keep BatchNorm's statistics as the starting weights have them (eval mode)
    backbone_lr_mult: float = 1.0   # the backbone's learning rate as a fraction of the head's (e.g. 0.1)
    # optimisation
    epochs: int = 10
    steps: int = 0                  # total optimizer steps, the last epoch cut short (0: epochs × steps per epoch)
    budget: str | None = None       # finish the whole command within this time (90s, 5m, 1h): plans `steps`, and on
                                    # 32×32 colour data the model and size (engine/budget.py)
    batch_size: int = 256
    lr: float = 0.05
    optimizer: str = "sgd"          # sgd | adamw | muon (SGD, hidden weights orthogonalised: optim.py)
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
    crop_scale: float = 0.0         # random-resized crop: each training image is a random crop of at least this
                                    # fraction of its area, aspect 3:4..4:3, resized back (0: off; photos 0.35)
    color_jitter: float = 0.0       # random brightness, contrast and saturation factors in [1-j, 1+j] (0: off)
    # progressive resizing (fastai's term): the first progressive_epochs epochs train on the images resized to
    # progressive_size (cheaper steps: on a CPU, pixels are time), the rest and all testing at full size
    progressive_size: int = 0       # 0 = off
    progressive_epochs: int = 0
    # evaluation
    ema: float = 0.0                # weight-averaging decay per step (0 = off); val/test use the averaged weights
    lookahead: bool = False         # airbench94's lookahead: every 5 steps pull toward slow weights (engine/ema.py)
    tta: bool = False               # test-time augmentation: average over the image and its mirror
    tta_shift: int = 0              # with tta, also over both translated by N pixels two ways (airbench: 1, 6 views)
    tta_mirror: bool | None = None  # whether tta's views include mirrors (None: only if training flipped)
    eval_every: int = 1             # validate every N epochs (the last epoch always)
    select: str = "val_accuracy"    # how best.pt is chosen on val: val_accuracy (ties: lower val loss, then the
                                    # later epoch) | val_loss (ties: higher val accuracy, then the later epoch)
    patience: int = 0               # stop after this many validations without a better one (0: never stop early)
    test_duplicates: str = "exclude"   # test images that repeat a train/val image: exclude (from the test figures,
                                       # which then also say the figure with them) | keep (data/duplicates.py)
    class_weights: str = "auto"     # none | balanced (loss weights n/(k·n_class)) | auto: balanced when the largest
                                    # class has at least IMBALANCE_RATIO times the images of the smallest
    # machine
    device: str = "auto"            # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"         # auto (engine/device.auto_precision: amp-bf16 where bf16 is native) | fp32 |
                                    # amp-bf16 | amp-fp16
    channels_last: bool | None = None  # None: on (CPU and CUDA), off on MPS
    compile: bool = False
    threads: int = 0                # torch CPU threads (0: the CPUs free, re-checked as it trains: machine.py)
    seed: int = 0
    # output
    out: str = "runs/train"
    name: str | None = None
    log_every: int = 0              # print the tutorial's running-loss line every N steps (0: off)
    save_every_steps: int = 0       # also write last.pt every N steps (0: only at epoch ends)
    plots: bool = True
    tensorboard: bool = False       # also write TensorBoard event files to RUN_DIR/tensorboard/ (imgclf[tensorboard])
    recipe: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __init__(self, **given: Any) -> None:
        unknown = sorted(set(given) - set(FIELDS))
        if unknown:
            raise TypeError(f"TrainConfig got unknown {plural('setting', len(unknown))} {', '.join(unknown)}")
        for f in dataclasses.fields(self):
            value = given[f.name] if f.name in given else (
                f.default if f.default is not dataclasses.MISSING else f.default_factory())   # type: ignore[misc]
            object.__setattr__(self, f.name, value)
        object.__setattr__(self, "_given", frozenset(given))

    def given(self) -> dict[str, Any]:
        """The fields that were given to the constructor (see the class docstring)."""
        return {k: getattr(self, k) for k in FIELDS if k in self._given}


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
CHOICES = {
    "optimizer": ("sgd", "adamw", "muon"), "schedule": ("constant", "onecycle", "cosine", "step"),
    "flip": ("none", "random", "alternate"), "normalize": ("dataset", "half"),
    "precision": ("auto", "fp32", "amp-bf16", "amp-fp16"), "select": ("val_accuracy", "val_loss"),
    "resize": ("crop", "squash", "pad"),
    "class_weights": ("auto", "none", "balanced"),
    "test_duplicates": ("exclude", "keep"),
}

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
            if value not in (True, False):   # 0/1 and True/False only: bool(5) or bool([]) would hide a typo
                raise ValueError("expected true or false")
            return bool(value)
        if isinstance(value, bool) and ftype.startswith(("int", "float")):   # YAML's yes/no: epochs: yes is 1
            raise ValueError("expected a number, not true/false")
        if ftype.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected a whole number")
            return int(value)
        if ftype.startswith("float"):
            return float(value)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"expected text, got a {type(value).__name__}")
        value = str(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}setting {key!r}: bad value {shown(value)} ({str(e)[:100]})") from None
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{where}setting {key!r}: {value!r} is not one of {', '.join(CHOICES[key])}")
    return value


# What a run's config.yaml records beyond its settings; ignored when that file is read back with --config.
RUN_RECORD_KEYS = ("imgclf_version", "torch_version", "device_name", "machine", "run_dir", "run_id", "data_identity")


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a settings file never needs them, and a "billion laughs" file built from
    them would expand to gigabytes before any check could run."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed in a settings file")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        twice = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
        if twice is not None:   # YAML's last-one-wins would drop the first value unsaid
            raise yaml.YAMLError(f"setting {shown(twice)} is given twice")
        return super().construct_mapping(node, deep=deep)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a YAML (.yaml/.yml) or TOML (.toml) file; keys are TrainConfig names (- or _)."""
    path = Path(path)
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.load(text, Loader=_NoAliasLoader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot parse config file ({str(e).splitlines()[0]})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of setting: value")
    bad = [k for k in raw if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{path}: setting names must be text, got {str(bad[0])[:40]!r}")
    return {k.replace("-", "_"): coerce(k.replace("-", "_"), v, f"{path}: ") for k, v in raw.items()
            if k.replace("-", "_") not in RUN_RECORD_KEYS}


# What a trained model computes in when used (eval, predict, api.load): 'run' as its run tested; or a --precision.
INFERENCE_PRECISIONS = ("run", "fp32", "auto", "amp-bf16", "amp-fp16")

LOAD_KEYS = ("data", "data_dir", "images_root", "columns", "image_size", "resize", "test_split", "seed",
             "strict_images", "download", "budget")
# Settings a resumed run may change: they do not alter the maths of the run (the data is checked to be the same).
RESUME_OVERRIDABLE = ("device", "threads", "log_every", "save_every_steps", "plots", "data_dir", "images_root")
ARITHMETIC_KEYS = ("device", "threads")   # of those, what changes the order of floating-point sums (resume says so)


def tta_mirrors(tta_mirror: bool | None, flip: str) -> bool:
    """Whether test-time augmentation mirrors: as --tta-mirror says (a data profile: photos are the same class
    mirrored, digits are not), else only if training flipped."""
    return bool(tta_mirror) if tta_mirror is not None else flip != "none"


def photos_layer(user: dict[str, Any], file: dict[str, Any] | None, plan: dict[str, Any] | None,
                 profile: str, weights_ready: bool) -> dict[str, Any]:
    """The data layer's photo default: a folder of photos (profile 'photos') whose settings name no model and no
    starting weights, and do not say --no-pretrained, starts from PRETRAINED_PHOTOS when its weights are installed."""
    if profile != "photos" or not weights_ready or not wants_pretrained_photos(user, file, plan):
        return {}
    if any(layer.get("freeze_epochs") for layer in (user, file or {})):   # your frozen-head epochs replace the probe
        return {k: v for k, v in PRETRAINED_PHOTOS.items() if k not in ("linear_probe", "epochs")}
    return dict(PRETRAINED_PHOTOS)


def wants_pretrained_photos(user: dict[str, Any], file: dict[str, Any] | None = None,
                            plan: dict[str, Any] | None = None) -> bool:
    """Whether the settings leave the photo default to choose the model: none named (by you, a config file, a
    recipe or a budget plan), no --init-weights, and not --no-pretrained."""
    recipe = RECIPES.get(user.get("recipe") or (file or {}).get("recipe") or "", {})
    named = (user, file or {}, recipe, plan or {})
    return not any("model" in layer or layer.get("init_weights") or layer.get("pretrained") is False
                   for layer in named)


def user_settings(given: TrainConfig | dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """Your settings as one checked dict: a TrainConfig's given fields or a dict, then keywords; None means unset."""
    base = given.given() if isinstance(given, TrainConfig) else dict(given or {})
    user = {k: coerce(k, v) for k, v in {**base, **more}.items() if v is not None}
    if user.get("steps") and "epochs" in user:   # steps would win and the epochs you gave be dropped unsaid
        raise ConfigError(f"--steps {user['steps']} and --epochs {user['epochs']} both set the run's length; give "
                          "one (--steps: total optimizer steps, the last epoch cut short)")
    length = "epochs" if "epochs" in user else "steps" if user.get("steps") else None
    if user.get("budget") and length:   # plan_budget's own check, here too so that --print-config makes it
        raise ConfigError(f"--budget plans the run's length itself; drop --{length} (or drop --budget)")
    return user


def layers(user: dict[str, Any], dataset_name: str, shape: tuple[int, int, int],
           file: dict[str, Any] | None = None, plan: dict[str, Any] | None = None, auto: dict[str, Any] | None = None
           ) -> list[tuple[str, dict[str, Any]]]:
    """The named layers of the module docstring, lowest first (empty ones left out). `auto`: the data layer, with
    its name under the key 'layer'."""
    auto = dict(auto or {})
    out = [("default", TrainConfig().to_dict()), (f"profile {profile_name(dataset_name, shape)}",
                                                  PROFILES[profile_name(dataset_name, shape)]),
           (f"data: {auto.pop('layer', 'chosen for this data')}", auto)]
    model = user.get("model") or (file or {}).get("model") or (plan or {}).get("model")
    if model in MODEL_DEFAULTS:
        out.append((f"model {model}", MODEL_DEFAULTS[model]))
    recipe = user.get("recipe") or (file or {}).get("recipe")
    if recipe:
        if recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
        out.append((f"recipe {recipe}", RECIPES[recipe]))
    if plan:
        out.append(("budget plan", plan))
    if file:
        out.append(("config file", file))
    out.append(("yours", user))
    return [(name, layer) for name, layer in out if layer]


def explain(user: dict[str, Any], dataset_name: str, shape: tuple[int, int, int],
            file: dict[str, Any] | None = None, plan: dict[str, Any] | None = None, auto: dict[str, Any] | None = None,
            fit: DataFit | None = None) -> dict[str, tuple[Any, str]]:
    """Each resolved setting with the layer it came from: {key: (value, layer name)}."""
    cfg = resolve(user, dataset_name, shape, file, plan, auto, fit)
    source = {}
    named = layers(user, dataset_name, shape, file, plan, auto)
    for name, layer in named:
        source.update(dict.fromkeys(layer, name))
    scaled = _batch_scaled_lr(named)
    if scaled is not None:
        source["lr"] += f", scaled to batch {cfg.batch_size} from {scaled[1]}"
    unfitted = resolve(user, dataset_name, shape, file, plan, auto)
    if cfg.batch_size != unfitted.batch_size and fit is not None:
        source["batch_size"] += f", {unfitted.batch_size} fitted to {fit.n_train} training images"
    if cfg.epochs != unfitted.epochs:
        source["epochs"] = f"from steps {cfg.steps} ({source['steps']})"
    return {k: (v, source[k]) for k, v in cfg.to_dict().items()}


def _batch_scaled_lr(named: list[tuple[str, dict[str, Any]]]) -> tuple[float, int] | None:
    """When you set the batch size (flag or config file) but not the learning rate, the lr the lower layers (defaults,
    profile, model, recipe, budget) run with is scaled from their batch size to yours: linearly for SGD (the same
    decay and progress per example) and Muon (whose --lr is its SGD groups'), by the square root for AdamW. Returns
    (scaled lr, their batch size), or None when nothing scales."""
    mine = ("config file", "yours")
    base: dict[str, Any] = {}
    for name, layer in named:
        if name not in mine:
            base.update(layer)
    yours = {k: v for name, layer in named if name in mine for k, v in layer.items()}
    merged = {**base, **yours}
    if "lr" in yours or "batch_size" not in yours or yours["batch_size"] == base["batch_size"]:
        return None
    ratio = yours["batch_size"] / base["batch_size"]
    return float(merged["lr"]) * (ratio if merged["optimizer"] != "adamw" else ratio ** 0.5), base["batch_size"]


@dataclass(frozen=True)
class DataFit:
    """What `resolve` fits to the data once its splits are known: the training images, and the processes they are
    shared among (torchrun's world size)."""

    n_train: int
    world_size: int = 1


MIN_STEPS_PER_EPOCH = 8   # a smaller training split gets a smaller batch (unless you set --batch-size)


def steps_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Training steps in an epoch of `n` images: each process's shard in batches, a last partial batch kept unless
    it is small (under 5% of the shard, or one image, which BatchNorm cannot normalize). data/batches.Batches
    iterates exactly these."""
    per_rank = n // world_size
    return per_rank // batch_size if per_rank % batch_size < max(2, 0.05 * per_rank) else -(-per_rank // batch_size)


def resolve(user: dict[str, Any], dataset_name: str, shape: tuple[int, int, int],
            file: dict[str, Any] | None = None, plan: dict[str, Any] | None = None, auto: dict[str, Any] | None = None,
            fit: DataFit | None = None) -> TrainConfig:
    """The run's settings: the layers of the module docstring merged in order, fitted to the training split (`fit`),
    type-checked and range-checked."""
    merged: dict[str, Any] = {}
    named = layers(user, dataset_name, shape, file, plan, auto)
    for _, layer in named:
        merged.update(layer)
    scaled = _batch_scaled_lr(named)
    if scaled is not None:
        merged["lr"] = scaled[0]
    cfg = TrainConfig(**{k: coerce(k, v) for k, v in merged.items()})
    validate(cfg, shape)
    if fit is not None:
        cfg = _fit_to_data(cfg, fit, batch_given="batch_size" in {**(file or {}), **user})
        validate(cfg, shape)
    return cfg


def _fit_to_data(cfg: TrainConfig, fit: DataFit, batch_given: bool) -> TrainConfig:
    """`cfg` with the batch size for a small training split (module docstring) and the epochs of a length in
    steps."""
    batch, epochs = cfg.batch_size, cfg.epochs
    if not batch_given and fit.n_train // batch < MIN_STEPS_PER_EPOCH:
        batch = min(batch, max(2, fit.n_train // MIN_STEPS_PER_EPOCH))
    if batch > fit.n_train // fit.world_size:
        raise ConfigError(f"--batch-size {batch} is larger than the {fit.n_train} training images"
                          + (f" shared by {fit.world_size} processes" if fit.world_size > 1 else ""))
    if cfg.steps:
        per_epoch = steps_per_epoch(fit.n_train, batch, fit.world_size)
        epochs = math.ceil(cfg.steps / per_epoch) + int(cfg.linear_probe)   # the probe's epoch takes no steps
        for key in ("freeze_epochs", "progressive_epochs"):
            if getattr(cfg, key) > epochs:
                flag = "--" + key.replace("_", "-")
                planned = ", as --budget planned" if cfg.budget else ""
                raise ConfigError(f"{flag} {getattr(cfg, key)} is more than the {counted(epochs, 'epoch')} of the "
                                  f"run's {cfg.steps:,} steps ({per_epoch:,} an epoch{planned}); give a smaller "
                                  f"{flag}, or more steps")
    return dataclasses.replace(cfg, batch_size=batch, epochs=epochs)


def load_settings(user: dict[str, Any], file: dict[str, Any] | None = None, plan: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The settings that say how to load the data (LOAD_KEYS), resolved before the dataset is known: the
    profile and model layers never set them, so this agrees with `resolve` once the data is loaded."""
    merged = {k: v for k, v in TrainConfig().to_dict().items() if k in LOAD_KEYS}
    recipe = user.get("recipe") or (file or {}).get("recipe")
    for layer in (RECIPES.get(recipe or "", {}), plan or {}, file or {}, user):
        merged.update({k: v for k, v in layer.items() if k in LOAD_KEYS})
    validate(TrainConfig(**merged))   # before any loading: --image-size 100000 must not allocate first
    return merged


def resume_settings(saved: dict[str, Any], user: dict[str, Any], where: str) -> dict[str, Any]:
    """A resumed run's settings: the checkpoint's, with only RESUME_OVERRIDABLE changed by `user`; any other
    setting given with a different value is an error naming it (the run would no longer be the same run)."""
    lengthened = "epochs" in user and user["epochs"] != saved.get("epochs")
    if lengthened:
        check_lengthening(saved, user["epochs"], where)
    changed = sorted(k for k, v in user.items() if k not in RESUME_OVERRIDABLE and saved.get(k) != v
                     and not (k == "epochs" and lengthened))
    if changed:
        listing = ", ".join(f"--{k.replace('_', '-')} {user[k]!r} (run: {saved.get(k)!r})" for k in changed)
        raise ConfigError(f"{where}: a resumed run keeps its settings, but {listing} differ; on resume only "
                          f"{', '.join('--' + k.replace('_', '-') for k in RESUME_OVERRIDABLE)} may change (and "
                          "--epochs grow, where that is exact). To train with other settings, start a new run")
    for key in ARITHMETIC_KEYS:
        if key in user and user[key] != saved.get(key):
            warnings.warn(f"--{key} {user[key]} (the run: {saved.get(key)}): the rest of the run adds its numbers in "
                          "another order, so its figures will differ slightly from those of the run uninterrupted",
                          stacklevel=2)
    return {**saved, **{k: v for k, v in user.items() if k in RESUME_OVERRIDABLE or (k == "epochs" and lengthened)}}


def check_lengthening(saved: dict[str, Any], epochs: Any, where: str) -> None:
    """A resume may give a run more epochs only where the result is exactly that of a run given them from the start:
    no step so far may depend on the run's length. The learning rate does unless the schedule is constant (and its
    warm-up ended within the run so far), as do lookahead's pull, a length in steps or planned by a budget, early
    stopping (patience: the run's last epoch was never allowed to stop it) and validation every N epochs (the last
    epoch is always validated). Anything else is a ConfigError naming what prevents it."""
    old = saved.get("epochs")
    if not isinstance(epochs, int) or not isinstance(old, int) or epochs < old:
        raise ConfigError(f"{where}: --epochs {epochs} (run: {old}): a resumed run keeps its epochs or is given more "
                          "(the new total, above the run's); it cannot be shortened")
    done = old - int(bool(saved.get("linear_probe")))   # the epochs with steps (the probe's takes none)
    reasons = [why for bad, why in (
        (saved.get("schedule") != "constant", f"its --schedule {saved.get('schedule')} sets each step's learning "
                                              "rate from the run's total steps"),
        (float(saved.get("warmup") or 0) > done, f"its --warmup {saved.get('warmup')} (epochs) is longer than the "
                                                 f"{counted(done, 'epoch')} so far, so it was cut to fit them"),
        (bool(saved.get("steps")), f"its length is --steps {saved.get('steps')}"),
        (bool(saved.get("budget")), f"its length was planned by --budget {saved.get('budget')}"),
        (bool(saved.get("lookahead")), "--lookahead pulls toward its slow weights by the fraction of the run done"),
        (bool(saved.get("patience")), f"with --patience {saved.get('patience')} its last epoch could not stop it "
                                      "early, where a longer run's could"),
        (old % int(saved.get("eval_every") or 1) != 0, f"with --eval-every {saved.get('eval_every')} its last "
                                                       f"epoch ({old}) was validated, where a longer run's is not"),
    ) if bad]
    if reasons:
        raise ConfigError(f"{where}: --epochs {epochs} (run: {old}): the run cannot be lengthened exactly: "
                          f"{'; '.join(reasons)}. To train further, start a new run from its weights with "
                          f"--init-weights {where} (a new schedule)")


def default_text(key: str, shown: str | None = None) -> str:
    """What a flag's default is, for --help: the field default (or `shown`, say what a None default means), and
    the per-dataset/model values that replace it."""
    by_profile = [f"{name} {p[key]}" for name, p in PROFILES.items() if key in p]
    by_model = [f"{name} {d[key]}" for name, d in MODEL_DEFAULTS.items() if key in d]
    text = f"default: {FIELDS[key].default if shown is None else shown}"
    if by_profile:
        text += f"; by data: {', '.join(by_profile)}"
    if by_model:
        text += f"; by model: {', '.join(by_model)}"
    return text


LIMIT = 1e4   # the largest lr, weight decay or warm-up (epochs) a run takes: 1e308 overflowed float arithmetic
IMAGE_SIZES = (4, 2048)   # --image-size: below 4 no model has a feature map left; above, memory runs out first


def check_image_size(size: Any, flag: str = "--image-size") -> None:
    """An image size given to any command (N or (H, W)): unset, or whole numbers in IMAGE_SIZES."""
    sizes = size if isinstance(size, (tuple, list)) else (size,)
    if size is not None and not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                    and IMAGE_SIZES[0] <= v <= IMAGE_SIZES[1] for v in sizes):
        raise ConfigError(f"{flag} {shown(size)}: must be unset or in [{IMAGE_SIZES[0]}, {IMAGE_SIZES[1]}]")


def validate(cfg: TrainConfig, shape: tuple[int, int, int] | None = None) -> None:
    """Range checks that a type alone cannot express; with the data's (C, H, W) `shape`, also the augmentations
    that must fit inside an image."""
    lo, hi = IMAGE_SIZES
    checks = [("epochs", cfg.epochs >= 1, "at least 1"), ("steps", cfg.steps >= 0, "≥ 0 (0: epochs × steps/epoch)"),
              ("budget", cfg.budget is None or budget_ok(cfg.budget),
               "a time such as 90s, 5m or 1h (at least 10s, at most a week)"),
              ("batch_size", cfg.batch_size >= 1, "at least 1"),
              ("image_size", cfg.image_size is None or lo <= cfg.image_size <= hi, f"unset or in [{lo}, {hi}]"),
              ("threads", 0 <= cfg.threads <= 1024, "in [0, 1024] (0: the CPUs other processes leave free)"),
              ("seed", 0 <= cfg.seed < 2**63, "in [0, 2**63)"),
              ("lr", 0 < cfg.lr <= LIMIT, f"positive, at most {LIMIT:g}"), ("patience", cfg.patience >= 0, "≥ 0"),
              ("freeze_epochs", 0 <= cfg.freeze_epochs <= cfg.epochs, "in [0, epochs]"),
              ("linear_probe", not cfg.linear_probe or cfg.pretrained or bool(cfg.init_weights),
               "used with --pretrained or --init-weights (it fits a head on the starting weights' features)"),
              ("linear_probe", not (cfg.linear_probe and cfg.freeze_epochs), "off with --freeze-epochs (the probe "
               "is epoch 1's frozen head)"),
              ("backbone_lr_mult", 0 <= cfg.backbone_lr_mult <= 1, "in [0, 1]"),
              ("val_split", 0 <= cfg.val_split < 1, "in [0, 1)"),
              ("test_split", 0 < cfg.test_split < 1, "in (0, 1)"), ("ema", 0 <= cfg.ema < 1, "in [0, 1)"),
              ("label_smoothing", 0 <= cfg.label_smoothing < 1, "in [0, 1)"), ("warmup", cfg.warmup >= 0, "≥ 0"),
              ("crop_pad", cfg.crop_pad >= 0, "≥ 0"),
              ("tta_shift", 0 <= cfg.tta_shift <= 4, "in [0, 4]"), ("cutout", cfg.cutout >= 0, "≥ 0"),
              ("crop_scale", 0 <= cfg.crop_scale <= 1, "in [0, 1]"), ("color_jitter", 0 <= cfg.color_jitter < 1,
                                                                      "in [0, 1)"),
              ("eval_every", cfg.eval_every >= 1, "at least 1"),
              ("progressive_size", cfg.progressive_size == 0 or 8 <= cfg.progressive_size <= hi,
               f"0 (off) or in [8, {hi}]"),
              ("progressive_epochs", 0 <= cfg.progressive_epochs <= cfg.epochs, "in [0, epochs]"),
              ("momentum", 0 <= cfg.momentum < 1, "in [0, 1)"),
              ("weight_decay", 0 <= cfg.weight_decay <= LIMIT, f"in [0, {LIMIT:g}]"),
              ("warmup", cfg.warmup <= LIMIT, f"at most {LIMIT:g} epochs"),
              ("log_every", cfg.log_every >= 0, "≥ 0 (0: off)"),
              ("save_every_steps", cfg.save_every_steps >= 0, "≥ 0 (0: only at epoch ends)")]
    if shape is not None:
        side = min(shape[1:])
        checks += [("crop_pad", cfg.crop_pad < side, f"below the images' side ({side} px)"),
                   ("cutout", cfg.cutout <= side, f"at most the images' side ({side} px)")]
    for key, ok, want in checks:
        if not ok:
            raise ConfigError(f"setting {key!r} must be {want}, got {shown(getattr(cfg, key))}")


def budget_seconds(text: str) -> float:
    """'90s', '5m', '1.5m', '1h' or a bare number of seconds → seconds (ValueError otherwise)."""
    text = str(text).strip().lower()
    unit = {"s": 1, "m": 60, "h": 3600}.get(text[-1:])
    value = float(text[:-1] if unit else text) * (unit or 1)
    if not math.isfinite(value):
        raise ValueError(f"not a finite time: {text!r}")
    return value


MAX_BUDGET_S = 7 * 24 * 3600   # a week: 1e308 s was accepted, and its calibration (1% a candidate) never ended


def budget_ok(text: str) -> bool:
    try:
        return 10 <= budget_seconds(text) <= MAX_BUDGET_S
    except ValueError:
        return False


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(json.loads(json.dumps(data)), sort_keys=False)


__all__ = ["FIELDS", "DataFit", "TrainConfig", "coerce", "explain", "read_config_file", "resolve", "user_settings"]
