"""The training loop, readable top to bottom: set up (setup.py) → epochs of steps → choose the checkpoint on
val → test it once → summary, plots.

Every random draw in a step is a function of (seed, epoch, step) and the learning rate a function of the step,
so `--resume` from any checkpoint (epoch end or mid-epoch) replays the rest of the run exactly.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from .. import machine, verbosity
from .._version import __version__
from ..checkpoint import load_checkpoint, load_model_state
from ..config import TrainConfig, user_settings
from ..data.table import dataframe_as_csv
from ..errors import CheckpointError
from ..fileio import atomic_write, printable
from ..models import count_parameters
from ..models.pretrained import freeze_backbone, head_module
from ..phases import phase
from ..report import console
from ..report.callbacks import Callbacks
from ..report.run_dir import write_config, write_metrics, write_summary
from ..report.steps import StepLog
from ..words import counted
from . import distributed as dist
from . import selection
from .builders import augmented_batch
from .device import cpu_has_native_bf16, precision_name
from .ema import Lookahead
from .evaluate import metrics_from_logits, predict_logits, test_metrics
from .probe import run_probe
from .setup import Run, setup_run
from .step import EpochTotals, step_loop
from .stopping import NonFiniteLoss, Stopper, TrainingStopped, check_finite

__all__ = ["NonFiniteLoss", "TrainingStopped", "train", "train_one_epoch"]


def train(config: TrainConfig | dict[str, Any] | None = None, *, resume: str | Path | None = None,
          config_file: dict[str, Any] | None = None, quiet: bool = False, started: float | None = None,
          callbacks: Iterable[Any] | None = None, **settings: Any) -> dict[str, Any]:
    """Train a model and test it; returns the summary (also written to RUN_DIR/summary.json).

    `config` (a dict, or a TrainConfig whose given fields count) and keyword `settings` use TrainConfig's names
    and override the dataset profile and recipe (see config.py); `config_file` holds a --config file's settings,
    below them. `resume` continues from a checkpoint in its run folder. `started` (a time.perf_counter() reading,
    default now) is when the command began: a --budget counts from it. `callbacks` are called as the run goes
    (report/callbacks.py: on_train_start, on_step, on_epoch_end, on_checkpoint, on_train_end, on_train_error).
    """
    t_start = time.perf_counter() if started is None else started
    given = Callbacks(callbacks)   # a bad one is refused before a run folder is made
    config, settings = dataframe_as_csv(config, settings)   # data=DataFrame: a CSV file the run records
    with verbosity.quiet_if(quiet):
        with phase("setup"):
            run = setup_run(user_settings(config, **settings), config_file, resume, t_start)
        with verbosity.quiet_if(not run.world.is_main):   # torchrun's other processes print nothing
            with phase("setup"):
                announce(run)
            try:
                with phase("setup"):
                    start_callbacks(run, given)   # a tracker's start-up (W&B starts its service) counts as setup
                summary = train_epochs(run, t_start)
            except BaseException as e:
                run.callbacks.on_train_error(e)
                raise
    dist.cleanup(run.world)
    return summary


def train_epochs(run: Run, t_start: float) -> dict[str, Any]:
    """The epochs from where the run is, then finish(): the summary."""
    devices = [run.device] if run.device.type == "cuda" else []
    with Stopper() as stopper, torch.random.fork_rng(devices):   # steps reseed torch's RNG: the caller's is restored
        epoch = run.progress.epoch
        while epoch < run.epochs:   # a budget's re-plan in the first epoch may change the run's epochs
            if run.progress.stopped_early:
                break
            with phase("training"):
                row = probe_epoch(run, epoch) if epoch < run.probe_epochs else \
                    train_one_epoch(run, epoch, stopper)
            with phase("validation and checkpoints"):
                end_epoch(run, row)
            if stopper.requested and epoch + 1 < run.epochs and not run.progress.stopped_early:
                raise stopper.stopped(epoch, run.steps_per_epoch - 1, run.run_dir)
            epoch += 1
    dist.barrier(run.world)
    return finish(run, t_start)


def announce(run: Run) -> None:
    """config.yaml (every resolved setting, versions, device) and the run header."""
    if run.world.is_main:
        write_run_config(run)
        console.run_header(run.cfg, run.data, run.device, run.prec, count_parameters(run.model), run.run_dir,
                           resumed=run.resumed)


def start_callbacks(run: Run, given: Callbacks) -> None:
    """Rank 0 calls the callbacks: --tensorboard's logger first, then the caller's; on_train_start."""
    if not run.world.is_main:
        return
    if run.cfg.tensorboard:
        from ..report.tensorboard import TensorBoardLogger

        run.callbacks.add(TensorBoardLogger())
    for cb in given.callbacks:
        run.callbacks.add(cb)
    if run.callbacks:
        p = run.progress
        run.callbacks.on_train_start({
            "run_dir": run.run_dir, "run_id": run.run_id, "config": run.settings(), "resumed": run.resumed,
            "epoch": p.epoch, "step": p.global_step, "epochs": run.epochs, "steps_per_epoch": run.steps_per_epoch,
            "total_steps": run.total_steps, "dataset": run.data.name, "classes": list(run.data.classes),
            "model": run.cfg.model})


def write_run_config(run: Run) -> None:
    """config.yaml: every resolved setting, with versions, device and the data's identity."""
    write_config(run.run_dir, run.settings(), {
        "imgclf_version": __version__, "torch_version": torch.__version__,
        "device_name": console.device_name(run.device), "machine": machine_record(run.device),
        "run_dir": str(run.run_dir),
        "run_id": run.run_id, "data_identity": run.data_identity})


