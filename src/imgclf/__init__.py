"""imgclf: train, test and use image classifiers with PyTorch.

    import imgclf
    summary = imgclf.train(data="digits", epochs=3)          # → dict, also RUN_DIR/summary.json
    clf = imgclf.load(summary["checkpoint"])                 # → Classifier
    clf.predict(["cat.png"])                                 # → [{"class": ..., "probability": ...}, ...]
    clf.evaluate("digits")                                   # → metrics dict on the test split
"""

__version__ = "0.1.0"

from .api import Classifier, evaluate, load, predict, train

__all__ = ["Classifier", "__version__", "evaluate", "load", "predict", "train"]
