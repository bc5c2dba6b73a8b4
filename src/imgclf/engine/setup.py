"""Everything a run needs before its first step, built in one place: settings → data → device and precision →
model, optimizer, EMA → batches → (for `train`) the state restored from a checkpoint and the run folder.
`imgclf train`, `imgclf find-lr` and the benchmarks all build their runs here."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..config import TrainConfig, explain, load_settings, resolve, resume_settings
from ..data import Dataset, channel_stats, load_dataset
from ..data.augment import Augment
from ..data.batches import Batches, Normalizer
from ..data.images import resize_images
from ..data.split import Split, hold_out_val
from ..errors import ImgclfError
from ..models import arch_args, build_model, pretrained
from ..report.run_dir import new_run_dir
from ..report.tensorboard import TensorBoardLog
from ..report.tensorboard import require as require_tensorboard
from . import distributed as dist
from .checkpoint import FORMAT_VERSION, arch_of, load_checkpoint, load_model_state, save_checkpoint
from .device import Precision, pick_device, pick_precision
from .ema import EMA
from .optim import SGD
from .schedule import lr_at


@dataclass
class Progress:
    """Where a run is: what a checkpoint must hold (besides weights) for a resume to continue exactly."""

    epoch: int = 0                  # epochs completed
    step_in_epoch: int = 0          # steps done in the current epoch (mid-epoch saves)
    global_step: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)   # one row per epoch (metrics.csv)
    train_seconds: float = 0.0
    epoch_sums: list[float | int] | None = None                    # EpochTotals.saved() of a mid-epoch save
    stopped_early: bool = False                                    # --patience ended the run before cfg.epochs

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Run:
    """A training run, ready to step: the resolved settings and everything built from them."""

    cfg: TrainConfig
    data: Dataset
    world: dist.World
    device: torch.device
    prec: Precision
    mean: list[float]
    std: list[float]
    norm: Normalizer
    model: torch.nn.Module
    step_model: torch.nn.Module     # the model as stepped: wrapped by DistributedDataParallel or torch.compile
    opt: torch.optim.Optimizer
    ema: EMA | None
    batches: Batches
    small_batches: Batches | None   # progressive resizing: the same images and order, smaller
    class_weights: torch.Tensor | None = None   # per-class loss weights (--class-weights), on the device
    progress: Progress = field(default_factory=Progress)
    run_dir: Path | None = None
    resumed: bool = False
    tensorboard: TensorBoardLog | None = None   # --tensorboard, rank 0 only

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batches)

    @property
    def total_steps(self) -> int:
        return self.cfg.epochs * self.steps_per_epoch

    @property
    def eval_model(self) -> torch.nn.Module:
        """What validation and testing run: the weight average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def lr(self, step: int) -> float:
        warmup = min(self.total_steps, round(self.cfg.warmup * self.steps_per_epoch))
        return lr_at(step, self.total_steps, self.cfg.lr, self.cfg.schedule, warmup)

    def batches_for(self, epoch: int) -> Batches:
        small = self.small_batches is not None and epoch < self.cfg.progressive_epochs
        return self.small_batches if small else self.batches

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint: a plain dict of tensors and Python values (read back by `restore` and `api.load`)."""
        c, h, w = self.data.shape
        return {
            "format_version": FORMAT_VERSION, "imgclf_version": __version__,
            "model_name": self.cfg.model,
            "model_args": {"in_channels": c, "num_classes": self.data.num_classes, "image_size": [h, w],
                           **arch_args(self.model)},
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.opt.state_dict(),
            "scaler": self.prec.scaler.state_dict() if self.prec.scaler.is_enabled() else None,
            **self.progress.as_dict(),
            "config": self.cfg.to_dict(), "classes": self.data.classes, "dataset": self.data.name,
            "normalization": {"mean": list(self.mean), "std": list(self.std)}, "tta": self.cfg.tta,
            "channels_last": self.prec.channels_last,
        }

    def save(self, name: str) -> None:
        """Write RUN_DIR/name.pt (rank 0 only; atomically)."""
        if self.world.is_main and self.run_dir is not None:
            save_checkpoint(self.checkpoint(), self.run_dir / f"{name}.pt")

    def restore(self, ckpt: dict[str, Any], where: str) -> None:
        """Continue exactly where `ckpt` left off: weights, optimizer, EMA, grad scaler and progress."""
        load_model_state(self.model, ckpt["model"], where, self.cfg.model)
        self.opt.load_state_dict(ckpt["optimizer"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])
        if ckpt.get("scaler"):
            self.prec.scaler.load_state_dict(ckpt["scaler"])
        self.progress = Progress(**{k: ckpt[k] for k in Progress.__dataclass_fields__ if k in ckpt})
        self.resumed = True


def setup_run(user: dict[str, Any], file: dict[str, Any] | None = None, resume: str | Path | None = None,
              quiet: bool = False) -> Run:
    """A run for `imgclf train`: new (settings `file` < `user`, see config.py), or continued from `resume`."""
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        if ckpt.get("format_version", 0) < 1 or "optimizer" not in ckpt:
            raise ImgclfError(f"{resume}: a bare state_dict holds no optimizer or progress; --resume needs a "
                              "last.pt written by imgclf train (to evaluate or predict with it, use imgclf eval / "
                              "predict with --model)")
        user, file = resume_settings(ckpt["config"], {**(file or {}), **user}, str(resume)), None
    run = build_run(user, file, quiet, ckpt)
    logs_tensorboard = run.cfg.tensorboard and run.world.is_main
    if logs_tensorboard:
        require_tensorboard()  # not installed: a one-line error before a run folder is made
    if ckpt is not None:
        run.restore(ckpt, str(resume))
        run.run_dir = Path(resume).parent
    elif run.world.is_main:
        run.run_dir = new_run_dir(run.cfg.out, run.cfg.name or f"{run.data.name}-{run.cfg.model}")
    else:
        run.run_dir = Path(run.cfg.out)
    if logs_tensorboard:
        run.tensorboard = TensorBoardLog(run.run_dir, run.cfg.to_dict(), run.progress.epoch)
    return run


def describe_settings(user: dict[str, Any], file: dict[str, Any] | None = None, resume: str | Path | None = None
                      ) -> str:
    """`imgclf train --print-config`: the resolved settings for this data, one `key: value  # layer` line each
    (the layers of config.py); loads the data (to choose its profile) but builds and trains nothing."""
    if resume is not None:
        user, file = resume_settings(load_checkpoint(resume)["config"], {**(file or {}), **user}, str(resume)), None
    data, _ = load_data(user, file, quiet=True)
    c, h, w = data.shape
    lines = [f"# {data.name}: {len(data.train):,} train images of {c}×{h}×{w}, {data.num_classes} classes"]
    for key, (value, layer) in explain(user, data.name, data.shape, file).items():
        lines.append(f"{key}: {json.dumps(value)}  # {layer}")
    return "\n".join(lines)


def build_run(user: dict[str, Any], file: dict[str, Any] | None = None, quiet: bool = False,
              ckpt: dict[str, Any] | None = None) -> Run:
    """Load the data, resolve the settings for it and build model, optimizer, EMA and batches (fresh weights
    unless `ckpt` is given, whose normalization and architecture are then kept)."""
    world = dist.setup()
    if user.get("threads"):
        torch.set_num_threads(int(user["threads"]))
    data, cfg = load_data(user, file, quiet)
    if "batch_size" not in {**(file or {}), **user}:
        adapt_batch_size(cfg, data)
    data.notes += val_noise_note(data)
    device = pick_device(cfg.device) if world.size == 1 else world.device
    prec = pick_precision(cfg, device)
    mean, std = ((ckpt["normalization"]["mean"], ckpt["normalization"]["std"]) if ckpt is not None
                 else normalization(cfg, data))
    start = StartingWeights(cfg, data.shape[0]) if ckpt is None else None
    if start is not None and start.normalization is not None:
        mean, std = start.normalization
    norm = Normalizer(mean, std, device, channels_last=prec.channels_last)
    model = make_model(cfg, data, mean, std, device, prec.channels_last, init=ckpt is None,
                       arch=arch_of(ckpt) if ckpt is not None else None, start=start)
    batches, small = make_batches(cfg, data, norm, device, world)
    if small is not None:
        check_takes_size(model, data.shape[0], cfg, device, prec.channels_last)
    if world.size > 1:
        step_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=cfg.freeze_epochs > 0)  # a frozen backbone has no gradients
    else:
        step_model = torch.compile(model) if cfg.compile else model
    return Run(cfg, data, world, device, prec, list(mean), list(std), norm, model, step_model,
               make_optimizer(cfg, model), EMA(model, cfg.ema) if cfg.ema > 0 else None, batches, small,
               class_weights(cfg, data, device))


def load_data(user: dict[str, Any], file: dict[str, Any] | None = None, quiet: bool = False
              ) -> tuple[Dataset, TrainConfig]:
    """Load the data the settings name, resolve the settings for that data, hold out val as they say."""
    how = load_settings(user, file)
    data = load_dataset(how["data"], how["data_dir"], download_missing=how["download"], image_size=how["image_size"],
                        test_split=how["test_split"], seed=how["seed"], strict_images=how["strict_images"],
                        quiet=quiet, resize=how["resize"], auto_size_cap=auto_size_cap(user.get("device", "auto")))
    cfg = resolve(user, data.name, data.shape, file)
    if data.auto_size:
        cfg.image_size = data.auto_size   # recorded, so eval, predict and --resume load at the same size
    return hold_out_val(data, cfg.val_split, cfg.seed), cfg


MIN_STEPS_PER_EPOCH = 8   # a smaller dataset gets a smaller batch (unless you set --batch-size)
IMBALANCE_RATIO = 3.0     # largest / smallest class from which imgclf warns and (--class-weights auto) reweights


def adapt_batch_size(cfg: TrainConfig, data: Dataset) -> None:
    """Give a small training split at least MIN_STEPS_PER_EPOCH optimizer steps per epoch: the profile's batch
    size is for datasets of thousands of images (a folder of 100 images at batch 64 would take 1 step)."""
    n = len(data.train)
    if n // cfg.batch_size < MIN_STEPS_PER_EPOCH:
        smaller = max(2, n // MIN_STEPS_PER_EPOCH)
        if smaller < cfg.batch_size:
            data.notes.append(f"batch {cfg.batch_size} → {smaller}: {n} training images give "
                              f"{max(1, n // smaller)} steps per epoch (set --batch-size to choose)")
            cfg.batch_size = smaller


def val_noise_note(data: Dataset) -> list[str]:
    """A val split under a few hundred images measures accuracy coarsely: say by how much."""
    n = len(data.val) if data.val is not None else 0
    if not 0 < n < 500:
        return []
    return [f"val split of {n} images: one image is {100 / n:.2f} points of val accuracy (at 90% the 95% interval "
            f"is ±{196 * (0.09 / n) ** 0.5:.1f} points); epochs that differ by less are a tie"]


def class_weights(cfg: TrainConfig, data: Dataset, device: torch.device) -> torch.Tensor | None:
    """Loss weights n/(k·n_class) for --class-weights balanced, or for auto when the largest class has at least
    IMBALANCE_RATIO times the images of the smallest (then also a warning naming them); None otherwise."""
    counts = torch.bincount(data.train.labels, minlength=data.num_classes).double()
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if len(present) else 1.0
    balance = cfg.class_weights == "balanced" or (cfg.class_weights == "auto" and ratio >= IMBALANCE_RATIO)
    if ratio >= IMBALANCE_RATIO:
        hi, lo = int(counts.argmax()), int(torch.where(counts > 0, counts, math.inf).argmin())
        warnings.warn(f"imbalanced classes: {data.classes[hi]!r} has {int(counts[hi])} training images, "
                      f"{data.classes[lo]!r} {int(counts[lo])} ({ratio:.0f}×); "
                      + ("the loss weighs classes equally (--class-weights none to turn off)" if balance else
                         "--class-weights none: the loss favours the large classes")
                      + "; balanced accuracy and macro-F1 are reported beside accuracy", stacklevel=2)
    if not balance:
        return None
    weights = torch.where(counts > 0, counts.sum() / (len(present) * counts.clamp_min(1)), torch.zeros_like(counts))
    data.notes.append("loss weights per class: " + ", ".join(f"{c} {w:.2f}" for c, w in zip(data.classes, weights)))
    return weights.float().to(device)


def auto_size_cap(device: str) -> int:
    """The largest size chosen automatically for a folder of mixed sizes: on a CPU a step costs about its
    pixels, so 64 (benchmarks/RESULTS.md has images/s by size); on a CUDA GPU 224, the ImageNet size."""
    gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return 224 if gpu else 64


def normalization(cfg: TrainConfig, data: Dataset) -> tuple[list[float], list[float]]:
    """Per-channel mean/std: the training split's own (computed once, stored in every checkpoint) or 0.5/0.5."""
    if cfg.normalize == "half":
        return [0.5] * data.shape[0], [0.5] * data.shape[0]
    return channel_stats(data.train.images)


