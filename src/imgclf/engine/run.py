"""The Run: a training run ready to step, the resolved settings and everything built from them (build.py makes
it), with its checkpoint's contents and the restore of one (the format itself: checkpoint/format.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..checkpoint import load_model_state, save_checkpoint
from ..checkpoint.format import Progress, model_args, new_checkpoint
from ..config import TrainConfig, tta_mirrors
from ..data import Dataset
from ..data.batches import Batches, Normalizer
from ..data.duplicates import Findings
from ..report.callbacks import Callbacks
from . import distributed as dist
from .device import Precision, inference_dtype
from .ema import EMA, Lookahead
from .schedule import lr_at, schedule_step

if TYPE_CHECKING:
    from .budget import Replan
    from .threads import ThreadWatch


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
    data_identity: dict[str, Any] = field(default_factory=dict)   # Dataset.identity(), in every checkpoint
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])   # one per run folder (check_run_folder)
    progress: Progress = field(default_factory=Progress)
    run_dir: Path | None = None
    resumed: bool = False
    callbacks: Callbacks = field(default_factory=Callbacks)   # rank 0 only: --tensorboard's, then the caller's
    budget_plan: dict[str, Any] | None = None   # --budget: what was measured and chosen (budget.py), kept on resume
    lookahead: Lookahead | None = None          # --lookahead: the slow weights (ema.py)
    replan: Replan | None = None                # a fresh budgeted run's re-plan on its own steps (budget.py)
    thread_watch: ThreadWatch | None = None     # threads chosen for the machine, re-checked as it trains (threads.py)
    probe: dict[str, Any] | None = None         # --linear-probe: what epoch 1 measured and chose (probe.py)
    duplicates: Findings | None = None          # repeated images across and within the splits (rank 0 only)
    steps: int = 0     # the run's length: cfg.steps and cfg.epochs as resolved, until a budget's re-plan changes them
    epochs: int = 0
    threads: int = 0   # cfg.threads, until the thread watch chooses again for a machine that got busier or quieter

    def __post_init__(self) -> None:
        self.steps, self.epochs, self.threads = self.cfg.steps, self.cfg.epochs, self.cfg.threads

    def settings(self) -> dict[str, Any]:
        """The settings as this run runs them (config.yaml, checkpoints): the resolved config with the run's length
        and threads, so that `--config config.yaml` and a resume repeat a re-planned run exactly (a refitted one: its
        resume exactly, its config.yaml with the final total but without the refits' bends in the schedule)."""
        return {**self.cfg.to_dict(), "steps": self.steps, "epochs": self.epochs, "threads": self.threads}

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batches)

    @property
    def probe_epochs(self) -> int:
        """Epochs that fit the head on cached features instead of stepping: 1 with --linear-probe, else 0."""
        return int(self.cfg.linear_probe)

    @property
    def total_steps(self) -> int:
        """--steps (a budget plans it), else whole epochs (after the probe's); the last epoch stops at the total."""
        return self.steps or (self.epochs - self.probe_epochs) * self.steps_per_epoch

    def steps_in_epoch(self, epoch: int) -> int:
        """Steps epoch `epoch` takes: all of an epoch's batches, but the last epoch stops at the total (a probe
        epoch takes none)."""
        if epoch < self.probe_epochs:
            return 0
        return min(self.steps_per_epoch, self.total_steps - (epoch - self.probe_epochs) * self.steps_per_epoch)

    @property
    def eval_model(self) -> torch.nn.Module:
        """What validation and testing run: the weight average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def views(self) -> dict[str, Any]:
        """predict_logits' test-time views: the run's --tta, --tta-shift and --tta-mirror (config.tta_mirrors), in
        the precision the run computes in where it is native here (device.inference_dtype: as `imgclf eval` will)."""
        return {"tta": self.cfg.tta, "tta_shift": self.cfg.tta_shift,
                "tta_mirror": tta_mirrors(self.cfg.tta_mirror, self.cfg.flip),
                "autocast_dtype": inference_dtype(self.cfg.precision, self.device)}

    def lr(self, step: int) -> float:
        """The schedule's lr for optimizer step `step`. After a budget's refits (budget.Replan.refit) the rest of the
        schedule as re-planned is stretched or squeezed onto the steps then left (schedule.schedule_step), so the lr
        never jumps; the refits are in budget_plan, so a resume computes the same."""
        replan = (self.budget_plan or {}).get("replan") or {}
        refits = replan.get("refits")
        total = replan["steps"] if refits else self.total_steps   # the schedule as re-planned, before any refit
        warmup = min(total, round(self.cfg.warmup * self.steps_per_epoch))
        if self.steps:   # a run of steps shorter than its warm-up (in epochs) still decays: half at most
            warmup = min(warmup, total // 2)
        at = schedule_step(step, total, refits) if refits else step
        return lr_at(at, total, self.cfg.lr, self.cfg.schedule, warmup)

    def batches_for(self, epoch: int) -> Batches:
        small = self.small_batches is not None and epoch < self.cfg.progressive_epochs
        return self.small_batches if small else self.batches

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint (checkpoint/format.py), read back by `restore` and `checkpoint.rebuild`."""
        return new_checkpoint({
            "model_name": self.cfg.model, "model_args": model_args(self.model, self.data.shape, self.data.num_classes),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "lookahead": self.lookahead.state_dict() if self.lookahead is not None else None,
            "optimizer": self.opt.state_dict(),
            "scaler": self.prec.scaler.state_dict() if self.prec.scaler.is_enabled() else None,
            **vars(self.progress),
            "config": self.settings(), "classes": self.data.classes, "dataset": self.data.name,
            "data": self.data_identity, "run_id": self.run_id,
            "normalization": {"mean": list(self.mean), "std": list(self.std)}, "tta": self.cfg.tta,
            "tta_mirror": self.views["tta_mirror"],
            "channels_last": self.prec.channels_last, "budget_plan": self.budget_plan, "probe": self.probe,
        })

    def save(self, name: str) -> Path | None:
        """Write RUN_DIR/name.pt (rank 0 only; atomically); returns its path where written."""
        if self.world.is_main and self.run_dir is not None:
            return save_checkpoint(self.checkpoint(), self.run_dir / f"{name}.pt")
        return None

    def restore(self, ckpt: dict[str, Any], where: str) -> None:
        """Continue exactly where `ckpt` left off: weights, optimizer, EMA, grad scaler and progress."""
        load_model_state(self.model, ckpt["model"], where, self.cfg.model)
        self.opt.load_state_dict(ckpt["optimizer"])
        if self.ema is not None and ckpt["ema"]:
            self.ema.load_state_dict(ckpt["ema"])
        if self.lookahead is not None and ckpt["lookahead"]:
            self.lookahead.load_state_dict(ckpt["lookahead"])
        if ckpt["scaler"]:
            self.prec.scaler.load_state_dict(ckpt["scaler"])
        saved = {k: ckpt[k] for k in Progress.__dataclass_fields__ if k in ckpt}   # format.ADDED_FIELDS: defaults
        self.progress = Progress(**saved)
        self.budget_plan, self.probe = ckpt["budget_plan"], ckpt["probe"]
        self.resumed = True
