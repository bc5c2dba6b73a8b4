"""What a run decides from its data, and checks against it (the settings fitted to the data are config.py's): a note
on how coarse a small val split is, one on a profile that the training size changed, loss weights for imbalanced
classes, and on resume, that the data is the same."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch

from ..config import TrainConfig, photos_layer
from ..data import Dataset
from ..data.hf import PREFIX as HF
from ..data.registry import NAMED, locate
from ..data.split import test_split_changes
from ..errors import ImgclfError
from ..recipes import MODEL_DEFAULTS, PROFILES, RECIPES, profile_name
from ..words import counted


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


def check_same_data(then: dict[str, Any], now: dict[str, Any], where: str) -> None:
    """Resume only onto the data the run was training on: the same classes, split sizes, test split, training files
    and (for a folder) the same pixels and place."""
    test = test_split_changes(then, now)
    changed = [what for what, differs in (
        (f"classes {then['classes'][:6]} → {now['classes'][:6]}", then["classes"] != now["classes"]),
        (f"split sizes {then['sizes']} → {now['sizes']}", then["sizes"] != now["sizes"]),
        (f"the test split ({', '.join(test)})", bool(test)),
        ("the training files or their labels", then["train_fingerprint"] != now["train_fingerprint"]),
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
    return [f"val split of {counted(n, 'image')}: one image is {100 / n:.2f} points of val accuracy (at 90% the 95% "
            f"interval is ±{196 * (0.09 / n) ** 0.5:.1f} points); epochs that differ by less are a tie"]


def profile_note(data: Dataset, user: dict[str, Any], file: dict[str, Any] | None, plan: dict[str, Any] | None,
                 weights_ready: bool) -> list[str]:
    """When the size the images train at gives them another settings profile than their size as stored (a photo
    folder at --image-size 32 takes the 32×32 colour settings): say so, and which settings that changes. The profile
    follows the trained size because its settings are tuned for the size the network sees: weather-mwd's photos at
    32×32 (3 seeds) reached 93.3% test with the 32×32 colour settings, 90.6% with the photos ones from scratch and
    82.3% from the photos' pretrained default (ImageNet features at 32 px)."""
    if data.stored_shape is None:
        return []
    own, used = profile_name(data.name, data.stored_shape), profile_name(data.name, data.shape)
    if own == used:
        return []
    recipe = user.get("recipe") or (file or {}).get("recipe") or ""
    model = user.get("model") or (file or {}).get("model") or (plan or {}).get("model") or ""
    above = {**MODEL_DEFAULTS.get(model, {}), **RECIPES.get(recipe, {}), **(plan or {}), **(file or {}), **user}

    def settings(profile: str) -> dict[str, Any]:
        return {**TrainConfig().to_dict(), **PROFILES[profile],
                **photos_layer(user, file, plan, profile, weights_ready)}

    theirs, ours = settings(own), settings(used)
    keys = sorted((k for k in ours if k not in above and ours[k] != theirs[k]),
                  key=lambda k: FIRST_SAID.index(k) if k in FIRST_SAID else len(FIRST_SAID))
    changed = ", ".join(f"--{k.replace('_', '-')} {_shown(theirs[k])} → {_shown(ours[k])}" for k in keys[:5])
    more = f" and {len(keys) - 5} more (--print-config lists them)" if len(keys) > 5 else ""
    median = " (the median image)" if data.train.keys is not None else ""
    return [f"trained at {data.shape[1]}×{data.shape[2]}, images stored at {data.stored_shape[1]}×"
            f"{data.stored_shape[2]} px{median} take the {used} profile's settings, not the {own} profile's: "
            f"{changed}{more}; a flag you give wins"] if keys else []


FIRST_SAID = ("val_split", "model", "pretrained", "epochs", "flip", "batch_size")   # profile_note's order


def _shown(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) \
        else str(value)


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
