"""RUN_DIR/steps.csv: the training loss and learning rate every N steps, so that even a one-epoch run has a curve.

Rows are appended as the run goes (one short write per logged step, no per-step sync with the device: the loop
reads the loss only on the steps it logs). At each epoch start the file is checked against where the run is: a
torn last line or rows past the current step (a crash after the last checkpoint, then `--resume`) are dropped,
so a resumed run's file holds exactly the rows of an uninterrupted one."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from .run_dir import write_text

COLUMNS = ("step", "epoch", "loss", "lr")
TARGET_ROWS = 200   # a run logs about this many rows (at least one per step: short runs log every step)


def log_every(total_steps: int) -> int:
    """Log every N steps so a run has ~TARGET_ROWS rows (100-500 once it has at least 100 steps)."""
    return max(1, total_steps // TARGET_ROWS)


class StepLog:
    """The steps.csv of one run, opened at an epoch start with the run at global step `done`."""

    def __init__(self, run_dir: Path, total_steps: int, steps_per_epoch: int, done: int) -> None:
        self.path = Path(run_dir) / "steps.csv"
        self.every = log_every(total_steps)
        self.steps_per_epoch = steps_per_epoch
        self._trim(done)

    def _trim(self, done: int) -> None:
        """Keep the header and the complete rows up to step `done`; rewrite the file only if that drops something."""
        header = ",".join(COLUMNS) + "\n"
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            write_text(self.path, header)
            return
        lines = text.splitlines(keepends=True)
        keep = [line for line in lines[1:]
                if line.endswith("\n") and (step := _step_of(line)) is not None and step <= done]
        if lines[:1] != [header] or len(keep) != len(lines) - 1:
            write_text(self.path, header + "".join(keep))

    def retotal(self, total_steps: int) -> None:
        """The run's total changed mid-epoch (a budget's re-plan): log at the interval a resume from here will."""
        self.every = log_every(total_steps)

    def wants(self, step: int) -> bool:
        """Whether global step `step` (1-based: steps done after it) is logged: the first, then every N-th."""
        return step == 1 or step % self.every == 0

    def write(self, step: int, loss: float, lr: float) -> None:
        """Append one row; `epoch` is fractional (steps done / steps per epoch: 1.0 is the end of the first)."""
        with open(self.path, "a") as f:
            f.write(f"{step},{step / self.steps_per_epoch:.6g},{loss:.6g},{lr:.6g}\n")

    def sync(self) -> None:
        """fsync the rows written so far: called before a checkpoint is saved, so no checkpoint is newer than them."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _step_of(line: str) -> int | None:
    """The step of a complete row, or None for a line that is not one (torn by a crash, or garbage)."""
    parts = line.rstrip("\n").split(",")
    if len(parts) != len(COLUMNS):
        return None
    try:
        [float(p) for p in parts[1:]]
        return int(parts[0])
    except ValueError:
        return None


def read_steps(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of RUN_DIR/steps.csv as {step: int, epoch, loss, lr: float}; [] when the run has none."""
    try:
        text = (Path(run_dir) / "steps.csv").read_text()
    except FileNotFoundError:
        return []
    rows = []
    for r in csv.DictReader(text.splitlines()):
        try:
            rows.append({"step": int(r["step"]), **{k: float(r[k]) for k in COLUMNS[1:]}})
        except (TypeError, ValueError, KeyError):
            continue
    return rows
