"""Inference over a whole split (large batches, inference mode, optional flip TTA) and the metrics from it."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import reflect_index
from ..data.batches import Batches, Normalizer
from ..data.split import Split


def tta_logits(model: nn.Module, x: torch.Tensor, shift: int = 0, mirror: bool = True) -> torch.Tensor:
    """Test-time augmentation: the mean of the image's and its mirror's logits; with `shift`, airbench's six views:
    that pair weighted 1/2, and the pairs of the image translated by `shift` pixels up-left and down-right
    (reflected at the edges as --crop-pad's translations are, so any shift works on any size) 1/4 each.
    `mirror=False` (a model trained without flips: a mirrored digit is another glyph) leaves the mirrors out."""
    def pair(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * (model(v).float() + model(v.flip(3)).float()) if mirror else model(v).float()

    logits = pair(x)
    if shift:
        logits = 0.5 * logits + 0.25 * (pair(translated(x, -shift)) + pair(translated(x, shift)))
    return logits


def translated(x: torch.Tensor, d: int) -> torch.Tensor:
    """x with pixel (i, j) taken from (i + d, j + d), reflected back in where that runs off the image (F.pad's
    reflect mode for |d| below the size, which it requires)."""
    h, w = x.shape[-2:]
    rows = reflect_index(torch.arange(h, device=x.device) + d, h)
    cols = reflect_index(torch.arange(w, device=x.device) + d, w)
    return x[..., rows[:, None], cols]


def inference_batch(split: Split, device: torch.device) -> int:
    """Images per inference batch, fewer as they grow: on a CPU 256 for small images, about 2**19 pixels a batch
    (EfficientNet-Lite0 at 224 px ran at 61 img/s in batches of 8, 38 in 32, 22 in 256: large activations cost page
    faults); on a GPU 1024, about 2**23 pixels (224 px: 167 images, ~1.2 GB for its largest fp32 activation)."""
    h, w = split.images.shape[-2:] if split.images.ndim == 4 else (1, 1)
    if device.type == "cuda":
        return max(1, min(1024, 2**23 // max(1, h * w)))
    return max(1, min(256, 2**19 // max(1, h * w)))


@torch.inference_mode()
def predict_logits(model: nn.Module, split: Split, normalize: Normalizer, device: torch.device, tta: bool = False,
                   tta_shift: int = 0, tta_mirror: bool = True, autocast_dtype: torch.dtype | None = None
                   ) -> torch.Tensor:
    """Float32 logits (N, K) for every image of `split`, in order, computed under autocast to `autocast_dtype` (as
    the run trained: device.inference_dtype) or in fp32 (None); `tta` averages over views (tta_logits), in batches
    of inference_batch's size."""
    batch_size = inference_batch(split, device)
    was_training = model.training
    model.eval()
    out = []
    amp = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    for x, _ in Batches(split, batch_size, normalize, device=device).epoch(0):
        with amp:
            out.append(tta_logits(model, x, tta_shift, tta_mirror) if tta else model(x).float())
    model.train(was_training)
    return torch.cat(out).cpu() if out else torch.empty(0)


def metrics_from_logits(logits: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Loss, accuracy, balanced accuracy (mean recall over the classes present), macro-F1, top-5 accuracy (more
    than 5 classes), per-class accuracy, precision/recall/F1 and the confusion matrix (rows: truth)."""
    labels = labels.cpu()
    k = len(classes)
    logits = logits.reshape(-1, k) if logits.numel() == 0 else logits   # an empty split: no argmax over nothing
    pred = logits.argmax(1)
    loss = F.cross_entropy(logits, labels).item() if len(labels) else float("nan")
    cm = torch.bincount(labels * k + pred, minlength=k * k).reshape(k, k)
    tp = cm.diag().double()
    support = cm.sum(1).double()
    predicted = cm.sum(0).double()
    recall = torch.where(support > 0, tp / support.clamp_min(1), torch.nan)
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(tp))

    def per_class(t: torch.Tensor) -> dict[str, float | None]:
        return {c: (None if torch.isnan(v) else round(float(v), 6)) for c, v in zip(classes, t)}

    present = support > 0  # classes of this split: balanced accuracy and macro-F1 average over these
    out = {
        "loss": round(loss, 6),
        "accuracy": round(float((pred == labels).double().mean()), 6) if len(labels) else float("nan"),
        "balanced_accuracy": round(float(recall[present].mean()), 6) if present.any() else float("nan"),
        "macro_f1": round(float(f1[present].mean()), 6) if present.any() else float("nan"),
        "n": len(labels),
        "per_class_accuracy": per_class(recall),
        "precision": per_class(precision),
        "recall": per_class(recall),
        "f1": per_class(f1),
        "confusion_matrix": cm.tolist(),
    }
    if k > 5 and len(labels):
        top5 = logits.topk(5, 1).indices == labels[:, None]
        out["top5_accuracy"] = round(float(top5.any(1).double().mean()), 6)
    return out


def test_metrics(logits: torch.Tensor, labels: torch.Tensor, classes: list[str], repeats: list[int],
                 policy: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The test figures under --test-duplicates `policy`, and what the test images repeating training images
    (`repeats`: their indices) did to them (None when there are none). 'exclude' leaves them out of the figures,
    whose record then holds the accuracy with them too; 'keep' counts them and records the accuracy without."""
    whole = metrics_from_logits(logits, labels, classes)
    if not repeats:
        return whole, None
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[torch.as_tensor(repeats, dtype=torch.int64)] = False
    kept = metrics_from_logits(logits[keep.to(logits.device)], labels[keep.to(labels.device)], classes)
    record = {"policy": policy, "repeating_train": len(repeats), "images": int(keep.sum()) if policy == "exclude"
              else len(labels), "accuracy_without_them": kept["accuracy"], "accuracy_with_them": whole["accuracy"]}
    return (kept if policy == "exclude" else whole), record
