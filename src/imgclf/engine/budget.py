"""`--budget T`: fit a run to the machine it runs on, so that the whole command ends within T.

A short calibration builds the run for each candidate setting and measures, on this machine, the seconds per
training step (batch production included), per tested image (TTA views included) and per checkpoint write. The
plan then takes the most capable candidate the budget gives enough epochs (recipes.BUDGET_LADDERS, on the data kinds
it was tuned for; otherwise the settings as resolved) and fixes the run's total steps so that the learning-rate
schedule ends exactly when the time left after validation, testing and the report runs out. The plan is a settings
layer ("budget plan", config.py) recorded in config.yaml and in every checkpoint: `--resume` replays the same steps
and schedule instead of measuring again.

The calibration alone has missed the loop's own pace by up to 19% (a quiet Zen 4: the loop slower, by an amount that
varied from run to run), so a fresh run times its own first steps too (Replan): at the end of the warm-up, whose
learning rates do not depend on the total, it plans the total once more from the loop's measured step, before the
first epoch-end checkpoint is written. (A checkpoint saved before it, by --save-every-steps or a stop, holds the
calibrated plan, and a resume from it keeps that plan.) A machine's pace also drifts after that (a 1-minute run on a
Zen 5 stepped 39.6 ms at the re-plan and ~50 ms after it, and ended 8% late), so the run then keeps timing its steps
(epoch ends left out: they are planned apart) and, every REFIT_EVERY_S seconds of them, fits the rest of the
schedule to the time left again (Replan's refits). A resume replays the plan its checkpoint holds.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .. import verbosity
from ..checkpoint import save_checkpoint
from ..config import budget_seconds, load_settings
from ..errors import ConfigError
from ..recipes import BUDGET_LADDERS, RECIPES, profile_name
from .build import build_run, load_data
from .evaluate import predict_logits
from .probe import extract
from .step import EpochTotals, step_loop

PLOTS_SECONDS = 2.5     # plots and report.html: six figures in the painter, two processes (Zen 4: 0.8-1.0 s; slack)
SAFETY = 0.20           # of the training time: the loop's steps ran 0-12% (fastcnn-tiny) and 19% (fastcnn-medium,
                        # every epoch alike) slower than calibrated on a quiet Zen 4, and a machine drifts while the
                        # run goes on (at 0.10, one 1-minute run in three and a 5-minute run overran)
PLAN_SAFETY = 0.10      # instead, for choosing the model, when the loop will re-plan on its own timed steps
REPLAN_SAFETY = 0.05    # of the rest of the training, planned on the loop's own steps: the drift after them
TRUSTED_WINDOW_S = 8.0  # a re-plan's timed steps, shorter than this, can only shorten the plan: fastcnn-tiny's 1.4 s
                        # of steps measured 22.6 ms against 25.6 ms for the run (one run over budget) and 30.3 ms
                        # against 24.6 ms in another; windows of 10-32 s were within 2% (a VM's pace wanders)
REPLAN_FROM = 4         # the first steps (one-off allocations, a cold cache) are not timed
MIN_TIMED_STEPS = 16    # a re-plan times at least these many steps (else the calibrated plan stands)
REFIT_EVERY_S = 15.0    # after the re-plan, the rest of the schedule is fitted again to each window of this many
                        # seconds of steps: long enough to average out a passing burst (TRUSTED_WINDOW_S), short
                        # enough that a 1-minute run refits twice
REFIT_TOLERANCE = 0.02  # of the steps left: a smaller change is not made (config.yaml is not rewritten for noise)
EXIT_SECONDS = 1.5      # after the summary: the result line, the interpreter's exit (Zen 4: ~2 s wall after it)
CALIBRATION_SHARE = 0.01    # of the budget, per candidate, spent measuring steps (at least MIN_CALIBRATION_S)
MIN_CALIBRATION_S = 0.4
PROBE_FIT_SECONDS = 5.0  # a linear probe's heads fitted on its features (weather photos, 1,536 × 1,280: 3.0 s)
EPOCH_SECONDS = 0.01    # an epoch's end besides checkpoints and validation: metrics.csv, the console line
RUNG_KEYS = ("min_epochs", "max_epochs")   # a ladder rung's own keys, not settings
LENGTH_KEYS = ("epochs", "steps")   # what a budget plans: set above it (a file's, your flags), the budget gives way


@dataclass
class Calibration:
    """What one candidate costs on this machine."""

    step_seconds: float     # one training step
    eval_seconds: float     # one image through validation/testing (with its TTA views)
    save_seconds: float     # one checkpoint written (and the rest of an epoch's end)
    setup_seconds: float    # building the run once more for real (data from memory, model, batches)
    probe_seconds: float = 0.0   # a --linear-probe epoch: its features extracted (not cached yet) and heads fitted


def candidates(user: dict[str, Any], file: dict[str, Any] | None, name: str, shape: tuple[int, int, int]
               ) -> list[dict[str, Any]]:
    """The settings the plan chooses between: the profile's ladder (recipes.BUDGET_LADDERS) where one was tuned for
    this kind of data and nothing names a model or size; otherwise only the settings as they resolve."""
    recipe = RECIPES.get(user.get("recipe") or (file or {}).get("recipe") or "", {})
    named = {**recipe, **(file or {}), **user}
    ladder = BUDGET_LADDERS.get(profile_name(name, shape))
    if ladder and "model" not in named and "image_size" not in named:
        return [dict(c) for c in ladder]
    return [{"min_epochs": 0}]


def calibrate(run: Any, seconds: float, out: str | None = None) -> Calibration:
    """Step `run` (a throw-away build) as the loop does (step.step_loop: the lookahead and EMA too, when the run
    has them), epoch after epoch, for about `seconds` after two warm-up steps; then time a test pass on a slice of
    the test split and a checkpoint written to disk as a run writes it."""
    run.model.train()
    totals = EpochTotals.restore(None, run.device)
    warm, n, t0 = 2, 0, 0.0
    # past the throw-away run's own total, its lookahead (if any) pulls every step: a little slower, the safe side
    for s in step_loop(run, run.batches, lambda done: run.cfg.lr * 0.1):
        totals.add(s.loss, s.logits, s.y)
        if warm:
            warm -= 1
            if not warm:
                s.loss.item()   # CUDA runs ahead: wait, then start the clock
                t0 = time.perf_counter()
            continue
        n += 1
        if n >= 3 and n % 4 == 0 and (s.loss.item() or True) and time.perf_counter() - t0 >= seconds:
            break
    step_seconds = (time.perf_counter() - t0) / n
    test = run.data.test.subset(torch.arange(min(len(run.data.test), 256)))   # one batch: six TTA views are costly
    t0 = time.perf_counter()
    predict_logits(run.eval_model, test, run.norm, run.device, **run.views)
    eval_seconds = (time.perf_counter() - t0) / max(len(test), 1)
    folder = Path(out) if out and Path(out).is_dir() else None
    with tempfile.TemporaryDirectory(dir=folder, prefix=".imgclf-calibration-") as tmp:
        t0 = time.perf_counter()
        save_checkpoint(run.checkpoint(), Path(tmp) / "calibration.pt")
        save_seconds = time.perf_counter() - t0
    probe = probe_cost(run)
    if probe:   # its epoch's end too: a validation and two checkpoints
        probe += len(run.data.val or []) * eval_seconds + 2 * (save_seconds + EPOCH_SECONDS)
    return Calibration(step_seconds, eval_seconds, save_seconds + EPOCH_SECONDS, 0.0, probe)


def probe_cost(run: Any) -> float:
    """A --linear-probe epoch's seconds, measured on a slice of train: the features of every train image (both views
    when it mirrors) and val image, as if none were cached, and PROBE_FIT_SECONDS for the heads."""
    if not run.cfg.linear_probe:
        return 0.0
    part = run.data.train.subset(torch.arange(min(len(run.data.train), 16)))
    extract(run.model, part.subset(torch.arange(min(len(part), 2))), run.norm, run.device, run.prec)   # warm up
    t0 = time.perf_counter()
    extract(run.model, part, run.norm, run.device, run.prec)
    per_image = (time.perf_counter() - t0) / max(len(part), 1)
    views = 2 if run.views["tta_mirror"] else 1
    return per_image * (views * len(run.data.train) + len(run.data.val or [])) + PROBE_FIT_SECONDS


def steps_within(seconds: float, c: Calibration, steps_per_epoch: int, n_val: int, n_test: int, eval_every: int,
                 plots: bool, done: int = 0, margin: float = SAFETY) -> int:
    """The most training steps whose run, with its validations, checkpoints (last and best each epoch), test pass
    and report, fits in `seconds` (0 if none does); with `done` steps already taken, the most total steps whose rest
    (its steps and the ends of the epochs not yet ended) fits (`done` if none)."""
    fixed = c.setup_seconds + c.probe_seconds + n_test * c.eval_seconds + (PLOTS_SECONDS if plots else 0.0) + \
        EXIT_SECONDS
    step = c.step_seconds * (1 + margin)

    def cost(steps: int) -> float:
        last, ended = math.ceil(steps / steps_per_epoch), max(done - 1, 0) // steps_per_epoch
        epochs = last - ended      # the epoch ends to come; validated: every eval_every-th, and the last
        validations = last // eval_every - ended // eval_every + (last % eval_every != 0) if n_val else 0
        return fixed + (steps - done) * step + validations * n_val * c.eval_seconds + 2 * epochs * c.save_seconds

    lo, hi = done, done + int(max(0.0, seconds - fixed) / step)   # cost(hi + 1) > seconds
    while lo < hi:             # cost grows with the steps (in jumps at epoch ends): the most that fit, by bisection
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= seconds else (lo, mid - 1)
    return lo


def last_fitting(n: int, fits: Callable[[int], bool]) -> int:
    """The last of candidates 0..n-1 that `fits` (0 if none does), asking `fits` about log2(n) times: along the
    ladder each rung costs more a step and asks at least as many epochs, so once one does not fit, none after
    it does. Each question is a calibration, seconds of the budget that do not train."""
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def _steps_for(run: Any, seconds: float, cal: Calibration, margin: float, done: int = 0) -> int:
    """steps_within `seconds` for `run`'s data and settings as calibrated (`done` steps already taken)."""
    return steps_within(seconds, cal, run.steps_per_epoch, len(run.data.val or []), len(run.data.test),
                        run.cfg.eval_every, run.cfg.plots, done=done, margin=margin)


