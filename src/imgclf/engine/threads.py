"""A CPU run's threads kept fitted to the machine while it trains, where they were chosen for it (no --threads, no
OMP_NUM_THREADS: machine.py chose them at start-up). Load that arrives later is otherwise never seen: a 2-core run
that started with 2 threads went 8× slower when another 2-thread PyTorch job started (OpenMP threads spin against
each other), where 1 thread would have run at half speed; and a machine that becomes quiet again gets its threads
back. The loop reads the clock once a step; /proc only when a check is due."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import machine

CHECK_EVERY_S = 25.0   # seconds of training between checks: a window this long averages out a passing burst (a
                       # compile, an editor's indexer) and its two /proc reads (~5 ms each) cost under 0.1%, yet a run
                       # slowed 8× by a new job loses at most this long at that pace


def fitted_to_machine(device: torch.device, given_threads: Any, world_size: int) -> bool:
    """Whether a run's threads are the machine's choice (build.machine_threads'): on the CPU, one process, no
    --threads given and no OMP_NUM_THREADS (torchrun's). Only such a run's threads are re-checked."""
    return device.type == "cpu" and world_size == 1 and not given_threads and machine.omp_threads() is None


def recheck(run: Any, since: machine.Sample, step: int) -> dict[str, Any] | None:
    """The threads chosen again from what other processes took since `since`: where the count that fits changed,
    torch's threads and run.threads (the settings a checkpoint records, so a resume computes with the same) become
    it, and the change (step, before, after, why) is appended to run.progress.thread_changes and returned."""
    others = machine.others_busy(since)
    if others is None:   # not measured: the count stays
        return None
    threads, why = machine.choose_threads(others)
    if threads == run.threads:
        return None
    change = {"step": step, "before": run.threads, "after": threads, "why": why}
    torch.set_num_threads(threads)
    run.threads = threads
    if run.progress.thread_changes is not None:
        run.progress.thread_changes.append(change)
    return change


@dataclass
class ThreadWatch:
    """Re-checks a run's threads (recheck) every `every` seconds of the loop, over the window since the last check;
    the window starts at the first step the loop takes (not the start-up before it)."""

    every: float = field(default_factory=lambda: CHECK_EVERY_S)
    since: machine.Sample | None = None
    due: float = -math.inf   # a time.perf_counter() reading: when the next check is

    def after_step(self, run: Any, step: int) -> dict[str, Any] | None:
        """Called after each step (`step`: the steps done): the change when a check made one, else None."""
        if time.perf_counter() < self.due:
            return None
        return self.check(run, step)

    def check(self, run: Any, step: int) -> dict[str, Any] | None:
        """Check now (a budget's re-plan does, before it times the loop) and start the next window."""
        change = recheck(run, self.since, step) if self.since is not None else None
        self.since = machine.sample()
        self.due = time.perf_counter() + self.every
        return change