def machine_record(device: torch.device) -> dict[str, Any]:
    """What the run computed on, for config.yaml and summary.json: the CPU (model, speed-deciding flags), its threads,
    the CPUs this process could use and the measured fp32/bf16 matmul rates; the GPU's name on CUDA. Figures from two
    machines compare only with it."""
    record = {"cpu": machine.cpu_description(), "threads": torch.get_num_threads(),
              "usable_cpus": machine.usable_cpus()}
    if device.type == "cpu":   # bf16 None: emulated on this CPU, not measured
        record["matmul_gflops"] = machine.matmul_rates(cpu_has_native_bf16())
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return record


def settings_changed(run: Run) -> None:
    """After the loop changed the run's settings (its length, its threads): config.yaml and the callbacks' run info
    (TensorBoard's hparams) hold them as they now are."""
    info = run.callbacks.info
    if info is not None:   # what the callbacks were given at the start, updated in place
        info["config"].update(run.settings())
        info.update(epochs=run.epochs, total_steps=run.total_steps)
    if run.world.is_main:
        write_run_config(run)


def announce_threads(run: Run, change: dict[str, Any]) -> None:
    """After the thread watch (threads.py) changed the run's threads: the settings recorded, and one note."""
    settings_changed(run)
    if run.world.is_main:
        console.note(f"threads {change['before']} → {change['after']} at step {change['step']:,}: {change['why']} "
                     f"(checked every {run.thread_watch.every:g} s of training)")


def announce_replan(run: Run, r: dict[str, Any]) -> None:
    """After a budget's re-plan or refit (budget.Replan; `r` its record): config.yaml (and the callbacks' run info)
    hold the new steps, and the console says why."""
    settings_changed(run)
    if run.world.is_main and "calibrated_step_seconds" not in r:   # a refit
        console.note(f"budget: the loop now steps in {r['loop_step_seconds'] * 1e3:.1f} ms: {r['steps']:,} steps "
                     f"({r['steps'] / run.steps_per_epoch:.1f} epochs) instead of {r['steps_before']:,}, to end "
                     "within the budget")
    elif run.world.is_main:
        floor = "" if r["trusted"] else f", timed {r['timed_seconds']:.1f} s: the calibrated time stays the floor"
        console.note(f"budget: the loop steps in {r['loop_step_seconds'] * 1e3:.1f} ms (calibrated "
                     f"{r['calibrated_step_seconds'] * 1e3:.1f} ms{floor}): {r['steps']:,} steps "
                     f"({r['steps'] / run.steps_per_epoch:.1f} epochs) instead of {r['steps_before']:,}; the schedule "
                     f"ends at step {r['steps']:,}")
        if r.get("threads"):
            t = r["threads"]
            console.note(f"threads {t['before']} → {t['after']} from step {t['step']}: {t['why']} (the machine "
                         "changed since start-up)")