def _steps_left(budget: float, started: float, cal: Calibration, run: Any, margin: float) -> int:
    """steps_within the time left now for `run` as calibrated."""
    return _steps_for(run, budget - (time.perf_counter() - started), cal, margin)


def replan_step(cfg: Any, steps_per_epoch: int, total_steps: int) -> int | None:
    """The global step after which a fresh budgeted run re-plans: the warm-up's last, if the warm-up ends inside
    the first epoch (so every epoch-end checkpoint holds the final plan), is not cut short by a short run (Run.lr's
    half-the-run cap: then a longer total would move it) and leaves steps enough to time; and only if the steps timed
    are the run's steps (a frozen backbone or smaller first images are cheaper). Else None: the calibrated plan
    stands, with its larger margin. Not after a linear probe: its epoch's checkpoint, written before any step, would
    hold the calibrated plan, and a resume from it would not replay the re-plan."""
    if cfg.freeze_epochs or cfg.progressive_epochs or cfg.linear_probe:   # the probe's epoch saves before the steps
        return None
    warmup = round(cfg.warmup * steps_per_epoch)
    fits = REPLAN_FROM + MIN_TIMED_STEPS <= warmup < steps_per_epoch and warmup <= total_steps // 2
    return warmup if fits else None


@dataclass
class Replan:
    """The loop's one re-plan of a fresh budgeted run (see the module's docstring): it times the loop from step
    REPLAN_FROM to step `at`, then fixes the total steps that end the whole command by `deadline`. Timed steps
    shorter than TRUSTED_WINDOW_S in all can only shorten the calibrated plan (they are noise-prone)."""

    deadline: float          # a time.perf_counter() reading: when the command must have ended
    cal: Calibration         # the chosen candidate's: validation, test and checkpoint costs
    at: int
    max_steps: int | None = None  # the plan's cap (a rung's max_epochs)
    t0: float = 0.0
    threads: dict[str, Any] | None = None
    last: float | None = None   # after the re-plan: the clock at the last step, and the steps' time and count since
    timed: float = 0.0          # the last refit (refit)
    timed_steps: int = 0

    def after_step(self, run: Any, done: int) -> dict[str, Any] | None:
        """Called after each step with the steps done; at `at`, changes the run's steps and epochs (and the record in
        run.budget_plan) and returns the record, so the loop can say so; after it, the refits' (refit). Before the
        timed steps, where the run's threads are the machine's choice, its watch (threads.py) checks them now, over
        the first steps, so the steps it times are the ones the rest of the run takes."""
        if self.last is not None:
            return self.refit(run, done)
        if done == REPLAN_FROM:
            watch = run.thread_watch
            self.threads = watch.check(run, done) if watch is not None else None
            self.t0 = _now(run)
        if done != self.at:
            return None
        now = _now(run)
        measured = max((now - self.t0) / (done - REPLAN_FROM), 1e-9)
        trusted = now - self.t0 >= TRUSTED_WINDOW_S
        step, margin = (measured, REPLAN_SAFETY) if trusted else (max(measured, self.cal.step_seconds), PLAN_SAFETY)
        cal = Calibration(step, self.cal.eval_seconds, self.cal.save_seconds, 0.0)   # the probe is done by now
        total = _steps_for(run, self.deadline - now, cal, margin, done)
        before = run.steps
        if not trusted:
            total = min(total, before)
        if self.max_steps:
            total = min(total, self.max_steps)
        run.steps = max(total, 2 * self.at)   # ≥ twice the warm-up: Run.lr keeps the warm-up it has begun
        run.epochs = math.ceil(run.steps / run.steps_per_epoch) + run.probe_epochs
        run.budget_plan["replan"] = {"at_step": done, "loop_step_seconds": round(measured, 6),
                                     "calibrated_step_seconds": round(self.cal.step_seconds, 6),
                                     "timed_seconds": round(now - self.t0, 3), "trusted": trusted,
                                     "steps_before": before, "steps": run.steps,
                                     **({"threads": self.threads} if self.threads else {})}
        self.last = _tick()
        return run.budget_plan["replan"]

    def refit(self, run: Any, done: int) -> dict[str, Any] | None:
        """After the re-plan: add the step just taken to the timed window (not the first of an epoch: the epoch's end
        came before it), and once the window holds REFIT_EVERY_S seconds, fit the total steps to the time left at its
        pace. A change of more than REFIT_TOLERANCE of the steps left is made and appended to the record's 'refits'
        and returned; else None."""
        if done >= run.steps:   # the run's last step: nothing left to fit
            return None
        now = _tick()
        if run.progress.step_in_epoch > 1:
            self.timed, self.timed_steps = self.timed + now - self.last, self.timed_steps + 1
        self.last = now
        if self.timed < REFIT_EVERY_S:
            return None
        pace = self.timed / self.timed_steps
        self.timed, self.timed_steps = 0.0, 0
        cal = Calibration(pace, self.cal.eval_seconds, self.cal.save_seconds, 0.0)
        total = max(_steps_for(run, self.deadline - _now(run), cal, REPLAN_SAFETY, done), 2 * self.at, done + 1)
        total, before = min(total, self.max_steps or total), run.steps
        if abs(total - before) <= REFIT_TOLERANCE * max(before - done, 1):
            return None
        run.steps = total
        run.epochs = math.ceil(run.steps / run.steps_per_epoch) + run.probe_epochs
        record = {"at_step": done, "loop_step_seconds": round(pace, 6), "steps_before": before, "steps": total}
        run.budget_plan["replan"].setdefault("refits", []).append(record)
        return record


