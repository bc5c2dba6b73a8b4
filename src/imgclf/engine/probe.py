"""The linear probe (`--linear-probe`, epoch 1 of a pretrained photo run): the frozen backbone's pooled features are
computed once per (pixels, weights, view, precision) and cached; a softmax-regression head is fitted on them with
L-BFGS for each weight decay of PROBE_DECAYS, the decay chosen on the val split (never on test), and the head copied
into the model. On a CPU this is seconds where training the head by SGD would take epochs of full forward passes, and
it gives the fine-tuning epochs after it a head that already fits (engine/train.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._version import __version__
from ..data.batches import Batches, Normalizer
from ..data.registry import cache_dir
from ..data.split import Split
from ..fileio import atomic_write
from ..models.pretrained import head_module
from .device import Precision
from .evaluate import inference_batch

PROBE_DECAYS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # L2 on the head's weights (mean loss + decay/2·|W|²)
NO_VAL_DECAY = 3e-3         # the decay used when there is no val split to choose on
FEATURES_VERSION = 1        # part of every cache key: a new layout never reads an old entry


def features_dir() -> Path:
    """Where pooled features are cached: a folder inside the image cache ($IMGCLF_CACHE_DIR/features), listed and
    cleared by `imgclf cache` (feature_entries, clear_features)."""
    return cache_dir() / "features"


def feature_entries() -> list[Path]:
    """The cached feature arrays (each with its .json record beside it)."""
    return sorted(features_dir().glob("*.npy")) if features_dir().is_dir() else []


def clear_features() -> tuple[int, int]:
    """Remove every cached feature entry (each is computed again when a run needs it); (entries, bytes) removed.
    Only the folder's .npy files and their .json records are touched: the folder is imgclf's own."""
    count = size = 0
    for path in feature_entries():
        for p in (path, path.with_suffix(".json")):
            with contextlib.suppress(OSError):
                size += p.stat().st_size
                p.unlink()
        count += 1
    return count, size


@contextlib.contextmanager
def head_inputs(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """While open, every forward pass of `model` appends the input of its head (the pooled features) to the list."""
    seen: list[torch.Tensor] = []
    hook = head_module(model)[1].register_forward_pre_hook(lambda _, args: seen.append(args[0].float().cpu()))
    try:
        yield seen
    finally:
        hook.remove()


@torch.inference_mode()
def extract(model: nn.Module, split: Split, norm: Normalizer, device: torch.device, prec: Precision,
            mirror: bool = False) -> torch.Tensor:
    """Pooled features (N, D) of every image of `split` (mirrored with `mirror`), in eval mode (BatchNorm's running
    statistics), in the run's precision."""
    was_training = model.training
    model.eval()
    try:
        with head_inputs(model) as seen, prec.autocast(device):
            for x, _ in Batches(split, inference_batch(split, device), norm, device=device).epoch(0):
                model(x.flip(3) if mirror else x)
    finally:
        model.train(was_training)
    return torch.cat(seen) if seen else torch.empty(0, head_module(model)[1].in_features)


def backbone_digest(model: nn.Module) -> str:
    """A digest of the network's code version and of every tensor but the head's: the features depend on these (and
    on what the state_dict does not hold: BatchNorm's eps, the padding; hence the class and imgclf's version)."""
    head = head_module(model)[0] + "."
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(model).__module__}.{type(model).__qualname__} {__version__} {torch.__version__}".encode())
    for name, t in model.state_dict().items():
        if not name.startswith(head):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def pixel_digest(split: Split) -> str:
    """A digest of a split's pixels (and their shape): computed once per split, shared by its views' keys."""
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps(list(split.images.shape)).encode())
    h.update(np.ascontiguousarray(split.images.numpy()).data)
    return h.hexdigest()


def features_key(pixels: str, backbone: str, norm: Normalizer, prec: Precision, device: torch.device,
                 mirror: bool) -> str:
    """The cache key: the pixels themselves (pixel_digest: so a changed image, size or resize never reads a stale
    entry), the backbone, the normalization, the view, and what decides the arithmetic (precision, layout, device,
    CPU capability). One key per split: a split that gains or loses an image computes all its features again."""
    return hashlib.blake2b(json.dumps([
        FEATURES_VERSION, pixels, backbone, norm.scale.flatten().tolist(), norm.shift.flatten().tolist(), prec.name,
        prec.channels_last, device.type, torch.backends.cpu.get_cpu_capability(), mirror]).encode(),
        digest_size=20).hexdigest()


def cached_features(model: nn.Module, split: Split, norm: Normalizer, device: torch.device, prec: Precision,
                    mirror: bool = False, backbone: str | None = None, pixels: str | None = None
                    ) -> tuple[torch.Tensor, bool]:
    """`extract`'s features, from the cache when an intact entry is there (True), else computed and stored (False).
    A damaged entry (unreadable, wrong shape or checksum) is replaced with a one-line warning. `backbone` and
    `pixels`: their digests, when the caller has them already."""
    key = features_key(pixels or pixel_digest(split), backbone or backbone_digest(model), norm, prec, device, mirror)
    folder = features_dir()
    found = _read_entry(folder, key)
    if found is not None:
        return found, True
    feats = extract(model, split, norm, device, prec, mirror)
    with contextlib.suppress(OSError):   # a read-only or full cache folder costs a recomputation, nothing more
        folder.mkdir(parents=True, exist_ok=True)
        array = feats.numpy()
        with atomic_write(folder / f"{key}.npy") as f:
            np.save(f, array, allow_pickle=False)
        with atomic_write(folder / f"{key}.json", text=True) as f:
            json.dump({"shape": list(array.shape), "sha256": hashlib.sha256(array.tobytes()).hexdigest(),
                       "version": FEATURES_VERSION}, f)
    return feats, False


