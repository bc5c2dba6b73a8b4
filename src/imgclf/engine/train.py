"""The training loop, readable top to bottom: set up (setup.py) → epochs of steps → choose the checkpoint on
val → test it once → summary, plots.

Every random draw in a step is a function of (seed, epoch, step) and the learning rate a function of the step,
so `--resume` from any checkpoint (epoch end or mid-epoch) replays the rest of the run exactly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..config import TrainConfig, user_settings
from ..models import count_parameters
from ..report import console
from ..report.run_dir import write_config, write_metrics, write_summary
from . import distributed as dist
from .checkpoint import load_checkpoint, load_model_state
from .evaluate import metrics_from_logits, predict_logits
from .setup import Run, setup_run
from .step import EpochTotals, set_lr, train_step
from .stopping import NonFiniteLoss, Stopper, TrainingStopped, check_finite

__all__ = ["NonFiniteLoss", "TrainingStopped", "train", "train_one_epoch"]


def train(config: TrainConfig | dict[str, Any] | None = None, *, resume: str | Path | None = None,
          config_file: dict[str, Any] | None = None, quiet: bool = False, **settings: Any) -> dict[str, Any]:
    """Train a model and test it; returns the summary (also written to RUN_DIR/summary.json).

    `config` (a dict, or a TrainConfig whose given fields count) and keyword `settings` use TrainConfig's names
    and override the dataset profile and recipe (see config.py); `config_file` holds a --config file's settings,
    below them. `resume` continues from a checkpoint in its run folder.
    """
    t_start = time.perf_counter()
    run = setup_run(user_settings(config, **settings), config_file, resume, quiet)
    announce(run, quiet)
    with Stopper() as stopper:
        for epoch in range(run.progress.epoch, run.cfg.epochs):
            row = train_one_epoch(run, epoch, stopper, quiet)
            end_epoch(run, row, quiet)
            if stopper.requested and epoch + 1 < run.cfg.epochs:
                raise stopper.stopped(epoch, run.steps_per_epoch - 1, run.run_dir)
    dist.barrier(run.world)
    summary = finish(run, t_start, quiet)
    dist.cleanup(run.world)
    return summary


def announce(run: Run, quiet: bool) -> None:
    """config.yaml (every resolved setting, versions, device) and the run header."""
    if run.world.is_main:
        write_config(run.run_dir, run.cfg.to_dict(), {
            "imgclf_version": __version__, "torch_version": torch.__version__,
            "device_name": console.device_name(run.device), "run_dir": str(run.run_dir)})
        console.run_header(run.cfg, run.data, run.device, run.prec, count_parameters(run.model), run.run_dir,
                           resumed=run.resumed, quiet=quiet)


def train_one_epoch(run: Run, epoch: int, stopper: Stopper, quiet: bool) -> dict[str, Any]:
    """Step through one epoch (from a mid-epoch checkpoint's step if resuming); saves last.pt mid-epoch every
    --save-every-steps and when a signal asks to stop. Returns the epoch's row of training figures."""
    cfg, p = run.cfg, run.progress
    run.model.train()
    t_epoch = time.perf_counter()
    seconds_before = 0.0  # time already spent on this epoch before a mid-epoch save
    totals = EpochTotals.restore(p.epoch_sums, run.device)
    running, running_n, lr = 0.0, 0, run.lr(p.global_step)
    silent = quiet or not run.world.is_main
    bar = console.EpochBar(epoch, cfg.epochs, run.steps_per_epoch, silent)
    for step, (x, y) in enumerate(run.batches_for(epoch).epoch(epoch, p.step_in_epoch), p.step_in_epoch):
        lr = run.lr(p.global_step)
        set_lr(run.opt, lr)
        loss, logits = train_step(run.step_model, x, y, run.opt, run.prec, cfg.label_smoothing)
        if run.ema is not None:
            run.ema.update(run.model, p.global_step)
        p.global_step, p.step_in_epoch = p.global_step + 1, step + 1
        totals.add(loss, logits, y)
        if cfg.log_every or bar.wants_update(step):
            check_finite(loss, epoch, step, lr, cfg.lr, run.run_dir)
            running, running_n = running + loss.item(), running_n + 1
            if cfg.log_every and (step + 1) % cfg.log_every == 0:
                console.running_loss(epoch, step, running / running_n, silent)
                running, running_n = 0.0, 0
            bar.update(step, loss.item(), totals.accuracy, totals.seen / (time.perf_counter() - t_epoch))
        mid_epoch = step + 1 < run.steps_per_epoch  # at an epoch's end, end_epoch saves
        periodic = cfg.save_every_steps and p.global_step % cfg.save_every_steps == 0
        if mid_epoch and (periodic or stopper.requested):
            check_finite(totals.loss_sum, epoch, step, lr, cfg.lr, run.run_dir)
            now = time.perf_counter()
            p.train_seconds += now - t_epoch
            seconds_before += now - t_epoch
            t_epoch = now
            p.epoch_sums = totals.saved()
            run.save("last")
            if stopper.requested:
                raise stopper.stopped(epoch, step, run.run_dir)
    bar.close()
    check_finite(totals.loss_sum, epoch, p.step_in_epoch - 1, lr, cfg.lr, run.run_dir)
    p.train_seconds += time.perf_counter() - t_epoch
    seconds = seconds_before + time.perf_counter() - t_epoch
    return {"epoch": epoch + 1, "train_loss": round(totals.mean_loss, 6), "train_accuracy": round(totals.accuracy, 6),
            "lr": round(lr, 8), "seconds": round(seconds, 3),
            "images_per_second": round(totals.seen * run.world.size / seconds, 1)}


def end_epoch(run: Run, row: dict[str, Any], quiet: bool) -> None:
    """Validate (every --eval-every epochs and the last), keep the best epoch by val accuracy (the earliest on a
    tie), save last.pt and best.pt, rewrite metrics.csv, print the epoch line."""
    cfg, p, val = run.cfg, run.progress, run.data.val
    epoch = row["epoch"]
    if val is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
        logits = predict_logits(run.eval_model, val, run.norm, run.device, tta=cfg.tta,
                                autocast_dtype=run.prec.autocast_dtype)
        m = metrics_from_logits(logits, val.labels, run.data.classes)
        row.update({"val_loss": m["loss"], "val_accuracy": m["accuracy"]})
    p.history.append(row)
    p.epoch, p.step_in_epoch, p.epoch_sums = epoch, 0, None
    improved = "val_accuracy" in row and (p.best_metric is None or row["val_accuracy"] > p.best_metric)
    if improved:
        p.best_metric, p.best_epoch = row["val_accuracy"], epoch
    elif val is None:
        p.best_epoch = epoch  # no validation split: best.pt is simply the last epoch
    run.save("last")
    if improved or val is None:
        run.save("best")
    if run.world.is_main:
        write_metrics(run.run_dir, p.history)
        if run.tensorboard is not None:
            run.tensorboard.epoch(row)
        console.epoch_line(row, quiet)


def finish(run: Run, t_start: float, quiet: bool) -> dict[str, Any]:
    """Test the chosen checkpoint (picked on val, never on test) once; write summary.json and the plots."""
    cfg, p, data = run.cfg, run.progress, run.data
    if run.world.is_main and p.best_epoch is not None and p.best_epoch != cfg.epochs:
        best = load_checkpoint(run.run_dir / "best.pt")
        load_model_state(run.eval_model, best["ema"] or best["model"], str(run.run_dir / "best.pt"), cfg.model)
    t_test = time.perf_counter()
    logits = predict_logits(run.eval_model, data.test, run.norm, run.device, tta=cfg.tta,
                            autocast_dtype=run.prec.autocast_dtype)
    test = metrics_from_logits(logits, data.test.labels, data.classes)
    test_seconds = time.perf_counter() - t_test
    images_seen = sum(r["images_per_second"] * r["seconds"] for r in p.history)
    summary = {
        "dataset": data.name, "model": cfg.model, "recipe": cfg.recipe, "epochs": cfg.epochs,
        "classes": data.classes, "test_split_size": len(data.test),
        "test_accuracy": test["accuracy"], "test_loss": test["loss"],
        "per_class_accuracy": test["per_class_accuracy"],
        "precision": test["precision"], "recall": test["recall"], "f1": test["f1"],
        "val_accuracy": p.best_metric, "best_epoch": p.best_epoch,
        "checkpoint_selected_on": "val" if data.val is not None else "last epoch (no validation split)",
        "train_seconds": round(p.train_seconds, 3), "test_seconds": round(test_seconds, 3),
        "total_seconds": round(time.perf_counter() - t_start, 3),
        "images_per_second": round(images_seen / max(p.train_seconds, 1e-9), 1),
        "device": console.device_name(run.device),
        "compute_precision": str(run.prec.autocast_dtype or "fp32").replace("torch.", ""),
        "parameters": count_parameters(run.model), "tta": cfg.tta, "ema": cfg.ema,
        "normalization": {"mean": run.mean, "std": run.std}, "seed": cfg.seed,
        "run_dir": str(run.run_dir), "checkpoint": str(run.run_dir / "best.pt"),
        "imgclf_version": __version__, "torch_version": torch.__version__,
    }
    if run.world.is_main:
        write_summary(run.run_dir, summary)
        if cfg.plots:
            from ..report.plots import write_run_plots  # matplotlib loads only when plots are drawn
            write_run_plots(run.run_dir, p.history, test, logits, data.test, data.classes)
        if run.tensorboard is not None:
            run.tensorboard.close(summary)  # reads the plots just drawn
        summary["total_seconds"] = round(time.perf_counter() - t_start, 3)
        write_summary(run.run_dir, summary)
        console.test_report(summary, test, quiet)
    return summary
