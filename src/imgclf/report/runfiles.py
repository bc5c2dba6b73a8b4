"""A run folder read back — summary.json, config.yaml, metrics.csv, steps.csv, plots/*.png — and the figures
the report derives from it (per-class metrics and the most-confused pairs, from the test confusion matrix).
The run report and the comparison page read runs through here only, so any run folder can be reported later."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ImgclfError
from .steps import read_steps


@dataclass
class RunFiles:
    """What a run folder holds, read once: the report and the comparison page use nothing else."""

    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]
    history: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    plots: dict[str, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


def read_run(run_dir: str | Path) -> RunFiles:
    """Read a finished run folder; ImgclfError when it has no summary.json (not a run, or not finished)."""
    path = Path(run_dir)
    try:
        summary = json.loads((path / "summary.json").read_text())
    except FileNotFoundError:
        raise ImgclfError(f"{path}: no summary.json here (not a run folder, or the run has not finished)") from None
    except (OSError, ValueError) as e:
        raise ImgclfError(f"{path / 'summary.json'}: cannot read it ({e})") from None
    if not isinstance(summary, dict):
        raise ImgclfError(f"{path / 'summary.json'}: holds a JSON {type(summary).__name__}, not the object imgclf "
                          "writes (a damaged or foreign file)")
    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    history = []
    if (path / "metrics.csv").is_file():
        try:    # cells beyond the header (key None) are dropped
            history = [{k: _number(v) for k, v in r.items() if k is not None and isinstance(v, str) and v != ""}
                       for r in csv.DictReader((path / "metrics.csv").read_text().splitlines())]
        except (OSError, ValueError, csv.Error) as e:
            raise ImgclfError(f"{path / 'metrics.csv'}: cannot read it ({type(e).__name__}: {str(e)[:120]})") from None
    plots = {p.stem: p.read_bytes() for p in sorted((path / "plots").glob("*.png"))}
    return RunFiles(path, summary, config if isinstance(config, dict) else {}, history, read_steps(path), plots)


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def class_metrics(summary: dict[str, Any]) -> tuple[list[dict[str, Any]], float | None, float | None]:
    """Per-class precision, recall, F1 and support from the test confusion matrix (rows: true class), with the
    balanced accuracy (mean recall over the classes in the test split) and macro-F1 (mean F1 over the classes
    that are true or predicted at least once, as scikit-learn's). Without a matrix (older runs): summary's."""
    classes, cm = summary.get("classes", []), summary.get("confusion_matrix")
    if not cm:
        rows = [{"class": c, "precision": summary.get("precision", {}).get(c), "recall": summary.get("recall", {})
                 .get(c), "f1": summary.get("f1", {}).get(c), "support": None} for c in classes]
        recalls = [r["recall"] for r in rows if r["recall"] is not None]
        f1s = [r["f1"] for r in rows if r["f1"] is not None]
        return rows, _mean(recalls), _mean(f1s)
    rows, recalls, f1s = [], [], []
    for i, c in enumerate(classes):
        tp, support, predicted = cm[i][i], sum(cm[i]), sum(row[i] for row in cm)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else None
        f1 = 2 * precision * recall / (precision + recall) if recall and precision + recall else 0.0
        rows.append({"class": c, "precision": precision, "recall": recall, "f1": f1, "support": support})
        if support:
            recalls.append(recall)
        if support or predicted:
            f1s.append(f1)
    return rows, _mean(recalls), _mean(f1s)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def most_confused(summary: dict[str, Any], top: int = 10) -> list[tuple[str, str, int, float]]:
    """(true class, predicted class, count, share of the true class) of the largest off-diagonal confusion
    counts, highest first (fastai's most_confused), at most `top`."""
    classes, cm = summary.get("classes", []), summary.get("confusion_matrix") or []
    pairs = [(cm[i][j], i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i][j] > 0]
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [(classes[i], classes[j], n, n / max(sum(cm[i]), 1)) for n, i, j in pairs[:top]]
