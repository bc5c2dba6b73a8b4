"""imgclf: train, test and use image classifiers with PyTorch.

    import imgclf
    summary = imgclf.train(data="digits", epochs=3)          # → dict, also RUN_DIR/summary.json
    clf = imgclf.load(summary["checkpoint"])                 # → Classifier
    clf.predict(["cat.png"])                                 # → [{"class": ..., "probability": ...}, ...]
    clf.evaluate("digits")                                   # → metrics dict on the test split
"""

import gc as _gc

from ._version import __version__

# Importing torch creates a few hundred thousand objects, and the cyclic garbage collector walks them all
# several times while it does: pausing it for our imports saves 0.3-0.45 s of every command's start on our
# 2-core CPU. It is switched back on (if it was on) as soon as they are done.
_gc_was_on = _gc.isenabled()
_gc.disable()
try:
    from .api import Classifier, evaluate, load, predict, train
finally:
    if _gc_was_on:
        _gc.enable()

__all__ = ["Classifier", "__version__", "evaluate", "load", "predict", "train"]