class StartingWeights:
    """Where a new run's weights start: ImageNet weights (--pretrained) or a file (--init-weights), with the
    normalization they were trained with; neither: None everywhere (random initialization)."""

    def __init__(self, cfg: TrainConfig, channels: int) -> None:
        self.state: dict[str, Any] | None = None
        self.where, self.normalization = "", None
        if cfg.pretrained and cfg.init_weights:
            raise ImgclfError("--pretrained and --init-weights both name starting weights; pass one of them")
        if cfg.pretrained:
            self.where = pretrained.weights_url(cfg.model)
            self.state = pretrained.pretrained_state(cfg.model)
            self.normalization = pretrained.pretrained_normalization(channels)
        elif cfg.init_weights:
            self.where = cfg.init_weights
            self.state = pretrained.read_weights(cfg.init_weights)
            self.normalization = pretrained.normalization_of(self.state, channels)

    def load_into(self, model: torch.nn.Module) -> list[str]:
        """Copy the weights in (a new head where the class count differs); notes for the run header."""
        if self.state is None:
            return []
        notes = pretrained.init_from_state(model, self.state, self.where)
        mean = ", ".join(f"{m:.3f}" for m in self.normalization[0])
        return [*notes, f"normalization of the starting weights: mean {mean}"]


def make_model(cfg: TrainConfig, data: Dataset, mean: list[float], std: list[float], device: torch.device,
               channels_last: bool, init: bool = True, arch: dict[str, Any] | None = None,
               start: StartingWeights | None = None) -> torch.nn.Module:
    """Build cfg.model for this data (seeded), let it see the data if it wants to (whitening), copy in starting
    weights if any, move it. `arch`: architecture settings from a checkpoint being resumed (they win)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.shape[0], data.num_classes, data.shape[1:], **(arch or {}))
    if init and hasattr(model, "init_from_data"):
        pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(cfg.seed))[:5000]
        model.init_from_data(Normalizer(mean, std, "cpu")(data.train.images[pick]))
    if start is not None:
        data.notes += start.load_into(model)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD (ours, see optim.py) or AdamW; weight decay on weights only, not on biases and norm shifts."""
    if cfg.backbone_lr_mult != 1.0:   # discriminative rates: the backbone's groups carry lr_mult (step.set_lr)
        groups = pretrained.param_groups(model, cfg.weight_decay, cfg.backbone_lr_mult)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def augment_for(cfg: TrainConfig) -> Augment:
    """The training augmentation the settings ask for (what `imgclf show --augmented` draws too)."""
    return Augment(cfg.crop_pad, cfg.flip, cfg.cutout, cfg.crop_scale, cfg.color_jitter)


