"""TensorBoard event files for a run (`--tensorboard`, the optional extra `imgclf[tensorboard]`): RUN_DIR/tensorboard/
gets each epoch's figures of metrics.csv as scalars, the settings with the final metrics as hparams, and the
confusion matrix and prediction grid that the run drew in plots/ as images.

`tensorboard --logdir runs/train` then compares runs. torch.utils.tensorboard (and so TensorBoard) is imported
only when a run asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError

INSTALL = "pip install 'imgclf[tensorboard]'"
# metrics.csv column → TensorBoard tag (train and val side by side in one chart section)
SCALARS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_accuracy": "accuracy/train",
           "val_accuracy": "accuracy/val", "lr": "lr", "images_per_second": "images_per_second"}
# plots/ file → image tag
IMAGES = {"confusion.png": "test/confusion_matrix", "predictions.png": "test/predictions"}


def require() -> None:
    """Fail in one line, before a run folder is made, when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError(f"--tensorboard needs the tensorboard package, which is not installed: {INSTALL}") from None


class TensorBoardLog:
    """One run's event files: `epoch(row)` after every epoch, `close(summary)` once the run is tested."""

    def __init__(self, run_dir: Path, settings: dict[str, Any], epochs_done: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir, self.settings, self.step = Path(run_dir), settings, epochs_done
        # a resumed run logs again from its checkpoint's epoch: purge what a killed process wrote after it
        self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=epochs_done + 1 if epochs_done
                                    else None)

    def epoch(self, row: dict[str, Any]) -> None:
        """One row of metrics.csv, at step = its epoch; flushed, so a stopped run keeps every finished epoch."""
        self.step = row["epoch"]
        for key, tag in SCALARS.items():
            if row.get(key) is not None:
                self.writer.add_scalar(tag, row[key], self.step)
        self.writer.flush()

    def close(self, summary: dict[str, Any]) -> None:
        """The plots (if the run drew them) as images, the settings and final metrics as hparams; then close."""
        for name, tag in IMAGES.items():
            path = self.run_dir / "plots" / name
            if path.is_file():
                with Image.open(path) as im:
                    self.writer.add_image(tag, np.asarray(im.convert("RGB")), self.step, dataformats="HWC")
        metrics = {f"hparams/{k}": summary[k] for k in ("test_accuracy", "test_loss", "val_accuracy")
                   if summary.get(k) is not None}
        hparams = {k: v for k, v in self.settings.items() if isinstance(v, (bool, int, float, str))}
        self.writer.add_hparams(hparams, metrics, run_name=".", global_step=self.step)  # ".": this run's folder
        self.writer.close()
