"""`imgclf export`: write a trained checkpoint as an ONNX or TorchScript file that runs without imgclf.

The exported graph takes the decoded PIXELS, uint8 N×H×W×C at the model's input size (the layout PIL and numpy give
an image), and does the rest of what `imgclf predict` does inside: (x/255 − mean)/std per channel, the change to
N×C×H×W, the network and, if the run used test-time augmentation, the average over its views; it returns the logits
N×K. Decoding and resizing cannot live in a graph of fixed input size: the sidecar JSON FILE.json states exactly how
imgclf does them (data/images.decoding_contract), with the class names and everything else `imgclf.load` reads back
(also inside the file: ONNX metadata_props, each value JSON; TorchScript extra file `imgclf.json`). Existing files
are never overwritten unless `force`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .api import Classifier, load
from .checkpoint import is_bare, load_checkpoint
from .data.batches import Normalizer
from .data.images import decoding_contract
from .data.split import Split
from .engine.evaluate import predict_logits, tta_logits
from .errors import CheckpointError, ConfigError, ImgclfError
from .exported import EXTRA_FILE, INPUT_DTYPE, INPUT_LAYOUT, MissingExtraError, require, sidecar_path
from .fileio import check_new_file, commit, temporary_name, write_text_atomic

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
INPUT_NAME, OUTPUT_NAME = "image", "logits"
# Tolerance of the export-time check (exported vs imgclf's own logits for the same pixels) and of the tests.
RTOL, ATOL = 1e-4, 1e-4
# Run settings that predict/evaluate read from Classifier.config (resize: how images meet the input size), copied
# into the metadata so an exported file predicts and evaluates as its checkpoint does.
EVAL_CONFIG_KEYS = ("data", "data_dir", "val_split", "test_split", "seed", "resize", "tta_shift")


class ExportError(ImgclfError):
    """The model could not be exported, or the target file exists."""


def default_output(checkpoint: str | Path, fmt: str) -> Path:
    """runs/x/best.pt → runs/x/best.onnx or runs/x/best.torchscript.pt."""
    p = Path(checkpoint)
    return p.with_name(p.stem + FORMATS[fmt])


class PixelGraph(nn.Module):
    """What an exported file computes: uint8 N×H×W×C pixels → N×C×H×W, (x/255 − mean)/std with Normalizer's
    arithmetic → the network, averaged over the run's TTA views as predict averages them (tta_logits) → float32
    logits N×K. The same function `imgclf predict` applies to the decoded, resized images."""

    def __init__(self, net: nn.Module, clf: Classifier) -> None:
        super().__init__()
        norm = Normalizer(clf.mean, clf.std, "cpu")
        self.net = net
        self.register_buffer("scale", norm.scale)
        self.register_buffer("shift", norm.shift)
        self.tta, self.tta_shift, self.tta_mirror = bool(clf.tta), int(clf.tta_shift), bool(clf.tta_mirror)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = torch.addcmul(self.shift, pixels.permute(0, 3, 1, 2).float(), self.scale)
        return tta_logits(self.net, x, self.tta_shift, self.tta_mirror) if self.tta else self.net(x).float()


def export_metadata(ckpt: dict[str, Any], clf: Classifier, fmt: str, dynamic_batch: bool) -> dict[str, Any]:
    """Everything needed to run the exported file, as JSON-able values: its input and output, how imgclf decodes and
    resizes an image file for it (decoding_contract), the class names; also what `imgclf.load` reads back."""
    cfg = ckpt.get("config") or {}
    c, h, w = clf.image_shape
    batch = None if dynamic_batch or fmt == "torchscript" else 1
    views = "the image and its mirror" if clf.tta_mirror else "the image"
    if clf.tta_shift:
        views += f" (weight 1/2), and the same translated {clf.tta_shift} px up-left and down-right (1/4 each)"
    return {
        "format": fmt, "imgclf_version": __version__, "torch_version": torch.__version__,
        "model_name": ckpt["model_name"], "classes": list(clf.classes),
        "input_name": INPUT_NAME,
        "input": {"dtype": INPUT_DTYPE, "layout": INPUT_LAYOUT, "shape": [batch, h, w, c],
                  "channels": "L" if c == 1 else "RGB",
                  "values": "the pixels 0..255 as decode and resize give them; the graph itself computes "
                            "(x/255 - mean)/std per channel and the N x C x H x W layout of the network"},
        "output_name": OUTPUT_NAME,
        "output": {"dtype": "float32", "shape": [batch, len(clf.classes)],
                   "values": "logits in the order of classes (softmax: the probabilities imgclf predict prints)"
                             + (f"; test-time augmentation is in the graph: the mean logits of {views}" if clf.tta
                                else "")},
        **decoding_contract(c, (h, w), clf.resize),
        "input_shape": [c, h, w], "mean": [float(v) for v in clf.mean], "std": [float(v) for v in clf.std],
        "tta": bool(clf.tta), "tta_mirror": bool(clf.tta_mirror), "tta_shift": int(clf.tta_shift),
        "tta_in_graph": True, "batch_size": batch,
        "dataset": ckpt.get("dataset"), "checkpoint": str(clf.source), "data": ckpt.get("data"),
        "config": {k: cfg[k] for k in EVAL_CONFIG_KEYS if k in cfg},
    }


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress prints, deprecation notes and 'torchvision not installed' log lines."""
    logs = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


