"""imgclf: train, test and use image classifiers with PyTorch.

    import imgclf
    run = imgclf.train(data="digits", epochs=3)              # → TrainedRun: the summary dict (RUN_DIR/summary.json)
    run.confusion(); run.show_results(); run.export("onnx")   # figures for a notebook, files
    clf = imgclf.load(run["checkpoint"])                     # → Classifier (also run.classifier())
    clf.predict(["cat.png"])                                 # → [{"class": ..., "probability": ...}, ...]
    clf.evaluate("digits")                                   # → metrics dict on the test split
    imgclf.train(data="digits", callbacks=[imgclf.MLflowLogger()])   # also: WandbLogger, TensorBoardLogger, Callback
"""

from __future__ import annotations

import gc as _gc
from typing import Any

from . import machine as _machine
from ._version import __version__

_machine.mark()   # the window in which other processes' CPU use is measured starts now (machine.py)

__all__ = ["Callback", "Classifier", "MLflowLogger", "TensorBoardLogger", "TrainedRun", "WandbLogger", "__version__",
           "evaluate", "load", "predict", "show_batch", "train"]
# the training callbacks and trackers: imgclf.report's modules, which import no torch
_CALLBACKS = {"Callback": "callbacks", "MLflowLogger": "trackers", "WandbLogger": "trackers",
              "TensorBoardLogger": "tensorboard"}


def import_api() -> Any:
    """Import imgclf.api (and torch with it) with the cyclic garbage collector paused: importing torch creates a
    few hundred thousand objects, and the collector walks them all several times while it does (0.3-0.45 s of
    every command's start on our 2-core CPU). It is switched back on (if it was on) as soon as they are done."""
    was_on = _gc.isenabled()
    _gc.disable()
    try:
        from . import api
    finally:
        if was_on:
            _gc.enable()
    return api


def __getattr__(name: str) -> Any:
    """The public API loads on first use, so that `import imgclf.report.plots` (the plot painter) or the `imgclf`
    command's first steps do not import torch."""
    if name in _CALLBACKS:
        from importlib import import_module

        value = globals()[name] = getattr(import_module(f".report.{_CALLBACKS[name]}", __name__), name)
        return value
    if name in __all__:
        value = globals()[name] = getattr(import_api(), name)
        return value
    raise AttributeError(f"module 'imgclf' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API too, though it loads on first use (tab completion, help())."""
    return sorted(set(globals()) | set(__all__))
