"""Training callbacks: objects given to `imgclf.train(..., callbacks=[...])` that the run calls as it goes, in the
process that writes the run folder. A callback has any of the methods of `Callback` (subclassing it is optional);
the experiment trackers (trackers.py: MLflow, Weights & Biases; tensorboard.py) are callbacks too.

Calls in a run: on_train_start once; on_step on the steps steps.csv records (every step of a short run, about 200
in all of a long one: the only steps whose loss the loop reads from the device); after each epoch on_epoch_end,
then on_checkpoint for each checkpoint that epoch wrote (and for a mid-epoch last.pt when it is written); at the
end on_train_end, or on_train_error when the run stops without a summary (a signal, a NaN loss, an error)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ConfigError

EVENTS = ("on_train_start", "on_step", "on_epoch_end", "on_checkpoint", "on_train_end", "on_train_error")
# summary.json's final figures that trackers log as metrics beside the per-epoch ones (test_* are added to these)
FINAL_FIGURES = ("best_epoch", "epochs_run", "steps", "train_seconds", "total_seconds", "parameters")


class Callback:
    """A callback whose methods do nothing: subclass it and write the ones you need."""

    def on_train_start(self, info: dict[str, Any]) -> None:
        """The run folder is made and config.yaml written. `info`: run_dir, run_id, config (the resolved settings;
        a --budget's re-plan in the first epoch updates its steps and epochs in place), resumed, epoch and step
        (done before this command: non-zero when resuming), epochs, steps_per_epoch, total_steps, dataset, classes,
        model."""

    def on_step(self, step: int, row: dict[str, Any]) -> None:
        """After global step `step` (1-based), on the steps steps.csv records. `row`: steps.csv's row (step,
        epoch as a fraction, loss: the training loss of this step's batch, lr) and images_per_second (the
        epoch's training rate so far)."""

    def on_epoch_end(self, epoch: int, row: dict[str, Any]) -> None:
        """After epoch `epoch` (1-based) is validated: `row` is the row metrics.csv gets (train_loss,
        train_accuracy, lr, seconds, images_per_second; val_loss, val_accuracy on epochs that validate)."""

    def on_checkpoint(self, path: Path, kind: str) -> None:
        """A checkpoint was written: `kind` is 'last' (every epoch end, and mid-epoch saves) or 'best'."""

    def on_train_end(self, summary: dict[str, Any]) -> None:
        """The run is tested and its files written: `summary` is summary.json's content."""

    def on_train_error(self, error: BaseException) -> None:
        """The run stopped before its summary (a Ctrl-C or SIGTERM: `was_stopped(error)`; a NaN loss; an error,
        a callback's too); its last.pt, if any, resumes it. The error is raised on after the callbacks."""


def was_stopped(error: BaseException) -> bool:
    """Whether a run ended by a signal (Ctrl-C, SIGTERM: resumable from last.pt) rather than by an error."""
    return isinstance(error, KeyboardInterrupt) or getattr(error, "exit_code", None) == 130


def final_figures(summary: dict[str, Any]) -> dict[str, float]:
    """summary.json's scalar test figures and run totals (test_accuracy, test_loss, …, best_epoch, steps), for a
    tracker's final metrics."""
    return {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and (k.startswith("test_") or k in FINAL_FIGURES)}


class Callbacks:
    """A run's callbacks, called in the order given; each call skips the callbacks without that method."""

    def __init__(self, callbacks: Iterable[Any] | None = ()) -> None:
        self.callbacks = checked(callbacks)
        self.info: dict[str, Any] | None = None   # on_train_start's, kept: the engine updates its config on a re-plan
        self.started: list[Any] = []               # the callbacks whose on_train_start returned (or that have none)
        self.ended = False

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def add(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def _call(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            method = getattr(cb, event, None)
            if method is not None:
                method(*[dict(a) if isinstance(a, dict) else a for a in args])   # each its own copy of a row

    def on_train_start(self, info: dict[str, Any]) -> None:
        self.info = info
        for cb in self.callbacks:
            method = getattr(cb, "on_train_start", None)
            if method is not None:
                method(info)
            self.started.append(cb)

    def on_step(self, step: int, row: dict[str, Any]) -> None:
        self._call("on_step", step, row)

    def on_epoch_end(self, epoch: int, row: dict[str, Any]) -> None:
        self._call("on_epoch_end", epoch, row)

    def on_checkpoint(self, path: Path, kind: str) -> None:
        self._call("on_checkpoint", path, kind)

    def on_train_end(self, summary: dict[str, Any]) -> None:
        self.ended = True
        self._call("on_train_end", summary)

    def on_train_error(self, error: BaseException) -> None:
        """Tell the started callbacks; a callback failing here is a warning, so the run's own error is the one
        raised."""
        if self.ended:
            return
        self.ended = True
        for cb in self.started:
            method = getattr(cb, "on_train_error", None)
            if method is not None:
                try:
                    method(error)
                except Exception as e:
                    warnings.warn(f"{type(cb).__name__}.on_train_error failed: {e}", stacklevel=2)


def checked(callbacks: Iterable[Any] | None) -> list[Any]:
    """The callbacks as a list, each an object with at least one of EVENTS; else a one-line ConfigError."""
    if callbacks is None:
        return []
    if any(callable(getattr(callbacks, e, None)) for e in EVENTS) or not isinstance(callbacks, Iterable):
        raise ConfigError(f"callbacks: expected a list of callback objects, got {type(callbacks).__name__}; "
                          "write callbacks=[...]")
    out = list(callbacks)
    for i, cb in enumerate(out):
        if isinstance(cb, type):
            raise ConfigError(f"callbacks[{i}] is the class {cb.__name__}, not a callback object: give an instance, "
                              f"{cb.__name__}(…)")
        if not any(callable(getattr(cb, e, None)) for e in EVENTS):
            raise ConfigError(f"callbacks[{i}] ({type(cb).__name__}) has none of the callback methods "
                              f"{', '.join(EVENTS)}")
    return out
