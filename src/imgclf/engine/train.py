"""The training loop, readable top to bottom: data → model → optimizer → epochs of steps → checkpoints → test.

Every random draw in a step is a function of (seed, epoch, step) and the learning rate a function of the step,
so `--resume` from any checkpoint (epoch end or mid-epoch) replays the rest of the run exactly.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import __version__
from ..config import RECIPES, TrainConfig, resolve
from ..data import Dataset, channel_stats, load_dataset
from ..data.batches import Augment, Batches, Normalizer
from ..data.registry import hold_out_val, resize_split_images
from ..data.split import Split
from ..errors import ImgclfError
from ..models import arch_args, build_model, count_parameters
from ..report import console
from ..report.run_dir import new_run_dir, write_config, write_metrics, write_summary
from . import distributed as dist
from .checkpoint import FORMAT_VERSION, arch_of, load_checkpoint, load_model_state, save_checkpoint
from .ema import EMA
from .evaluate import metrics_from_logits, predict_logits
from .optim import SGD
from .schedule import lr_at
from .setup import pick_device, pick_precision

# Settings a resumed run may change (they do not alter the maths of the run).
RESUME_OVERRIDABLE = {"device", "threads", "log_every", "save_every_steps", "plots", "data_dir"}


class TrainingStopped(ImgclfError):
    """Raised after a signal: the run was saved and can be resumed; `exit_code` is what the CLI returns."""

    exit_code = 130


class NonFiniteLoss(ImgclfError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def normalization(cfg: TrainConfig, data: Dataset) -> tuple[list[float], list[float]]:
    """Per-channel mean/std: the training split's own (computed once, stored in every checkpoint) or 0.5/0.5."""
    if cfg.normalize == "half":
        return [0.5] * data.shape[0], [0.5] * data.shape[0]
    return channel_stats(data.train.images)


def prepare_data(cfg: TrainConfig, quiet: bool = False) -> Dataset:
    """The dataset without a val hold-out (that needs the resolved config: see hold_out_val)."""
    return load_dataset(cfg.data, cfg.data_dir, download_missing=cfg.download, image_size=cfg.image_size,
                        test_split=cfg.test_split, seed=cfg.seed, strict_images=cfg.strict_images, quiet=quiet)


def make_model(cfg: TrainConfig, data: Dataset, mean: list[float], std: list[float], device: torch.device,
               channels_last: bool, init: bool = True, arch: dict[str, Any] | None = None) -> torch.nn.Module:
    """Build cfg.model for this data (seeded), let it see the data if it wants to (whitening), move it.
    `arch`: architecture settings from a checkpoint being resumed (they win over the registry's)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.shape[0], data.num_classes, data.shape[1:], **(arch or {}))
    if init and hasattr(model, "init_from_data"):
        pick = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(cfg.seed))[:5000]
        model.init_from_data(Normalizer(mean, std, "cpu")(data.train.images[pick]))
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> SGD | torch.optim.Optimizer:
    """SGD (ours, see optim.py) or AdamW; weight decay on weights only, not on biases and norm shifts."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def data_and_config(user: dict[str, Any], quiet: bool) -> tuple[Dataset, TrainConfig]:
    """Load the data named in `user`, resolve the settings for it, hold out val as the settings say."""
    load_keys = ("data", "data_dir", "image_size", "test_split", "seed", "strict_images", "download")
    recipe = RECIPES.get(user.get("recipe") or "", {})
    probe = TrainConfig(**{k: v for k, v in {**recipe, **user}.items() if k in load_keys})
    data = prepare_data(probe, quiet)
    cfg = resolve(user, data.name, data.shape)
    if cfg.image_size != probe.image_size:  # a recipe chose the resolution (fast-1m trains at 24×24): load at it
        data = prepare_data(cfg, quiet)
    return hold_out_val(data, cfg.val_split, cfg.seed), cfg