def augmented_batch(cfg: TrainConfig, data: Dataset, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` images of epoch 1's first training batch as training sees them, augmented, uint8 (for a
    look: `imgclf show --augmented` and the run folder's plots/train_batch.png)."""
    c = data.shape[0]
    b = Batches(data.train, max(1, min(n, len(data.train))), Normalizer([0.0] * c, [1.0] * c, "cpu"), train=True,
                augment=augment_for(cfg), seed=cfg.seed)
    return next(b.epoch(0, normalized=False))


def make_batches(cfg: TrainConfig, data: Dataset, norm: Normalizer, device: torch.device, world: dist.World
                 ) -> tuple[Batches, Batches | None]:
    """The shuffled, augmented training batches, and (progressive resizing) the same at the small size."""
    augment = augment_for(cfg)

    def shuffled(split: Split) -> Batches:
        return Batches(split, cfg.batch_size, norm, train=True, augment=augment, seed=cfg.seed, device=device,
                       rank=world.rank, world_size=world.size)

    batches = shuffled(data.train)
    if len(batches) == 0 or cfg.batch_size > len(data.train):
        raise ImgclfError(f"--batch-size {cfg.batch_size} is larger than the {len(data.train)} training images")
    small = None
    if cfg.progressive_size and cfg.progressive_epochs:
        size = (cfg.progressive_size, cfg.progressive_size)
        small = shuffled(Split(resize_images(data.train.images, size), data.train.labels, "train"))
    return batches, small


@torch.no_grad()
def check_takes_size(model: torch.nn.Module, channels: int, cfg: TrainConfig, device: torch.device,
                     channels_last: bool) -> None:
    """Progressive resizing needs a net that accepts any input size (global pooling), not a fixed flatten."""
    x = torch.zeros(2, channels, cfg.progressive_size, cfg.progressive_size, device=device)
    model.eval()
    try:
        model(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    except RuntimeError:
        raise ImgclfError(f"--model {cfg.model} only takes images of its full size, so --progressive-size "
                          f"{cfg.progressive_size} cannot work; use a fastcnn or resnet18 model, or "
                          "--progressive-size 0") from None
    finally:
        model.train()