def _check(clf: Classifier, pixels: torch.Tensor, got: torch.Tensor, what: str) -> None:
    """The exported file's logits for `pixels` (uint8 N×H×W×C) against imgclf's own: predict_logits, as predict
    computes them from decoded images (normalization, network, TTA views)."""
    split = Split(pixels.permute(0, 3, 1, 2).contiguous(), torch.zeros(len(pixels), dtype=torch.int64), "export")
    expected = predict_logits(clf.model, split, clf.normalize, clf.device, clf.tta, clf.tta_shift, clf.tta_mirror)
    if got.shape != expected.shape or not torch.allclose(got, expected, rtol=RTOL, atol=ATOL):
        err = float((got - expected).abs().max()) if got.shape == expected.shape else float("inf")
        raise ExportError(f"{what} disagrees with imgclf's own logits (max |difference| {err:.2e} > rtol {RTOL}, "
                          f"atol {ATOL})")


def _export_onnx(graph: PixelGraph, example: torch.Tensor, tmp: Path, meta: dict[str, Any], dynamic_batch: bool,
                 opset: int | None, clf: Classifier) -> None:
    """torch.onnx.export with the dynamo (torch.export-based) exporter, not the legacy TorchScript-based one
    (dynamo=False): torch has made dynamo its default since 2.9 and deprecates the legacy exporter for removal (a
    DeprecationWarning in torch 2.13), and dynamo exports every model of the registry (tests/test_export.py). The
    legacy one runs faster (0.1-0.6 s vs 1-2 s per model on our 2-core CPU), not worth a path to be removed. Needs
    onnxscript and torch >= 2.6; opset >= 18 is native (lower opsets go through ONNX's version converter)."""
    onnx, ort, _ = require("onnx", "onnxruntime", "onnxscript")
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 6):
        raise ExportError(f"ONNX export needs torch >= 2.6 (this is {torch.__version__})")
    shapes = ({0: torch.export.Dim("batch", min=1, max=1 << 16)},) if dynamic_batch else None
    try:
        with _quiet():
            program = torch.onnx.export(graph, (example,), dynamo=True, opset_version=opset, dynamic_shapes=shapes,
                                         input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False)
    except Exception as e:
        raise ExportError(f"ONNX export of {meta['model_name']} failed: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0][:300] if str(e).strip() else 'no detail'}") from None
    proto = program.model_proto
    meta["opset"] = next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and meta["opset"] != opset:   # ONNX's version converter failed: torch kept its own opset
        raise ExportError(f"--opset {opset}: the exporter could not convert {meta['model_name']} to it and made opset "
                          f"{meta['opset']}; give --opset {meta['opset']} or newer, or leave --opset unset")
    onnx.helper.set_model_props(proto, {k: json.dumps(v) for k, v in meta.items()})
    onnx.save(proto, str(tmp))
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    x = _probe_pixels(example, dynamic_batch)
    _check(clf, x, torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0]), "the ONNX file")


