"""`imgclf export`: write a trained checkpoint as an ONNX or TorchScript file that runs without imgclf.

The exported graph takes the NORMALIZED input, float32 N×C×H×W = (x/255 − mean)/std per channel (x: the uint8
pixels, RGB or grayscale), and returns logits N×K — the same function `imgclf predict` applies to the network, so
results match. What a user needs to run the file (class names, input shape, mean/std, model name, imgclf version,
tta flag) travels inside it (ONNX metadata_props, each value JSON; TorchScript: extra file `imgclf.json`) and in a
JSON sidecar FILE.json next to it. Existing files are never overwritten unless `force`.
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
from .checkpoint import Rebuilt, is_bare, load_checkpoint, rebuild
from .errors import CheckpointError, ConfigError, ImgclfError
from .exported import EXTRA_FILE, MissingExtraError, require, sidecar_path
from .fileio import check_new_file, commit, temporary_name, write_text_atomic

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
INPUT_NAME, OUTPUT_NAME = "input", "logits"
# Tolerance of the export-time check (exported vs imgclf's own network on the same random input) and of the tests.
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


def export_metadata(ckpt: dict[str, Any], r: Rebuilt, fmt: str, dynamic_batch: bool, checkpoint: str | Path
                    ) -> dict[str, Any]:
    """Everything needed to run the exported file, as JSON-able values (also what `imgclf.load` reads back)."""
    shape = [r.model_args["in_channels"], *r.model_args["image_size"]]
    return {
        "format": fmt, "imgclf_version": __version__, "torch_version": torch.__version__,
        "model_name": r.model_name, "classes": list(r.classes), "input_shape": shape,
        "mean": [float(v) for v in r.mean], "std": [float(v) for v in r.std], "tta": r.tta, "tta_mirror": r.tta_mirror,
        "input_name": INPUT_NAME, "output_name": OUTPUT_NAME,
        "input": "float32 NCHW, (x/255 - mean)/std per channel, x = uint8 pixels (RGB, or L for 1 channel), "
                 "resized to input_shape",
        "output": "float32 N x len(classes) logits; softmax gives probabilities. If tta is true, imgclf averages "
                  "the logits of each image and its horizontal mirror (if tta_mirror is false: the image alone), "
                  "and with config.tta_shift N > 0 also of the "
                  "pairs translated by N pixels up-left and down-right (weights 1/2, 1/4, 1/4; not part of the graph)",
        "batch_size": None if dynamic_batch or fmt == "torchscript" else 1,
        "dataset": ckpt["dataset"], "checkpoint": str(checkpoint), "data": r.data,
        "config": {k: r.config[k] for k in EVAL_CONFIG_KEYS if k in r.config},
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


def _check(expected: torch.Tensor, got: torch.Tensor, what: str) -> None:
    if not torch.allclose(got, expected, rtol=RTOL, atol=ATOL):
        err = float((got - expected).abs().max())
        raise ExportError(f"{what} disagrees with the network (max |difference| {err:.2e} > rtol {RTOL}, atol {ATOL})")


def _export_onnx(model: nn.Module, example: torch.Tensor, tmp: Path, meta: dict[str, Any], dynamic_batch: bool,
                 opset: int | None) -> None:
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
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, dynamic_shapes=shapes,
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
    x = _probe_input(example, dynamic_batch)
    _check(model(x), torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0]), "the ONNX file")


def _export_torchscript(model: nn.Module, example: torch.Tensor, tmp: Path, meta: dict[str, Any]) -> None:
    """torch.jit.trace (every registry model is a fixed graph of tensor ops, so tracing captures it exactly; the
    traced ops do not fix the batch size). The file loads with plain torch.jit.load, no imgclf needed."""
    try:
        with _quiet():
            traced = torch.jit.trace(model, example, check_trace=False)
    except Exception as e:
        raise ExportError(f"TorchScript trace of {meta['model_name']} failed: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0][:300] if str(e).strip() else 'no detail'}") from None
    x = _probe_input(example, True)
    with _quiet():  # torch 2.13 marks torch.jit.save/load deprecated (for torch.export); the format still loads
        torch.jit.save(traced, str(tmp), _extra_files={EXTRA_FILE: json.dumps(meta)})
        reloaded = torch.jit.load(str(tmp))
    _check(model(x), reloaded(x), "the TorchScript file")


def _probe_input(example: torch.Tensor, any_batch: bool) -> torch.Tensor:
    """A fixed random normalized batch for the export-time check: 3 images (another batch size than traced)."""
    n = 3 if any_batch else example.shape[0]
    return torch.randn(n, *example.shape[1:], generator=torch.Generator().manual_seed(1))


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
    Checks the written file against the network on a random batch before returning."""
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
    out = Path(out) if out else default_output(checkpoint, fmt)
    if (out.suffix.lower() == ".onnx") != (fmt == "onnx"):   # eval/predict know an ONNX file by its name
        raise ExportError(f"--out {out}: " + ("an ONNX file's name must end in .onnx" if fmt == "onnx" else
                          "a TorchScript file's name must not end in .onnx (e.g. best.torchscript.pt)"))
    if out.resolve() == Path(checkpoint).resolve():
        raise ExportError(f"--out {out}: is the checkpoint being exported; name another file")
    side = sidecar_path(out)
    for p in (out, side):
        try:
            check_new_file(p, force)
        except ConfigError as e:
            raise ExportError(str(e)) from None
    r = rebuild(ckpt, checkpoint)
    model = r.model.float().eval()
    meta = export_metadata(ckpt, r, fmt, dynamic_batch, checkpoint)
    example = torch.randn(2 if dynamic_batch else 1, *meta["input_shape"], generator=torch.Generator().manual_seed(0))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(out)
    try:
        with torch.no_grad():
            if fmt == "onnx":
                _export_onnx(model, example, tmp, meta, dynamic_batch, opset)
            else:
                _export_torchscript(model, example, tmp, meta)
        commit(tmp, out)
        write_text_atomic(side, json.dumps({"file": out.name, **meta}, indent=2) + "\n")
    except OSError as e:
        raise ExportError(f"cannot write {out} or {side.name} ({e.strerror or e}); nothing was replaced that "
                          "was not complete") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


__all__ = ["FORMATS", "ExportError", "MissingExtraError", "default_output", "export_model", "sidecar_path"]
