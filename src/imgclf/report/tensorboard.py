"""TensorBoard event files for a run (`--tensorboard`, or `callbacks=[TensorBoardLogger()]`; the optional extra
`imgclf[tensorboard]`), a callback (callbacks.py): RUN_DIR/tensorboard/ gets each epoch's figures of metrics.csv as
scalars against the epoch, the settings with the final metrics as hparams, and the confusion matrix and prediction
grid that the run drew in plots/ as images; RUN_DIR/tensorboard/steps/ the training loss, learning rate and
images/s of the steps steps.csv records, against the global step.

The two x-axes are two folders (two TensorBoard runs) because a resumed run replaces what followed its checkpoint
by purging each folder's events from a step on: from the epoch after the checkpoint's in one, from the step after
its step in the other. `tensorboard --logdir runs/train` then compares runs. torch.utils.tensorboard (and so
TensorBoard) is imported only when a run asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError
from .callbacks import Callback

INSTALL = "pip install 'imgclf[tensorboard]'"
# metrics.csv column → TensorBoard tag (train and val side by side in one chart section)
SCALARS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_accuracy": "accuracy/train",
           "val_accuracy": "accuracy/val", "lr": "lr", "images_per_second": "images_per_second"}
# on_step's row → tag in tensorboard/steps/
STEP_SCALARS = {"loss": "step/loss", "lr": "step/lr", "images_per_second": "step/images_per_second"}
# plots/ file → image tag
IMAGES = {"confusion.png": "test/confusion_matrix", "predictions.png": "test/predictions"}


def require() -> None:
    """Fail in one line, before a run folder is made, when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError(f"--tensorboard needs the tensorboard package, which is not installed: {INSTALL}") from None


class TensorBoardLogger(Callback):
    """One run's event files, in `log_dir` (default RUN_DIR/tensorboard)."""

    def __init__(self, log_dir: str | Path | None = None) -> None:
        require()
        self.given = Path(log_dir) if log_dir is not None else None
        self.log_dir: Path | None = None
        self.info: dict[str, Any] = {}
        self.epoch = 0

    def on_train_start(self, info: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.info, self.epoch = info, info["epoch"]
        self.log_dir = self.given or Path(info["run_dir"]) / "tensorboard"
        # a resumed run logs again from its checkpoint: purge what a killed process wrote after it
        self.writer = SummaryWriter(str(self.log_dir), purge_step=info["epoch"] + 1 if info["epoch"] else None)
        self.steps = SummaryWriter(str(self.log_dir / "steps"), purge_step=info["step"] + 1 if info["step"] else None)

    def on_step(self, step: int, row: dict[str, Any]) -> None:
        for key, tag in STEP_SCALARS.items():
            self.steps.add_scalar(tag, row[key], step)

    def on_epoch_end(self, epoch: int, row: dict[str, Any]) -> None:
        """One row of metrics.csv, at step = its epoch; flushed, so a stopped run keeps every finished epoch."""
        self.epoch = epoch
        for key, tag in SCALARS.items():
            if row.get(key) is not None:
                self.writer.add_scalar(tag, row[key], epoch)
        self.writer.flush()
        self.steps.flush()

    def on_train_end(self, summary: dict[str, Any]) -> None:
        """The plots (if the run drew them) as images, the settings and final metrics as hparams; then close."""
        for name, tag in IMAGES.items():
            path = Path(self.info["run_dir"]) / "plots" / name
            if path.is_file():
                with Image.open(path) as im:
                    self.writer.add_image(tag, np.asarray(im.convert("RGB")), self.epoch, dataformats="HWC")
        metrics = {f"hparams/{k}": summary[k] for k in ("test_accuracy", "test_loss", "val_accuracy")
                   if summary.get(k) is not None}
        settings = self.info.get("config", {})
        hparams = {k: v for k, v in settings.items() if isinstance(v, (bool, int, float, str))}
        self.writer.add_hparams(hparams, metrics, run_name=".", global_step=self.epoch)  # ".": this run's folder
        self.close()

    def on_train_error(self, error: BaseException) -> None:
        self.close()

    def close(self) -> None:
        self.writer.close()
        self.steps.close()