def probe_epoch(run: Run, epoch: int) -> dict[str, Any]:
    """A --linear-probe epoch: the head fitted on the frozen backbone's cached features (probe.py), no steps."""
    fit = run_probe(run.model, run.data.train, run.data.val, run.norm, run.device, run.prec, run.data.num_classes,
                    run.class_weights, mirror=run.views["tta_mirror"])
    run.probe = fit.pop("record")
    run.progress.train_seconds += fit["seconds"]
    if run.world.size > 1:   # every process fitted the same head; rank 0's is the one all keep
        for p in head_module(run.model)[1].parameters():
            torch.distributed.broadcast(p.data, 0)
    if run.ema is not None:   # the average starts from the probed model
        run.ema.module.load_state_dict(run.model.state_dict())
    if run.lookahead is not None:   # and so do the slow weights (built with the new head, they would pull back to it)
        run.lookahead = Lookahead(run.model)
    r = run.probe
    decay = f"decay {r['decay']:g} chosen on val" if r["chosen_on"] == "val" else f"decay {r['decay']:g} (no val)"
    console.note(f"linear probe: {r['feature_dim']}-d features of {len(run.data.train):,} train images × "
                 f"{counted(r['views'], 'view')} {'from the cache' if r['cached'] else 'computed and cached'} in "
                 f"{r['extract_seconds']:.1f} s; head fitted in {r['fit_seconds']:.1f} s ({decay})")
    return {"epoch": epoch + 1, **fit, "lr": 0.0}


def train_mode(run: Run, epoch: int) -> None:
    """The model in training mode for `epoch`, but for what stays fixed: BatchNorm with --freeze-bn (the starting
    weights' statistics, used to normalize too) and the backbone in --freeze-epochs' first epochs."""
    run.model.train()
    if run.cfg.freeze_bn:
        for m in run.model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
    if run.cfg.freeze_epochs:   # the head alone first (backbone BatchNorm in eval mode), then the whole network
        freeze_backbone(run.model, epoch < run.cfg.freeze_epochs)


