"""A run for `imgclf train`, from the command's settings to the first step: a budget planned (budget.py), the run
built (build.py), the state restored from a checkpoint (resume.py checks it is this run's) and the run folder;
and `--print-config`, which resolves the same way and builds nothing but a budget's throw-away calibration."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .. import verbosity
from ..config import DataFit, explain
from ..data.duplicates import Findings, find_duplicates, write_duplicates_csv
from ..fileio import remove_stale_temporaries
from ..report.run_dir import new_run_dir
from ..report.tensorboard import require as require_tensorboard
from ..words import counted, plural
from .budget import Replan, file_under_flags, plan_budget, replan_step
from .build import build_run, load_data, usable_threads
from .data_policy import check_same_data
from .device import pick_device
from .resume import check_run_folder, repair_epoch_end, resumed
from .run import Run
from .threads import ThreadWatch, fitted_to_machine

__all__ = ["Run", "build_run", "describe_settings", "load_data", "pick_device", "setup_run", "usable_threads"]


def setup_run(user: dict[str, Any], file: dict[str, Any] | None = None, resume: str | Path | None = None,
              started: float | None = None) -> Run:
    """A run for `imgclf train`: new (settings `file` < `user`, see config.py), or continued from `resume`.
    `started` (a time.perf_counter() reading) is when the command began: a --budget counts from it."""
    ckpt, plan, loaded = None, None, {}
    given_threads = {**(file or {}), **user}.get("threads")   # yours: a resume's settings hold the run's count
    if resume is not None:
        ckpt, user = resumed(resume, user, file)
        file = None
    else:
        file = file_under_flags(user, file)
        plan = plan_budget(user, file, time.perf_counter() if started is None else started, loaded)
    run = build_run(user, file, ckpt, plan.layer if plan else None, loaded)
    if plan is not None and plan.note and plan.record is None:   # a profile's budget that gave way
        run.data.notes.append(plan.note)
    if plan is not None and plan.record is not None:
        run.budget_plan = plan.record
        run.data.notes.append(plan.note)
        at = replan_step(run.cfg, run.steps_per_epoch, run.total_steps)
        if at is not None and plan.calibration is not None and plan.deadline is not None:
            run.replan = Replan(plan.deadline, plan.calibration, at, max_steps=plan.max_steps)
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
    fitted = fitted_to_machine(run.device, given_threads, run.world.size)
    if ckpt is None:
        run.progress.thread_changes = [] if fitted else None
    if fitted and run.progress.thread_changes is not None:   # a resume re-checks where the run it continues did
        run.thread_watch = ThreadWatch()
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
    loaded: dict[str, Any] = {}   # the data a budget's calibration loaded, loaded once
    if resume is not None:
        _, user = resumed(resume, user, file)
        file, plan = None, None
    else:
        file = file_under_flags(user, file)
        plan = plan_budget(user, file, time.perf_counter(), loaded)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    layer = plan.layer if plan else None
    with verbosity.at(verbosity.QUIET):
        data, _, auto = load_data(user, file, layer, loaded, world_size)
    c, h, w = data.shape
    lines = [f"# {data.name}: {len(data.train):,} train images of {c}×{h}×{w}, {data.num_classes} classes"]
    settings = explain(user, data.name, data.shape, file, layer, auto, DataFit(len(data.train), world_size))
    for key, (value, source) in settings.items():
        lines.append(f"{key}: {json.dumps(value)}  # {source}")
    if plan is not None and plan.record is not None:
        lines.append(f"# {plan.note}. Planned from a calibration here just now: the run measures again when it "
                     "starts (and once more on its own first steps), so its steps can differ a little")
    return "\n".join(lines)
