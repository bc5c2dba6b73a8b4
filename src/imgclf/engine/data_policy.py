"""What a run decides from its data, and checks against it (the settings fitted to the data are config.py's): a note
on how coarse a small val split is, loss weights for imbalanced classes, and on resume, that the data is the same."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch

from ..config import TrainConfig
from ..data import Dataset
from ..data.hf import PREFIX as HF
from ..data.registry import NAMED, locate
from ..data.split import test_split_changes
from ..errors import ImgclfError


def recorded_data_dir(user: dict[str, Any], then: dict[str, Any] | None) -> dict[str, Any]:
    """A resumed run looks for its data where the run found it: a named dataset in that folder (not today's
    default, never downloading again) unless --data-dir says otherwise; an image folder given by a relative path
    at its recorded absolute place when the command runs from another directory (a CSV file and a Hugging Face
    dataset's folder too)."""
    raw = str((then or {}).get("source") or "")
    if raw.startswith(HF) or str(user.get("data", "")).startswith(HF):
        return _recorded_hf(user, raw)
    source = Path(raw)
    if not source.name or user.get("data_dir"):
        return user
    data = Path(str(user.get("data", ""))).expanduser()
    if source.exists() and not data.exists() and data.name == source.name:
        return {**user, "data": str(source)}            # the run's image folder or CSV, from another working directory
    if data.exists() or _found_by_default(str(user.get("data", "")), source):
        return user       # config.yaml keeps saying what the run was given
    folder = source if source.is_dir() else source.parent
    return {**user, "data_dir": str(folder)} if folder.is_dir() else user


def _recorded_hf(user: dict[str, Any], source: str) -> dict[str, Any]:
    """A local Hugging Face dataset given by a relative path (hf:PATH), at its recorded place when the command runs
    from another directory."""
    given = str(user.get("data", ""))
    if not (given.startswith(HF) and source.startswith(HF)):
        return user
    here, then = Path(given[len(HF):]).expanduser(), Path(source[len(HF):])
    return {**user, "data": source} if not here.exists() and then.exists() and here.name == then.name else user


def _found_by_default(name: str, source: Path) -> bool:
    """Whether named dataset `name` would be read from `source` without a --data-dir (packaged with imgclf, or in
    the default data folder)."""
    ds = NAMED.get(name.lower())
    if ds is None:
        return False
    if not ds.files:
        return True
    found = locate(name.lower())
    return found is not None and found.resolve() in (source.resolve(), *source.resolve().parents)


def check_same_data(then: dict[str, Any] | None, now: dict[str, Any], where: str) -> None:
    """Resume only onto the data the run was training on: the same classes, split sizes, test split and (for a
    folder) the same place. Checkpoints from before this record was kept are not checked."""
    if not then:
        return
    test = test_split_changes(then, now)
    changed = [what for what, differs in (
        (f"classes {then['classes'][:6]} → {now['classes'][:6]}", then["classes"] != now["classes"]),
        (f"split sizes {then['sizes']} → {now['sizes']}", then["sizes"] != now["sizes"]),
        (f"the test split ({', '.join(test)})", bool(test)),
        ("the training files or their labels", "train_fingerprint" in then
         and then["train_fingerprint"] != now.get("train_fingerprint")),
        ("the training images' pixels, under the same file names", "train_pixels" in then
         and then.get("train_fingerprint") == now.get("train_fingerprint")
         and not test and then["train_pixels"] != now.get("train_pixels")),
        (f"the data's place {then['source']} → {now['source']}", then["source"] != now["source"]
         and Path(then["source"].removeprefix(HF)).exists())) if differs]
    if changed:
        raise ImgclfError(f"{where}: the data has changed since this run was saved ({'; '.join(changed)}); resuming "
                          "would mix two datasets in one run. Restore the data, or start a new run (--init-weights "
                          f"{where} starts from these weights)")


IMBALANCE_RATIO = 3.0     # largest / smallest class from which imgclf warns and (--class-weights auto) reweights


def val_noise_note(data: Dataset) -> list[str]:
    """A val split under a few hundred images measures accuracy coarsely: say by how much."""
    n = len(data.val) if data.val is not None else 0
    if not 0 < n < 500:
        return []
    return [f"val split of {n} images: one image is {100 / n:.2f} points of val accuracy (at 90% the 95% interval "
            f"is ±{196 * (0.09 / n) ** 0.5:.1f} points); epochs that differ by less are a tie"]


def class_weights(cfg: TrainConfig, data: Dataset, device: torch.device) -> torch.Tensor | None:
    """Loss weights n/(k·n_class) for --class-weights balanced, or for auto when the largest class has at least
    IMBALANCE_RATIO times the images of the smallest (then also a warning naming them); None otherwise."""
    counts = torch.bincount(data.train.labels, minlength=data.num_classes).double()
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if len(present) else 1.0
    balance = cfg.class_weights == "balanced" or (cfg.class_weights == "auto" and ratio >= IMBALANCE_RATIO)
    if ratio >= IMBALANCE_RATIO:
        hi, lo = int(counts.argmax()), int(torch.where(counts > 0, counts, math.inf).argmin())
        warnings.warn(f"imbalanced classes: {data.classes[hi]!r} has {int(counts[hi])} training images, "
                      f"{data.classes[lo]!r} {int(counts[lo])} ({ratio:.0f}×); "
                      + ("the loss weighs classes equally (--class-weights none to turn off)" if balance else
                         "--class-weights none: the loss favours the large classes")
                      + "; balanced accuracy and macro-F1 are reported beside accuracy", stacklevel=2)
    if not balance:
        return None
    weights = torch.where(counts > 0, counts.sum() / (len(present) * counts.clamp_min(1)), torch.zeros_like(counts))
    data.notes.append("loss weights per class: " + ", ".join(f"{c} {w:.2f}" for c, w in zip(data.classes, weights)))
    return weights.float().to(device)