def _read_entry(folder: Path, key: str) -> torch.Tensor | None:
    """The cached features under `key`, or None when there are none or they are damaged (then removed, said once)."""
    data, meta = folder / f"{key}.npy", folder / f"{key}.json"
    if not data.is_file() or not meta.is_file():
        return None
    try:
        record = json.loads(meta.read_text())
        array = np.load(data, mmap_mode="r", allow_pickle=False)   # mapped: a header claiming 373 GiB allocates none
        if (not isinstance(record, dict) or list(array.shape) != record.get("shape") or array.dtype != np.float32
                or hashlib.sha256(array.tobytes()).hexdigest() != record.get("sha256")):
            raise ValueError("shape or checksum differs from its record")
        return torch.from_numpy(np.array(array))
    except Exception as e:   # whatever a damaged file makes numpy raise (a broken .npy header: TokenError)
        warnings.warn(f"damaged feature cache entry {data.name} ({type(e).__name__}: {str(e)[:100]}): removed, "
                      "computing the features again", stacklevel=3)
        for p in (data, meta):
            with contextlib.suppress(OSError):
                p.unlink()
        return None


def fit_head(x: torch.Tensor, y: torch.Tensor, classes: int, decay: float,
             weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax regression on features `x` (N, D) with labels `y`: mean (class-weighted) cross-entropy + decay/2·|W|²
    minimised by L-BFGS from zero (convex: one answer, whatever the start). Returns (weight (K, D), bias (K,))."""
    x, y = x.double(), y.long()
    w = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    cw = weights.double().cpu() if weights is not None else None
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, tolerance_grad=1e-7, tolerance_change=1e-10,
                            history_size=20, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        opt.zero_grad()
        value = F.cross_entropy(x @ w.T + b, y, weight=cw) + 0.5 * decay * (w * w).sum()
        value.backward()
        return value

    with torch.enable_grad():
        opt.step(loss)
    return w.detach().float(), b.detach().float()


def _scores(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the head (w, b) on features x with labels y."""
    logits = x @ w.T + b
    return float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def choose_decay(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor] | None,
                 classes: int, weights: torch.Tensor | None = None,
                 decays: tuple[float, ...] = PROBE_DECAYS) -> dict[str, Any]:
    """Fit a head for each decay and keep the one with the best val accuracy (ties: lower val loss, then the larger
    decay). Only train and val features come in: the test split cannot sway the choice. Without val,
    NO_VAL_DECAY. Returns the head and a record of every decay's val figures."""
    if val is None or len(val[1]) == 0:
        w, b = fit_head(*train, classes, NO_VAL_DECAY, weights)
        return {"weight": w, "bias": b, "decay": NO_VAL_DECAY, "chosen_on": "no val split: the default decay",
                "tried": []}
    best, tried = None, []
    for decay in sorted(decays, reverse=True):
        w, b = fit_head(*train, classes, decay, weights)
        acc, loss = _scores(*val, w, b)
        tried.append({"decay": decay, "val_accuracy": round(acc, 6), "val_loss": round(loss, 6)})
        if best is None or (acc, -loss) > (best["val_accuracy"], -best["val_loss"]):
            best = {"weight": w, "bias": b, "decay": decay, "val_accuracy": acc, "val_loss": loss}
    assert best is not None
    return {**best, "chosen_on": "val", "tried": tried}


def run_probe(model: nn.Module, train: Split, val: Split | None, norm: Normalizer, device: torch.device,
              prec: Precision, classes: int, weights: torch.Tensor | None = None, mirror: bool = True
              ) -> dict[str, Any]:
    """Epoch 1 of a --linear-probe run: features of train (and its mirror, as a second view, with `mirror`) and val,
    a head chosen on val, copied into `model`'s head. Returns the epoch's figures and the probe's record."""
    t0 = time.perf_counter()
    backbone, pixels = backbone_digest(model), pixel_digest(train)   # once, for both views of train
    views = [cached_features(model, train, norm, device, prec, m, backbone, pixels)
             for m in ((False, True) if mirror else (False,))]
    x = torch.cat([v for v, _ in views])
    y = train.labels.repeat(len(views))
    val_xy = None
    hits = [hit for _, hit in views]
    if val is not None and len(val):
        val_x, hit = cached_features(model, val, norm, device, prec, False, backbone)
        val_xy, hits = (val_x, val.labels), [*hits, hit]
    t_fit = time.perf_counter()
    fit = choose_decay((x, y), val_xy, classes, weights)
    _, head = head_module(model)
    with torch.no_grad():
        head.weight.copy_(fit["weight"].to(head.weight.device))
        head.bias.copy_(fit["bias"].to(head.bias.device))
    acc, loss = _scores(x, y, fit["weight"], fit["bias"])
    seconds = time.perf_counter() - t0
    record = {"decay": fit["decay"], "chosen_on": fit["chosen_on"], "tried": fit["tried"],
              "feature_dim": int(x.shape[1]), "views": len(views), "cached": all(hits),
              "extract_seconds": round(t_fit - t0, 3), "fit_seconds": round(time.perf_counter() - t_fit, 3)}
    return {"train_loss": round(loss, 6), "train_accuracy": round(acc, 6), "seconds": round(seconds, 3),
            "images_per_second": round(len(y) / max(seconds, 1e-9), 1), "record": record}
