"""Exported models (`imgclf export`) as inference backends: an ONNX file run by onnxruntime, or a TorchScript file,
wrapped as an nn.Module that takes the normalized float batch and returns logits, opened into the record a
checkpoint's network is rebuilt into (checkpoint.Rebuilt), so `Classifier` (predict, evaluate, tta) uses it exactly
as it uses the network from a checkpoint. imgclf's exports take uint8 N×H×W×C pixels and hold the normalization
and TTA views themselves (PixelInput hands them the pixels back); a file whose metadata says no such input takes
the normalized float N×C×H×W batch, and Classifier averages its TTA views."""

from __future__ import annotations

import importlib
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint.checks import check_fields
from .checkpoint.rebuild import Rebuilt
from .engine.device import pick_device
from .errors import CheckpointError, ImgclfError
from .safeload import check_archive

REQUIRED = ("classes", "input_shape", "mean", "std")
EXTRA_FILE = "imgclf.json"  # the metadata's name inside a TorchScript archive
INPUT_DTYPE, INPUT_LAYOUT = "uint8", "NHWC"   # what imgclf's exported graphs take: pixels, as PIL and numpy hold them


class MissingExtraError(ImgclfError):
    """ONNX support (onnx, onnxruntime, onnxscript) is an optional extra that is not installed."""


def require(*modules: str) -> list[Any]:
    """Import the optional ONNX packages, or raise one line saying how to install them."""
    found, missing = [], []
    for name in modules:
        try:
            found.append(importlib.import_module(name))
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtraError(f"ONNX support is not installed (missing: {', '.join(missing)}): "
                                "pip install 'imgclf[onnx]'")
    return found


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of an exported file: FILE.json."""
    return Path(f"{path}.json")


def exported_format(path: str | Path) -> str | None:
    """'onnx' for a .onnx file, 'torchscript' for a TorchScript archive (a zip with compiled code), else None
    (a checkpoint, or no such file)."""
    p = Path(path)
    if not p.is_file():
        return None
    if p.suffix.lower() == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            if any(n.split("/")[1:2] == ["code"] for n in z.namelist()):
                return "torchscript"
    return None


class OnnxModel(nn.Module):
    """An ONNX file run by onnxruntime on the CPU. A graph with a fixed batch size gets the batch in chunks of that
    size (the last one padded with zeros, whose outputs are dropped)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        (ort,) = require("onnxruntime")
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input_name, self.input_type = first.name, first.type
        self.batch_size = first.shape[0] if isinstance(first.shape[0], int) else None

    def metadata(self) -> dict[str, Any]:
        """The file's metadata_props, each value decoded from JSON (as `imgclf export` writes them)."""
        props = self.session.get_modelmeta().custom_metadata_map
        out = {}
        for k, v in props.items():
            try:
                out[k] = json.loads(v)
            except ValueError:
                out[k] = v
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().to("cpu", torch.uint8 if x.dtype == torch.uint8 else torch.float32).contiguous().numpy()
        n, step = len(arr), self.batch_size
        if step is None or n == step:
            out = self.session.run(None, {self.input_name: arr})[0]
        else:
            parts = []
            for i in range(0, n, step):
                chunk = arr[i:i + step]
                if len(chunk) < step:
                    chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *arr.shape[1:]), arr.dtype)])
                parts.append(self.session.run(None, {self.input_name: chunk})[0])
            out = np.concatenate(parts)[:n]
        return torch.from_numpy(out).to(x.device)


def takes_pixels(meta: dict[str, Any]) -> bool:
    """Whether an exported file's metadata says it takes uint8 N×H×W×C pixels (else: the normalized float batch)."""
    given = meta.get("input")
    return isinstance(given, dict) and given.get("dtype") == INPUT_DTYPE and given.get("layout") == INPUT_LAYOUT