def train(config: TrainConfig | dict[str, Any] | None = None, *, resume: str | Path | None = None,
          quiet: bool = False, **settings: Any) -> dict[str, Any]:
    """Train a model and test it; returns the summary (also written to RUN_DIR/summary.json).

    `config` and keyword `settings` use TrainConfig's names; `resume` continues from a checkpoint in its folder.
    A TrainConfig's fields left at their defaults still take the dataset profile's or recipe's values (as
    flags left out do); to force a default value over them, pass it in a dict or as a keyword.
    """
    t_start = time.perf_counter()
    if isinstance(config, TrainConfig):
        defaults = TrainConfig()
        config = {k: v for k, v in config.to_dict().items() if v != getattr(defaults, k)}
    user = dict(config or {})
    user.update(settings)
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        if ckpt.get("format_version", 0) < 1 or "optimizer" not in ckpt:
            raise ImgclfError(f"{resume}: a bare state_dict holds no optimizer or progress; --resume needs a "
                              "last.pt written by imgclf train (use it with --init-weights instead)")
        kept = {k: v for k, v in user.items() if k in RESUME_OVERRIDABLE and v is not None}
        user = {**ckpt["config"], **kept}

    # ---- data ---------------------------------------------------------------------------------------------
    world = dist.setup()
    if user.get("threads"):
        torch.set_num_threads(int(user["threads"]))
    data, cfg = data_and_config(user, quiet)
    device = pick_device(cfg.device) if world.size == 1 else world.device
    prec = pick_precision(cfg, device)
    if ckpt is not None:
        mean, std = ckpt["normalization"]["mean"], ckpt["normalization"]["std"]
    else:
        mean, std = normalization(cfg, data)
    norm = Normalizer(mean, std, device, channels_last=prec.channels_last)
    augment = Augment(cfg.crop_pad, cfg.flip, cfg.cutout)

    def shuffled(split: Split) -> Batches:
        return Batches(split, cfg.batch_size, norm, train=True, augment=augment, seed=cfg.seed, device=device,
                       rank=world.rank, world_size=world.size)

    train_batches = shuffled(data.train)
    if len(train_batches) == 0:
        raise ImgclfError(f"--batch-size {cfg.batch_size} is larger than the {len(data.train)} training images")
    small_batches = None  # progressive resizing: the same images and order, smaller, for the first epochs
    if cfg.progressive_size and cfg.progressive_epochs:
        size = (cfg.progressive_size, cfg.progressive_size)
        small_batches = shuffled(Split(resize_split_images(data.train.images, size), data.train.labels, "train"))

    # ---- model and optimizer ------------------------------------------------------------------------------
    model = make_model(cfg, data, mean, std, device, prec.channels_last, init=ckpt is None,
                       arch=arch_of(ckpt) if ckpt is not None else None)
    model_args = {"in_channels": data.shape[0], "num_classes": data.num_classes, "image_size": list(data.shape[1:]),
                  **arch_args(model)}
    if small_batches is not None:
        _check_takes_size(model, data.shape[0], cfg, device, prec.channels_last)
    opt = make_optimizer(cfg, model)
    ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
    steps_per_epoch = len(train_batches)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = min(total_steps, round(cfg.warmup * steps_per_epoch))

    # ---- where we start: fresh, or exactly where a checkpoint left off ------------------------------------
    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_metric": None, "best_epoch": None,
             "history": [], "train_seconds": 0.0, "epoch_sums": [0.0, 0, 0]}  # partial epoch: loss sum, correct, seen
    if ckpt is not None:
        load_model_state(model, ckpt["model"], str(resume), cfg.model)
        opt.load_state_dict(ckpt["optimizer"])
        if ema is not None and ckpt.get("ema"):
            ema.load_state_dict(ckpt["ema"])
        if prec.scaler is not None and ckpt.get("scaler"):
            prec.scaler.load_state_dict(ckpt["scaler"])
        state.update({k: ckpt[k] for k in state if k in ckpt})
        run_dir = Path(resume).parent
    else:
        run_dir = new_run_dir(cfg.out, cfg.name or f"{data.name}-{cfg.model}") if world.is_main else Path(cfg.out)
    if world.size > 1:
        model_for_step = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda"
                                                                   else None)
    else:
        model_for_step = torch.compile(model) if cfg.compile else model

    def checkpoint(kind: str = "last") -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION, "imgclf_version": __version__, "kind": kind,
            "model_name": cfg.model, "model_args": model_args,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "ema": ema.state_dict() if ema is not None else None,
            "optimizer": opt.state_dict(), "scaler": prec.scaler.state_dict() if prec.scaler else None,
            "schedule": {"name": cfg.schedule, "total_steps": total_steps, "warmup_steps": warmup_steps},
            **{k: state[k] for k in state},
            "rng": {"torch": torch.get_rng_state()},
            "config": cfg.to_dict(), "classes": data.classes, "dataset": data.name,
            "normalization": {"mean": list(mean), "std": list(std)}, "tta": cfg.tta,
            "channels_last": prec.channels_last,
        }

    def save(kind: str) -> None:
        if world.is_main:
            save_checkpoint(checkpoint(kind), run_dir / f"{kind}.pt")

    if world.is_main:
        write_config(run_dir, cfg.to_dict(), {"imgclf_version": __version__, "torch_version": torch.__version__,
                                              "device_name": console.device_name(device), "run_dir": str(run_dir)})
        console.run_header(cfg, data, device, prec, count_parameters(model), run_dir, resumed=ckpt is not None,
                           quiet=quiet)
    stopper = _Stopper()
    eval_split = data.val
    eval_model = ema.module if ema is not None else model

    # ---- the loop -----------------------------------------------------------------------------------------
    with stopper:
        for epoch in range(state["epoch"], cfg.epochs):
            model.train()
            t_epoch = time.perf_counter()
            epoch_seconds_before = 0.0  # time already spent on this epoch before a mid-epoch save
            loss_sum = torch.full((), state["epoch_sums"][0], device=device)
            correct = torch.full((), state["epoch_sums"][1], device=device, dtype=torch.int64)
            seen, running, running_n = state["epoch_sums"][2], 0.0, 0
            bar = console.EpochBar(epoch, cfg.epochs, steps_per_epoch, quiet or not world.is_main)
            batches = small_batches if small_batches is not None and epoch < cfg.progressive_epochs else train_batches
            for step, (x, y) in enumerate(batches.epoch(epoch, state["step_in_epoch"]), state["step_in_epoch"]):
                lr = lr_at(state["global_step"], total_steps, cfg.lr, cfg.schedule, warmup_steps)
                for group in opt.param_groups:
                    group["lr"] = lr
                with prec.autocast(device):
                    logits = model_for_step(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                if prec.scaler is not None:
                    prec.scaler.scale(loss).backward()
                    prec.scaler.step(opt)
                    prec.scaler.update()
                else:
                    loss.backward()
                    opt.step()
                if ema is not None:
                    ema.update(model, state["global_step"])
                state["global_step"] += 1
                state["step_in_epoch"] = step + 1
                loss_d = loss.detach()
                loss_sum += loss_d * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
                if cfg.log_every or bar.wants_update(step):
                    loss_v = loss_d.item()
                    _check_finite(loss_d, epoch, step, lr, cfg, run_dir)
                    running += loss_v
                    running_n += 1
                    if cfg.log_every and (step + 1) % cfg.log_every == 0:
                        console.running_loss(epoch, step, running / running_n, quiet or not world.is_main)
                        running, running_n = 0.0, 0
                    bar.update(step, loss_v, float(correct) / max(seen, 1), seen / (time.perf_counter() - t_epoch))
                mid_epoch = step + 1 < steps_per_epoch  # at an epoch's end, the epoch-end save below does it
                periodic = cfg.save_every_steps and state["global_step"] % cfg.save_every_steps == 0
                if mid_epoch and (periodic or stopper.requested):
                    _check_finite(loss_sum, epoch, step, lr, cfg, run_dir)
                    now = time.perf_counter()
                    state["train_seconds"] += now - t_epoch
                    epoch_seconds_before += now - t_epoch
                    t_epoch = now
                    state["epoch_sums"] = [float(loss_sum), int(correct), seen]
                    save("last")
                    if stopper.requested:
                        raise stopper.stopped(epoch, step, run_dir)
            bar.close()
            _check_finite(loss_sum, epoch, step, lr, cfg, run_dir)
            train_loss = (loss_sum / max(seen, 1)).item()
            state["train_seconds"] += time.perf_counter() - t_epoch
            epoch_seconds = epoch_seconds_before + time.perf_counter() - t_epoch
            row = {"epoch": epoch + 1, "train_loss": round(train_loss, 6),
                   "train_accuracy": round(float(correct) / max(seen, 1), 6), "lr": round(lr, 8),
                   "seconds": round(epoch_seconds, 3), "images_per_second": round(seen * world.size / epoch_seconds, 1)}
            last_epoch = epoch + 1 == cfg.epochs
            if eval_split is not None and ((epoch + 1) % cfg.eval_every == 0 or last_epoch):
                m = metrics_from_logits(predict_logits(eval_model, eval_split, norm, device, tta=cfg.tta,
                                                       autocast_dtype=prec.autocast_dtype),
                                        eval_split.labels, data.classes)
                row.update({"val_loss": m["loss"], "val_accuracy": m["accuracy"]})
            state["history"].append(row)
            state["epoch"], state["step_in_epoch"], state["epoch_sums"] = epoch + 1, 0, [0.0, 0, 0]
            improved = "val_accuracy" in row and (state["best_metric"] is None
                                                  or row["val_accuracy"] > state["best_metric"])
            if improved:
                state["best_metric"], state["best_epoch"] = row["val_accuracy"], epoch + 1
            elif eval_split is None:
                state["best_epoch"] = epoch + 1  # no validation split: best.pt is simply the last epoch
            save("last")
            if improved or eval_split is None:
                save("best")
            if world.is_main:
                write_metrics(run_dir, state["history"])
                console.epoch_line(row, quiet)
            if stopper.requested and not last_epoch:
                raise stopper.stopped(epoch, steps_per_epoch - 1, run_dir)
    dist.barrier(world)

    # ---- test the chosen checkpoint (picked on val, never on test) ----------------------------------------
    if world.is_main and state["best_epoch"] is not None and state["best_epoch"] != cfg.epochs:
        best = load_checkpoint(run_dir / "best.pt")
        load_model_state(eval_model, best["ema"] or best["model"], str(run_dir / "best.pt"), cfg.model)
    t_test = time.perf_counter()
    logits = predict_logits(eval_model, data.test, norm, device, tta=cfg.tta, autocast_dtype=prec.autocast_dtype)
    test = metrics_from_logits(logits, data.test.labels, data.classes)
    test_seconds = time.perf_counter() - t_test
    images_seen = sum(r["images_per_second"] * r["seconds"] for r in state["history"])
    summary = {
        "dataset": data.name, "model": cfg.model, "recipe": cfg.recipe, "epochs": cfg.epochs,
        "classes": data.classes, "test_split_size": len(data.test),
        "test_accuracy": test["accuracy"], "test_loss": test["loss"],
        "per_class_accuracy": test["per_class_accuracy"],
        "precision": test["precision"], "recall": test["recall"], "f1": test["f1"],
        "val_accuracy": state["best_metric"], "best_epoch": state["best_epoch"],
        "checkpoint_selected_on": "val" if data.val is not None else "last epoch (no validation split)",
        "train_seconds": round(state["train_seconds"], 3), "test_seconds": round(test_seconds, 3),
        "total_seconds": round(time.perf_counter() - t_start, 3),
        "images_per_second": round(images_seen / max(state["train_seconds"], 1e-9), 1),
        "device": console.device_name(device),
        "compute_precision": str(prec.autocast_dtype or "fp32").replace("torch.", ""),
        "parameters": count_parameters(model), "tta": cfg.tta, "ema": cfg.ema,
        "normalization": {"mean": list(mean), "std": list(std)}, "seed": cfg.seed,
        "run_dir": str(run_dir), "checkpoint": str(run_dir / "best.pt"),
        "imgclf_version": __version__, "torch_version": torch.__version__,
    }
    if world.is_main:
        write_summary(run_dir, summary)
        if cfg.plots:
            from ..report.plots import write_run_plots  # matplotlib loads only when plots are drawn
            write_run_plots(run_dir, state["history"], test, logits, data.test, data.classes)
        summary["total_seconds"] = round(time.perf_counter() - t_start, 3)
        write_summary(run_dir, summary)
        console.test_report(summary, test, quiet)
    dist.cleanup(world)
    return summary


@torch.no_grad()
def _check_takes_size(model: torch.nn.Module, channels: int, cfg: TrainConfig, device: torch.device,
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


def _check_finite(loss: torch.Tensor, epoch: int, step: int, lr: float, cfg: TrainConfig, run_dir: Path) -> None:
    """Stop before anything is saved once the loss is NaN/inf: the last checkpoint on disk stays the last good one."""
    value = float(loss)
    if not math.isfinite(value):
        raise NonFiniteLoss(f"loss is {value} at epoch {epoch + 1}, step {step + 1} (lr {lr:.4g}); the run stopped and "
                            f"{run_dir / 'last.pt'} keeps the last good state (if one was saved); "
                            f"try a lower --lr (e.g. {cfg.lr / 10:g})")


class _Stopper:
    """First SIGINT/SIGTERM: finish the step, save, stop. A second one: stop at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(f"\n{self.requested}: finishing this step and saving (press Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

    def stopped(self, epoch: int, step: int, run_dir: Path) -> TrainingStopped:
        return TrainingStopped(f"stopped by {self.requested} at epoch {epoch + 1}, step {step + 1}; saved "
                               f"{run_dir / 'last.pt'}. Resume with: imgclf train --resume {run_dir / 'last.pt'}")

    def __enter__(self) -> _Stopper:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