def _tick() -> float:
    """The clock a refit reads after every step: no device sync (CUDA runs a few steps ahead, a 15 s window
    absorbs it)."""
    return time.perf_counter()


def _now(run: Any) -> float:
    """The clock, after the device has finished what it was given (CUDA and MPS run ahead of Python)."""
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    elif run.device.type == "mps":
        torch.mps.synchronize()
    return time.perf_counter()


@dataclass
class Plan:
    """A budget's outcome: the settings layer it adds, what was measured and chosen (the checkpoint's
    'budget_plan'), and a line for the run header."""

    layer: dict[str, Any]
    record: dict[str, Any] | None = None
    note: str = ""
    calibration: Calibration | None = None   # the chosen candidate's (a Replan's costs besides the steps)
    deadline: float | None = None            # a time.perf_counter() reading: when the whole command must end
    max_steps: int | None = None             # the rung's max_epochs: the most steps a re-plan may give


def file_under_flags(user: dict[str, Any], file: dict[str, Any] | None) -> dict[str, Any] | None:
    """The --config file's settings under your flags: a length you give (--budget, --epochs or --steps) replaces the
    file's epochs and steps (every run's own config.yaml has both, and its steps would win over your --epochs), as
    flags override the file everywhere else."""
    if file and any(k in user for k in ("budget", *LENGTH_KEYS)):
        return {k: v for k, v in file.items() if k not in LENGTH_KEYS}
    return file