class PixelInput(nn.Module):
    """An exported graph that takes pixels, fed as Classifier feeds a network: the normalized float N×C×H×W batch
    is turned back into its uint8 pixels, N×H×W×C. Exact: x·255·std + 255·mean is within 1e-3 of the integer that
    (p/255 − mean)/std came from, far inside the half level that rounding forgives."""

    def __init__(self, graph: nn.Module, mean: list[float], std: list[float], device: torch.device) -> None:
        super().__init__()
        self.graph = graph
        self.register_buffer("scale", 255 * torch.tensor(std, dtype=torch.float32, device=device)[None, :, None, None])
        self.register_buffer("shift", 255 * torch.tensor(mean, dtype=torch.float32, device=device)[None, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = torch.addcmul(self.shift, x.float(), self.scale).round_().clamp_(0, 255)
        pixels = torch.empty((x.shape[0], *x.shape[2:], x.shape[1]), dtype=torch.uint8, device=x.device)
        return self.graph(pixels.copy_(values.permute(0, 2, 3, 1)))


def open_exported(path: str | Path, fmt: str, device: str = "auto") -> tuple[Rebuilt, torch.device]:
    """Open an exported file, and the device it runs on (ONNX: the CPU; TorchScript: `device`). Its metadata comes
    from inside the file (ONNX metadata_props, TorchScript extra file), else from the FILE.json sidecar."""
    path = Path(path)
    try:
        if fmt == "onnx":
            model: nn.Module = OnnxModel(path)
            meta, dev = model.metadata(), torch.device("cpu")
        else:
            dev = pick_device(device)
            check_archive(path)   # before torch.jit.load: a compressed member could expand to gigabytes
            extra = {EXTRA_FILE: ""}
            with warnings.catch_warnings():  # torch >= 2.13 calls torch.jit.load deprecated; it works as before
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.jit.load(str(path), map_location=dev, _extra_files=extra)
            meta = json.loads(extra[EXTRA_FILE]) if extra[EXTRA_FILE] else {}
        side = sidecar_path(path)
        if any(k not in meta for k in REQUIRED) and side.is_file():
            meta = json.loads(side.read_text())
    except ImgclfError:
        raise
    except Exception as e:  # onnxruntime's InvalidProtobuf/Fail derive from Exception: a damaged file, not a bug
        detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: cannot open this {fmt} file ({detail})") from None
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: no {', '.join(missing)} in the file or in {side.name}; "
                              "export it with `imgclf export`")
    shape = meta["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and isinstance(meta["classes"], list)):
        raise CheckpointError(f"{path}: metadata 'input_shape' {str(shape)[:40]} or 'classes' is not a list of "
                              "[C, H, W] / class names; export it again with `imgclf export`")
    args = {"in_channels": shape[0], "num_classes": len(meta["classes"]), "image_size": shape[1:]}
    # the same checks as a checkpoint's: a size of 100000 would make predict allocate gigabytes per image
    check_fields({"model_args": args, "classes": meta["classes"],
                  "normalization": {"mean": meta["mean"], "std": meta["std"]}}, path)
    pixels = takes_pixels(meta)
    if isinstance(model, OnnxModel) and pixels != (model.input_type == "tensor(uint8)"):
        said = "uint8 pixels" if pixels else "normalized floats"
        raise CheckpointError(f"{path}: its graph takes {model.input_type} but its metadata says {said}; export it "
                              "again with `imgclf export`")
    if pixels:
        model = PixelInput(model, meta["mean"], meta["std"], dev)
    tta = bool(meta.get("tta", False)) and not (pixels and meta.get("tta_in_graph"))   # views inside: not again
    return Rebuilt(model, f"{meta.get('model_name', 'model')} ({fmt} export)", args, list(meta["classes"]),
                   list(meta["mean"]), list(meta["std"]), tta, bool(meta.get("tta_mirror", True)),
                   dict(meta.get("config") or {}),
                   data=meta.get("data") if isinstance(meta.get("data"), dict) else None), dev


__all__ = ["MissingExtraError", "OnnxModel", "PixelInput", "exported_format", "open_exported", "require",
           "sidecar_path", "takes_pixels"]
