"""How a run stops early without losing work: signals (finish the step, save, say how to resume) and a loss
that is no longer a number (stop before anything bad is saved)."""

from __future__ import annotations

import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import torch

from ..errors import ImgclfError


class TrainingStopped(ImgclfError):
    """Raised after a signal: the run was saved and can be resumed; `exit_code` is what the CLI returns."""

    exit_code = 130


class NonFiniteLoss(ImgclfError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def check_finite(loss: torch.Tensor, epoch: int, step: int, lr: float, base_lr: float, run_dir: Path | None) -> None:
    """Stop before anything is saved once the loss is NaN/inf: the last checkpoint on disk stays the last good one."""
    value = float(loss)
    if not math.isfinite(value):
        kept = f"{run_dir / 'last.pt'} keeps the last good state (if one was saved)" if run_dir else "nothing saved"
        hint = f"try a lower --lr (e.g. {base_lr / 10:g})" if math.isfinite(base_lr) else "use a finite --lr"
        raise NonFiniteLoss(f"loss is {value} at epoch {epoch + 1}, step {step + 1} (lr {lr:.4g}); the run stopped "
                            f"and {kept}; {hint}")


class Stopper:
    """First SIGINT/SIGTERM: finish the step, save, stop. A second one: stop at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(f"\n{self.requested}: finishing this step and saving (press Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

    def stopped(self, epoch: int, step: int, run_dir: Path) -> TrainingStopped:
        return TrainingStopped(f"stopped by {self.requested} at epoch {epoch + 1}, step {step + 1}; saved "
                               f"{run_dir / 'last.pt'}. Resume with: imgclf train --resume {run_dir / 'last.pt'}")

    def __enter__(self) -> Stopper:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
