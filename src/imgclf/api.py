"""The Python API, mirroring the CLI: train(), load() → Classifier with .predict() and .evaluate()."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Dataset, load_dataset
from .data.batches import Normalizer
from .data.images import decode_image, is_image_file
from .data.split import Split
from .engine.checkpoint import arch_of, load_checkpoint, load_model_state
from .engine.evaluate import metrics_from_logits, predict_logits
from .engine.setup import pick_device
from .engine.train import train
from .errors import CheckpointError, DataError
from .exported import exported_format, open_exported
from .models import MODELS, build_model


def _infer_args(state: dict[str, torch.Tensor], image_size: int | None) -> dict[str, Any]:
    """in_channels and num_classes read off a bare state_dict (first conv / last linear weight)."""
    weights = [v for k, v in state.items() if k.endswith("weight")]
    first4 = next((w for w in weights if w.ndim == 4), None)
    last2 = [w for w in weights if w.ndim == 2]
    if not last2:
        raise CheckpointError("cannot tell the number of classes from this state_dict (no linear layer)")
    channels = int(first4.shape[1]) if first4 is not None else 3
    size = image_size or (32 if channels == 3 else 28)
    return {"in_channels": channels, "num_classes": int(last2[-1].shape[0]), "image_size": [size, size]}


class Classifier:
    """A trained model ready for use: weights, class names, input size and normalization, on one device."""

    def __init__(self, model: torch.nn.Module, classes: list[str], model_args: dict[str, Any],
                 mean: list[float], std: list[float], device: torch.device, tta: bool = False,
                 source: str = "", config: dict[str, Any] | None = None, channels_last: bool = False) -> None:
        self.model, self.classes, self.model_args = model.eval(), classes, model_args
        self.mean, self.std, self.device, self.tta = mean, std, device, tta
        self.source, self.config = source, config or {}
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.normalize = Normalizer(mean, std, device, channels_last=channels_last)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        h, w = self.model_args["image_size"]
        return self.model_args["in_channels"], int(h), int(w)

    def predict(self, images: Any, topk: int = 1) -> list[dict[str, Any]]:
        """Classify image files/folders (paths), or a uint8 N×C×H×W tensor; returns one dict per image with
        'class', 'probability' and the 'topk' list. Files are converted and resized to what the model expects."""
        files: list[str] = []
        if isinstance(images, torch.Tensor):
            batch = images
        else:
            items = [images] if isinstance(images, (str, os.PathLike)) else list(images)
            files = expand_image_paths(items)
            c, h, w = self.image_shape
            batch = torch.from_numpy(np.stack([decode_image(f, (h, w), "L" if c == 1 else "RGB") for f in files]))
        if batch.dtype != torch.uint8 or tuple(batch.shape[1:]) != self.image_shape:
            raise DataError(f"predict expects uint8 images of shape N×{'×'.join(map(str, self.image_shape))}, "
                            f"got {batch.dtype} {tuple(batch.shape)}")
        split = Split(batch, torch.zeros(len(batch), dtype=torch.int64), "predict")
        probs = torch.softmax(predict_logits(self.model, split, self.normalize, self.device, tta=self.tta), 1)
        k = max(1, min(topk, len(self.classes)))
        top_p, top_i = probs.topk(k, 1)
        out = []
        for n in range(len(batch)):
            ranked = [{"class": self.classes[int(i)], "probability": round(float(p), 6)}
                      for p, i in zip(top_p[n], top_i[n])]
            item = {"class": ranked[0]["class"], "probability": ranked[0]["probability"], "topk": ranked}
            if files:
                item = {"file": files[n], **item}
            out.append(item)
        return out

    def evaluate(self, data: str | Dataset | None = None, data_dir: str | None = None, split: str = "test",
                 **load_args: Any) -> dict[str, Any]:
        """Loss, accuracy, per-class accuracy, P/R/F1 and confusion matrix on a split of `data`
        (default: the dataset the model was trained on, with its settings)."""
        if isinstance(data, Dataset):
            ds = data
        else:
            cfg = self.config
            name = data or cfg.get("data")
            if not name:
                raise DataError("this checkpoint does not record its dataset; pass --data")
            same = name == cfg.get("data")
            ds = load_dataset(name, data_dir or (cfg.get("data_dir") if same else None),
                              image_size=self.image_shape[1] if self.image_shape[1] == self.image_shape[2] else None,
                              val_split=cfg.get("val_split", 0.0) if same else 0.0,
                              test_split=cfg.get("test_split", 0.2), seed=cfg.get("seed", 0), quiet=True, **load_args)
        if ds.shape != self.image_shape:
            raise DataError(f"{ds.name}: images are {ds.shape} (C, H, W) but the model takes {self.image_shape}")
        if ds.classes != self.classes:
            if len(ds.classes) != len(self.classes) or not all(c.isdigit() for c in self.classes):
                raise CheckpointError(f"{self.source}: trained on classes {self.classes[:5]}… but {ds.name} has "
                                      f"{ds.classes[:5]}…; evaluate on data with the same class list")
            self.classes = list(ds.classes)  # a bare state_dict had numbered classes: adopt the data's names
        part = ds.split(split)
        logits = predict_logits(self.model, part, self.normalize, self.device, tta=self.tta)
        m = metrics_from_logits(logits, part.labels, ds.classes)
        return {"dataset": ds.name, "split": split, "checkpoint": self.source, "classes": ds.classes,
                "test_accuracy" if split == "test" else f"{split}_accuracy": m["accuracy"],
                "test_loss" if split == "test" else f"{split}_loss": m["loss"], **m}


def expand_image_paths(items: list[str | os.PathLike]) -> list[str]:
    """Files as given, folders walked (image files only, sorted); a missing path is a DataError."""
    files: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and is_image_file(f))
            if not found:
                raise DataError(f"{p}: folder holds no image files (.jpg/.png/.bmp/.webp/.gif)")
            files.extend(found)
        elif p.is_file():
            files.append(str(p))
        else:
            raise DataError(f"{p}: no such file or folder")
    return files


def load(path: str | Path, model: str | None = None, device: str = "auto", classes: list[str] | None = None,
         image_size: int | None = None, normalize: str = "half") -> Classifier:
    """Load an imgclf checkpoint, a file from `imgclf export` (.onnx, run by onnxruntime, or TorchScript), or a bare
    state_dict (then `model` names the network; `normalize` 'half' is the tutorial's (x-0.5)/0.5, 'none' leaves
    pixels in [0, 1])."""
    fmt = exported_format(path)
    if fmt:  # the exported graph stands in for the network; its metadata gives classes, size and normalization
        e = open_exported(path, fmt, device)
        return Classifier(e.model, e.classes, e.model_args, e.mean, e.std, e.device, e.tta, str(path), e.config)
    ckpt = load_checkpoint(path)
    dev = pick_device(device)
    if ckpt["format_version"] >= 1:
        name = model or ckpt["model_name"]
        args = ckpt["model_args"]
        state = ckpt.get("ema") or ckpt["model"]
        names, norm, tta, config = ckpt["classes"], ckpt["normalization"], ckpt.get("tta", False), ckpt["config"]
        channels_last = bool(ckpt.get("channels_last")) and dev.type != "mps"
    else:
        if model is None:
            raise CheckpointError(f"{path}: a bare state_dict does not say which network it is; pass --model "
                                  f"({', '.join(MODELS)})")
        name, state = model, ckpt["model"]
        args = _infer_args(state, image_size)
        names = classes or [str(i) for i in range(args["num_classes"])]
        c = args["in_channels"]
        norm = {"mean": [0.5] * c, "std": [0.5] * c} if normalize == "half" else {"mean": [0.0] * c, "std": [1.0] * c}
        tta, config, channels_last = False, {}, False
    net = build_model(name, args["in_channels"], args["num_classes"], tuple(args["image_size"]),
                      **(arch_of(ckpt) if name == ckpt.get("model_name") else {}))
    load_model_state(net, state, str(path), name)
    if len(names) != args["num_classes"]:
        raise CheckpointError(f"{path}: {len(names)} class names for a model with {args['num_classes']} outputs")
    return Classifier(net.to(dev), list(names), args, norm["mean"], norm["std"], dev, tta, str(path), config,
                      channels_last)


def predict(checkpoint: str | Path, images: Any, topk: int = 1, **load_args: Any) -> list[dict[str, Any]]:
    """Shortcut: load(checkpoint).predict(images)."""
    return load(checkpoint, **load_args).predict(images, topk=topk)


def evaluate(checkpoint: str | Path, data: str | None = None, data_dir: str | None = None,
             **load_args: Any) -> dict[str, Any]:
    """Shortcut: load(checkpoint).evaluate(data)."""
    return load(checkpoint, **load_args).evaluate(data, data_dir)


__all__ = ["Classifier", "evaluate", "load", "predict", "train"]