def train_one_epoch(run: Run, epoch: int, stopper: Stopper) -> dict[str, Any]:
    """Step through one epoch (from a mid-epoch checkpoint's step if resuming; step.step_loop takes the steps); here
    the budget's re-plan, the epoch's sums, the progress bar, steps.csv, and last.pt saved mid-epoch every
    --save-every-steps and when a signal asks to stop. Returns the epoch's row of training figures."""
    cfg, p = run.cfg, run.progress
    train_mode(run, epoch)
    t_epoch = time.perf_counter()
    seconds_before = p.epoch_seconds if p.epoch_sums else 0.0   # this epoch's time before a mid-epoch save
    totals = EpochTotals.restore(p.epoch_sums, run.device)
    running, running_n, lr = 0.0, 0, run.lr(p.global_step)
    steps_here = run.steps_in_epoch(epoch)
    bar = console.EpochBar(epoch, run.epochs, steps_here)
    steps = StepLog(run.run_dir, run.total_steps, run.steps_per_epoch, p.global_step) if run.world.is_main else None
    try:
        for s in step_loop(run, run.batches_for(epoch), run.lr, epoch=epoch, start=p.step_in_epoch,
                           done=p.global_step, end=run.steps_in_epoch):
            step, lr, loss = s.step, s.lr, s.loss
            p.global_step, p.step_in_epoch = s.done, step + 1
            replanned = run.replan.after_step(run, p.global_step) if run.replan is not None else None
            if replanned is not None:
                steps_here = run.steps_in_epoch(epoch)
                bar.retotal(run.epochs, steps_here)
                if steps is not None:
                    steps.retotal(run.total_steps)
                announce_replan(run, replanned)
            if run.thread_watch is not None:
                change = run.thread_watch.after_step(run, p.global_step)
                if change is not None:
                    announce_threads(run, change)
            totals.add(loss, s.logits, s.y)
            logged = steps is not None and steps.wants(p.global_step)  # steps.csv: the loss is read on these steps only
            if cfg.log_every or bar.wants_update(step) or logged:
                check_finite(loss.detach(), epoch, step, lr, cfg.lr, run.run_dir)
                value = loss.item()
                running, running_n = running + value, running_n + 1
                if cfg.log_every and (step + 1) % cfg.log_every == 0:
                    console.running_loss(epoch, step, running / running_n)
                    running, running_n = 0.0, 0
                rate = totals.seen / (seconds_before + time.perf_counter() - t_epoch)
                bar.update(step, value, totals.accuracy, rate)
                if logged:
                    steps.write(p.global_step, value, lr)
                    if run.callbacks:
                        run.callbacks.on_step(p.global_step, {
                            "step": p.global_step, "epoch": p.global_step / run.steps_per_epoch, "loss": value,
                            "lr": lr, "images_per_second": rate * run.world.size})
            mid_epoch = step + 1 < steps_here  # at an epoch's end, end_epoch saves
            periodic = cfg.save_every_steps and p.global_step % cfg.save_every_steps == 0
            if mid_epoch and (periodic or stopper.requested):
                check_finite(totals.loss_sum, epoch, step, lr, cfg.lr, run.run_dir)
                now = time.perf_counter()
                p.train_seconds += now - t_epoch
                seconds_before += now - t_epoch
                t_epoch = now
                p.epoch_sums, p.epoch_seconds = totals.saved(), seconds_before
                if steps is not None:
                    steps.sync()
                saved = run.save("last")
                if saved is not None:
                    run.callbacks.on_checkpoint(saved, "last")
                if stopper.requested:
                    raise stopper.stopped(epoch, step, run.run_dir)
    finally:
        bar.close()   # also when a signal or an error ends the epoch
    if steps is not None:
        steps.sync()  # before end_epoch saves last.pt
    check_finite(totals.loss_sum, epoch, p.step_in_epoch - 1, lr, cfg.lr, run.run_dir)
    p.train_seconds += time.perf_counter() - t_epoch
    seconds = seconds_before + time.perf_counter() - t_epoch
    return {"epoch": epoch + 1, "train_loss": round(totals.mean_loss, 6), "train_accuracy": round(totals.accuracy, 6),
            "lr": round(lr, 8), "seconds": round(seconds, 3),
            "images_per_second": round(totals.seen * run.world.size / seconds, 1)}