def plan_budget(user: dict[str, Any], file: dict[str, Any] | None, started: float,
                loaded: dict[str, Any] | None = None) -> Plan | None:
    """The "budget plan" for a new run (None without a budget), made before the run is built: calibrates each
    candidate on a throw-away run built quietly with that candidate's layer (the datasets kept in `loaded` for the
    real build), then plans the steps (and model and size) to end by `started` + budget."""
    given = {**(file or {}), **user}
    loaded = {} if loaded is None else loaded
    yours = load_settings(user, file)["budget"]   # a flag's, a config file's or a recipe's
    profiles, profile = profile_budget(user, file, loaded)   # loads the data, as the run shows it (downloads)
    text = yours or profiles
    if text is None:
        return None
    profile = None if yours else profile   # the header says a budget you did not give is the profile's
    fixed = [k for k in LENGTH_KEYS if k in given]
    if fixed:
        if "budget" in user:   # file_under_flags took the file's epochs and steps away: these are your flags
            raise ConfigError(f"--budget plans the run's length itself; drop --{fixed[0]} (or drop --budget)")
        return Plan({"budget": None})   # a recipe's, a file's or a profile's budget gives way to epochs / steps set
    budget = budget_seconds(text)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:   # each process would plan its own steps, then wait on the others
        if profile:
            return Plan({"budget": None}, note=f"the {profile} profile's {text} budget is planned by one process: "
                                               "under torchrun the run trains the profile's epochs instead")
        raise ConfigError("--budget measures and plans one process; under torchrun the processes would plan different "
                          "step totals and hang. Give --steps N (or --epochs) instead, e.g. the steps a budgeted "
                          "single-process run recorded in its config.yaml")

    def build(layer: dict[str, Any]) -> Any:
        with verbosity.at(verbosity.QUIET):
            return build_run(user, file, None, layer, loaded)

    t0 = time.perf_counter()
    first = build({})
    first_setup = time.perf_counter() - t0
    share = max(MIN_CALIBRATION_S, CALIBRATION_SHARE * budget)
    cands = candidates(user, file, first.data.name, first.data.shape)
    measured: dict[int, tuple[dict[str, Any], dict[str, Any], Calibration, Any, int]] = {}

    def fits(i: int) -> bool:
        """Calibrate candidate i (once): does it get its min_epochs in the time left?"""
        if i not in measured:
            layer = {k: v for k, v in cands[i].items() if k not in RUNG_KEYS}
            t0 = time.perf_counter()
            reuse = all(getattr(first.cfg, k) == v for k, v in layer.items())
            run = first if reuse else build(layer)
            setup = first_setup if reuse else time.perf_counter() - t0
            cal = calibrate(run, share, run.cfg.out)
            cal.setup_seconds = max(setup, 0.2)
            measured[i] = (cands[i], layer, cal, run, _steps_left(budget, started, cal, run,
                                                                 _margin(run, budget, started, cal)))
        cand, _, _, run, steps = measured[i]
        return steps > 0 and steps >= cand["min_epochs"] * run.steps_per_epoch

    pick = last_fitting(len(cands), fits)
    fits(pick)   # measured already unless every costlier rung failed
    cand, layer, cal, run, _ = measured[pick]
    spe = run.steps_per_epoch
    most = cand["max_epochs"] * spe if cand.get("max_epochs") else None
    steps = _steps_left(budget, started, cal, run, _margin(run, budget, started, cal))   # after all the measuring
    steps = min(steps, most) if most else steps
    probe_only = run.cfg.linear_probe and steps < min(20, spe) and _probe_fits(budget, started, cal, run)
    if probe_only:   # no time to fine-tune: the probe alone
        steps = 0
    elif steps < min(20, spe):
        raise ConfigError(f"--budget {budget:g}s is too short for this data on this machine: start-up and "
                          f"calibration took {time.perf_counter() - started:.1f} s and a training step takes "
                          f"{cal.step_seconds * 1e3:.0f} ms; give a longer budget, or --epochs instead")
    record = {"budget_seconds": budget, "planned_at_seconds": round(time.perf_counter() - started, 3),
              "calibration": [{**c, **{k: round(v, 6) for k, v in asdict(m).items()}, "planned_steps": n,
                               "steps_per_epoch": r.steps_per_epoch, "rung": i, "chosen": i == pick}
                              for i, (c, _, m, r, n) in sorted(measured.items())]}
    probe = "a linear probe, then " if run.cfg.linear_probe else ""
    whose = f" (the {profile} profile's; --epochs N to choose)" if profile else ""
    capped = ": the most this rung trains" if most and steps == most else ""
    note = (f"budget {budget:g} s{whose}: {probe}{steps:,} steps ({steps / spe:.1f} epochs{capped}) of "
            f"{run.cfg.model} at {run.data.shape[1]}×{run.data.shape[2]}, {cal.step_seconds * 1e3:.1f} ms a step "
            f"measured here; the schedule ends at step {steps:,}")
    if probe_only:
        note = (f"budget {budget:g} s: the linear probe alone ({run.cfg.model} at {run.data.shape[1]}×"
                f"{run.data.shape[2]}): fine-tuning steps of {cal.step_seconds * 1e3:.0f} ms do not fit")
    length = {"steps": 0, "epochs": 1} if probe_only else {"steps": steps}
    return Plan(copy.deepcopy({**layer, **length}), record, note, cal, started + budget, most)


