"""What imgclf.train returns: the run's summary (a dict, as summary.json holds it) that also holds the run — its
folder, its checkpoint as a Classifier, evaluation, prediction, export, the report, continuing it, and its pictures
for a notebook."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ImgclfError
from .keywords import keyword_errors

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .api import Classifier


class TrainedRun(dict):
    """A finished run: the summary dict itself (run["test_accuracy"], json.dumps(run)) with the run's folder and
    what can be done with it. The Classifier is loaded from best.pt on first use and kept."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__(summary)
        self._classifier: Classifier | None = None

    @classmethod
    def open(cls, run_dir: str | Path) -> TrainedRun:
        """The run in `run_dir`, from its summary.json (a finished run's folder)."""
        path = Path(run_dir) / "summary.json"
        try:
            return cls(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            raise ImgclfError(f"{path}: cannot read the run's summary ({e}); open the folder of a finished run") \
                from None

    @property
    def summary(self) -> dict[str, Any]:
        """The summary as a plain dict (summary.json's content)."""
        return dict(self)

    @property
    def run_dir(self) -> Path:
        return Path(self["run_dir"])

    def __repr__(self) -> str:
        return (f"TrainedRun(run_dir={str(self.run_dir)!r}, dataset={self.get('dataset')!r}, "
                f"model={self.get('model')!r}, test_accuracy={self.get('test_accuracy')})")

    def classifier(self) -> Classifier:
        """The tested checkpoint (best.pt) as a Classifier."""
        if self._classifier is None:
            from .api import load

            self._classifier = load(self["checkpoint"])
        return self._classifier

    load = classifier

    def evaluate(self, data: Any = None, **kwargs: Any) -> dict[str, Any]:
        """Classifier.evaluate of the tested checkpoint (default: the run's own test split)."""
        return self.classifier().evaluate(data, **kwargs)

    def predict(self, images: Any, topk: int = 1, **kwargs: Any) -> list[dict[str, Any]]:
        """Classifier.predict of the tested checkpoint."""
        return self.classifier().predict(images, topk=topk, **kwargs)

    def export(self, fmt: str = "onnx", out: str | Path | None = None, **kwargs: Any) -> Path:
        """imgclf.export.export_model of the tested checkpoint ('onnx' or 'torchscript'); returns the file."""
        from .export import export_model

        with keyword_errors():
            return export_model(self["checkpoint"], fmt, out, **kwargs)

    def report(self) -> Path:
        """The run's report.html (written from the run folder when it is missing)."""
        path = self.run_dir / "report.html"
        if not path.is_file():
            from .report.html import write_report

            with keyword_errors():
                write_report(self.run_dir)
        return path

    def continue_training(self, epochs: int, quiet: bool = False, **settings: Any) -> TrainedRun:
        """Resume the run from its last.pt to `epochs` epochs in all (the new total, more than it has), in its own
        folder: bitwise the run it would have been given `epochs` from the start. Runs whose steps depend on their
        length (a schedule other than constant, lookahead, patience, …) are refused with the reason (config.py,
        check_lengthening). `settings`: what a resume may change (device, threads, plots, …)."""
        from .api import train

        return train(resume=self.run_dir / "last.pt", epochs=epochs, quiet=quiet, **settings)

    def show_results(self, n: int = 32, split: str = "test") -> Figure:
        """A grid of `n` images of `split` with prediction and truth (wrong ones in red), as the run's
        plots/predictions.png draws them."""
        from .report.figures import predictions_grid
        from .report.plots import grid_figure

        clf = self.classifier()
        with keyword_errors():
            part, logits = clf.split_logits(split)
        figure = predictions_grid(Path(), part, logits, clf.classes, n, split)
        return grid_figure(**figure.args)

    def confusion(self, normalize: bool = False) -> Figure:
        """The test split's confusion matrix (counts, or % of each true class), as the run's plots draw it."""
        from .fileio import printable
        from .report.plots import confusion_figure

        return confusion_figure(self["confusion_matrix"], [printable(c) for c in self["classes"]], normalize)

    def _repr_html_(self) -> str:
        """A notebook's view: the report's header figures as a small card."""
        s = self
        test = s.get("test_accuracy")
        rows = [("data", s.get("dataset")), ("model", s.get("model")),
                ("test accuracy", f"{100 * test:.2f}% (test split, {s.get('test_split_size', '?')} images)"
                 if isinstance(test, (int, float)) else "?"),
                ("val accuracy", f"{100 * s['val_accuracy']:.2f}% (val split, epoch {s.get('best_epoch')})"
                 if isinstance(s.get("val_accuracy"), (int, float)) else None),
                ("epochs", f"{s.get('epochs_run')} of {s.get('epochs')}"),
                ("classes", classes_text(s.get("classes") or [])), ("run folder", s.get("run_dir"))]
        return card("imgclf run", rows)


def classes_text(classes: list[Any], shown: int = 10) -> str:
    """The first class names and how many there are."""
    names = ", ".join(str(c) for c in classes[:shown])
    return f"{len(classes)}: {names}" + (", …" if len(classes) > shown else "")


def card(title: str, rows: list[tuple[str, Any]]) -> str:
    """A small HTML table of (label, value) rows for a notebook; every value escaped, None rows left out."""
    body = "".join(f'<tr><th style="text-align:left;padding-right:1em">{html.escape(k)}</th>'
                   f'<td style="text-align:left">{html.escape(str(v))}</td></tr>' for k, v in rows if v is not None)
    return f'<div class="imgclf"><strong>{html.escape(title)}</strong><table>{body}</table></div>'