def end_epoch(run: Run, row: dict[str, Any]) -> None:
    """Validate (every --eval-every epochs and the last), keep the best epoch by --select (selection.py), stop
    early after --patience validations without a better one, save last.pt and best.pt, rewrite metrics.csv; then
    the callbacks."""
    cfg, p, val = run.cfg, run.progress, run.data.val
    epoch = row["epoch"]
    if val is not None and (epoch % cfg.eval_every == 0 or epoch == run.epochs or epoch <= run.probe_epochs):
        logits = predict_logits(run.eval_model, val, run.norm, run.device, **run.views)  # as finish() tests
        m = metrics_from_logits(logits, val.labels, run.data.classes)
        row.update({"val_loss": m["loss"], "val_accuracy": m["accuracy"]})
    best_row = p.history[p.best_epoch - 1] if p.best_epoch else None
    p.history.append(row)
    p.epoch, p.step_in_epoch, p.epoch_sums, p.epoch_seconds = epoch, 0, None, 0.0
    improved = selection.is_better(row, best_row if val is not None else None, cfg.select)
    if improved:
        p.best_metric, p.best_epoch = row[cfg.select], epoch
    elif val is None:
        p.best_epoch = epoch  # no validation split: best.pt is simply the last epoch
    if cfg.patience and epoch < run.epochs and selection.evaluations_since_best(p.history, p.best_epoch) >= \
            cfg.patience:
        p.stopped_early = True
    saved = [run.save("last"), run.save("best") if improved or val is None else None]
    if run.world.is_main:
        write_metrics(run.run_dir, p.history)
        console.epoch_line(row)
        if p.stopped_early:
            console.note(f"no better {cfg.select.replace('_', ' ')} in {cfg.patience} validations: stopping early "
                         f"after epoch {epoch}; best.pt is epoch {p.best_epoch}")
        run.callbacks.on_epoch_end(epoch, row)
        for path, kind in zip(saved, ("last", "best")):
            if path is not None:
                run.callbacks.on_checkpoint(path, kind)


def write_pictures(run: Run, test: dict[str, Any], logits: torch.Tensor) -> None:
    """plots/ (curves, confusion matrices, predictions, top losses, an augmented training batch) and report.html.
    Best-effort: a failure (a full disk, say) is a one-line warning; the test figures are already written."""
    from ..report.figures import grid, run_figures
    from ..report.html import write_report_or_warn
    from ..report.painter import draw_all

    data, p = run.data, run.progress
    try:
        figures = run_figures(run.run_dir, p.history, test, logits, data.test, data.classes, best_epoch=p.best_epoch)
        images, labels = augmented_batch(run.cfg, data)
        figures.append(grid(run.run_dir / "plots" / "train_batch.png", images,
                            [printable(data.classes[int(y)]) for y in labels],
                            suptitle="a training batch as the model sees it (augmented)"))
        (run.run_dir / "plots").mkdir(parents=True, exist_ok=True)
        draw_all(figures)    # in the plot painter the command started, if it did (report/painter.py)
        draw_duplicates(run)
    except (OSError, RuntimeError, ValueError) as e:
        warnings.warn(f"plots not written to {run.run_dir / 'plots'} ({e}); the test figures above and "
                      "summary.json are complete", stacklevel=2)
    write_report_or_warn(run.run_dir)  # report.html: from the files just written, like `imgclf report`


def draw_duplicates(run: Run, most: int = 8) -> None:
    """plots/duplicates.png: the first pairs of repeated images side by side (test against train first), for the
    report; nothing when none were found."""
    from ..report.checkpage import pair_strip

    pairs = sorted(run.duplicates.pairs if run.duplicates else [], key=lambda p: (p.split != "test", p.distance))
    if pairs:
        with atomic_write(run.run_dir / "plots" / "duplicates.png") as f:
            pair_strip(run.data, pairs[:most]).save(f, "PNG")