def _export_torchscript(graph: PixelGraph, example: torch.Tensor, tmp: Path, meta: dict[str, Any],
                        clf: Classifier) -> None:
    """torch.jit.trace (every registry model is a fixed graph of tensor ops, so tracing captures it exactly; the
    traced ops do not fix the batch size). The file loads with plain torch.jit.load, no imgclf needed."""
    try:
        with _quiet():
            traced = torch.jit.trace(graph, example, check_trace=False)
    except Exception as e:
        raise ExportError(f"TorchScript trace of {meta['model_name']} failed: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0][:300] if str(e).strip() else 'no detail'}") from None
    x = _probe_pixels(example, True)
    with _quiet():  # torch 2.13 marks torch.jit.save/load deprecated (for torch.export); the format still loads
        torch.jit.save(traced, str(tmp), _extra_files={EXTRA_FILE: json.dumps(meta)})
        reloaded = torch.jit.load(str(tmp))
    _check(clf, x, reloaded(x), "the TorchScript file")


def _pixels(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Seeded random uint8 pixels of `shape` (N, H, W, C)."""
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _probe_pixels(example: torch.Tensor, any_batch: bool) -> torch.Tensor:
    """Fixed random pixels for the export-time check: 3 images (another batch size than traced) where it can."""
    return _pixels((3 if any_batch else example.shape[0], *example.shape[1:]), 1)


def check_opset(opset: int | None) -> None:
    """--opset: unset, or an opset both the installed onnx knows and onnxruntime runs (7 and up)."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset is not None and not 7 <= opset <= newest:
        raise ExportError(f"--opset {opset}: must be in [7, {newest}] (onnxruntime runs opset 7 and up; the installed "
                          f"onnx knows up to {newest}); leave it unset for the exporter's default")


def export_model(checkpoint: str | Path, fmt: str, out: str | Path | None = None, dynamic_batch: bool = False,
                 opset: int | None = None, force: bool = False) -> Path:
    """Export an imgclf checkpoint (EMA weights if it has them, as `predict` uses) to `fmt` ('onnx' or
    'torchscript') at `out` (default: next to the checkpoint), plus the sidecar `out`.json; returns `out`.
    ONNX graphs have a fixed batch of 1 unless `dynamic_batch`; TorchScript files take any batch size.
    Checks the written file against imgclf's own logits for random pixels before returning."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if opset is not None and fmt != "onnx":
        raise ExportError("--opset applies to ONNX export only")
    if fmt == "onnx":
        require("onnx", "onnxruntime", "onnxscript")
        check_opset(opset)
    ckpt = load_checkpoint(checkpoint)
    if is_bare(ckpt):
        raise CheckpointError(f"{checkpoint}: a bare state_dict records no model name, class names or normalization; "
                              "export needs a checkpoint written by `imgclf train`")
    given = bool(out)
    out = Path(out) if out else default_output(checkpoint, fmt)
    if (out.suffix.lower() == ".onnx") != (fmt == "onnx"):   # eval/predict know an ONNX file by its name
        raise ExportError(f"--out {out}: " + ("an ONNX file's name must end in .onnx" if fmt == "onnx" else
                          "a TorchScript file's name must not end in .onnx (e.g. best.torchscript.pt)"))
    if out.resolve() == Path(checkpoint).resolve():
        raise ExportError(f"--out {out}: is the checkpoint being exported; name another file")
    side = sidecar_path(out)
    if side.resolve() == Path(checkpoint).resolve():
        raise ExportError(f"--out {out}: its sidecar {side.name} would be the checkpoint being exported; name "
                          "another file")
    for p, what in ((out, "--out" if given else "export target"), (side, "its sidecar")):
        try:
            check_new_file(p, force, what)
        except ConfigError as e:
            raise ExportError(str(e)) from None
    clf = load(checkpoint, device="cpu")
    clf.model.float().eval().to(memory_format=torch.contiguous_format)
    graph = PixelGraph(clf.model, clf).eval()
    meta = export_metadata(ckpt, clf, fmt, dynamic_batch)
    c, h, w = clf.image_shape
    example = _pixels((2 if dynamic_batch else 1, h, w, c), 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(out)
    try:
        with torch.no_grad():
            if fmt == "onnx":
                _export_onnx(graph, example, tmp, meta, dynamic_batch, opset, clf)
            else:
                _export_torchscript(graph, example, tmp, meta, clf)
        commit(tmp, out)
        write_text_atomic(side, json.dumps({"file": out.name, **meta}, indent=2) + "\n")
    except OSError as e:
        raise ExportError(f"cannot write {out} or {side.name} ({e.strerror or e}); nothing was replaced that "
                          "was not complete") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


__all__ = ["FORMATS", "ExportError", "MissingExtraError", "default_output", "export_model", "sidecar_path"]