def profile_budget(user: dict[str, Any], file: dict[str, Any] | None, loaded: dict[str, Any]
                   ) -> tuple[str | None, str | None]:
    """The data profile's own budget (recipes.PROFILES: 28×28 grayscale spends a minute) and the profile's name;
    (None, None) where the profile has none. Loads the data to know its profile, into `loaded`, where the run's
    builds find it: at the command's own level, so a download shows its progress once."""
    data, cfg, _ = load_data(user, file, None, loaded, int(os.environ.get("WORLD_SIZE", "1")))
    return (cfg.budget, profile_name(data.name, data.shape)) if cfg.budget else (None, None)


def _probe_fits(budget: float, started: float, cal: Calibration, run: Any) -> bool:
    """Whether a linear probe's run without fine-tuning (its epoch, the test pass, the report) fits the time left."""
    left = budget - (time.perf_counter() - started)
    return left >= cal.setup_seconds + cal.probe_seconds + len(run.data.test) * cal.eval_seconds + \
        (PLOTS_SECONDS if run.cfg.plots else 0.0) + EXIT_SECONDS


def _margin(run: Any, budget: float, started: float, cal: Calibration) -> float:
    """The calibrated plan's margin: the smaller PLAN_SAFETY where the loop will re-plan on its own steps."""
    steps = _steps_left(budget, started, cal, run, PLAN_SAFETY)
    return PLAN_SAFETY if replan_step(run.cfg, run.steps_per_epoch, steps) is not None else SAFETY