def finish(run: Run, t_start: float) -> dict[str, Any]:
    """Test the chosen checkpoint (picked on val, never on test) once; write summary.json, the plots and
    report.html."""
    cfg, p, data = run.cfg, run.progress, run.data
    if run.world.is_main and p.best_epoch is not None and p.best_epoch != p.epoch:
        saved = load_checkpoint(run.run_dir / "best.pt")
        if (saved.get("run_id"), saved.get("epoch")) != (run.run_id, p.best_epoch):   # never test other weights
            raise CheckpointError(f"{run.run_dir / 'best.pt'}: holds epoch {saved.get('epoch')} of run "
                                  f"{saved.get('run_id')}, not the best epoch {p.best_epoch} of run {run.run_id} "
                                  "(replaced by hand?); restore it, or evaluate last.pt with imgclf eval")
        load_model_state(run.eval_model, saved["ema"] or saved["model"], str(run.run_dir / "best.pt"), cfg.model)
    t_test = time.perf_counter()
    # in the run's precision where native here, else fp32 (device.inference_dtype): as `imgclf eval` computes on a
    # machine of this kind, so it reproduces the figure exactly
    with phase("test"):
        logits = predict_logits(run.eval_model, data.test, run.norm, run.device, **run.views)
    repeats = run.data_identity.get("test_repeats") or []
    test, repeated = test_metrics(logits, data.test.labels, data.classes, repeats, cfg.test_duplicates)
    test_seconds = time.perf_counter() - t_test
    images_seen = sum(r["images_per_second"] * r["seconds"] for r in p.history)
    best = p.history[p.best_epoch - 1] if p.best_epoch else {}
    summary = {
        "dataset": data.name, "model": cfg.model, "recipe": cfg.recipe, "epochs": run.epochs,
        "classes": data.classes, "test_split_size": repeated["images"] if repeated else len(data.test),
        "test_duplicates": repeated, "duplicates": run.duplicates.counts if run.duplicates else None,
        "test_accuracy": test["accuracy"], "test_loss": test["loss"],
        "test_balanced_accuracy": test["balanced_accuracy"], "test_macro_f1": test["macro_f1"],
        **({"test_top5_accuracy": test["top5_accuracy"]} if "top5_accuracy" in test else {}),
        "per_class_accuracy": test["per_class_accuracy"],
        "precision": test["precision"], "recall": test["recall"], "f1": test["f1"],
        "confusion_matrix": test["confusion_matrix"],  # test split; rows: true class (the report's tables)
        "val_accuracy": best.get("val_accuracy"), "val_loss": best.get("val_loss"), "best_epoch": p.best_epoch,
        "epochs_run": p.epoch, "stopped_early": p.stopped_early, "select": cfg.select if data.val else None,
        "checkpoint_selected_on": "val" if data.val is not None else "last epoch (no validation split)",
        "checkpoint_choice": selection.reason(p.history, p.best_epoch, cfg.select, p.stopped_early),
        "train_seconds": round(p.train_seconds, 3), "test_seconds": round(test_seconds, 3), "resumed": run.resumed,
        "total_seconds": round(time.perf_counter() - t_start, 3),
        "images_per_second": round(images_seen / max(p.train_seconds, 1e-9), 1),
        "device": console.device_name(run.device), "machine": machine_record(run.device),
        "compute_precision": str(run.prec.autocast_dtype or "fp32").replace("torch.", ""),
        "precision_mode": run.prec.name, "precision_reason": run.prec.reason,
        "test_computed_in": precision_name(run.views["autocast_dtype"]),
        "parameters": count_parameters(run.model), "tta": cfg.tta, "tta_shift": cfg.tta_shift if cfg.tta else 0,
        "tta_mirror": cfg.tta and run.views["tta_mirror"],
        "ema": cfg.ema, "steps": p.global_step, "thread_changes": p.thread_changes,
        "budget": run.budget_plan and {"seconds": run.budget_plan["budget_seconds"], "within": None},
        "linear_probe": run.probe,
        "normalization": {"mean": run.mean, "std": run.std}, "seed": cfg.seed,
        "run_dir": str(run.run_dir), "checkpoint": str(run.run_dir / "best.pt"),
        "imgclf_version": __version__, "torch_version": torch.__version__,
    }
    if run.world.is_main:
        write_summary(run.run_dir, summary)       # the figures first: pictures are best-effort after them
        console.test_report(summary, test)
        if cfg.plots:
            with phase("plots and report"):
                write_pictures(run, test, logits)
        summary["total_seconds"] = round(time.perf_counter() - t_start, 3)
        if summary["budget"] and not run.resumed:   # a resumed command's seconds are not the whole run's
            summary["budget"]["within"] = summary["total_seconds"] <= summary["budget"]["seconds"]
        write_summary(run.run_dir, summary)
        run.callbacks.on_train_end(summary)   # the trackers read the plots and report just written
    return summary
