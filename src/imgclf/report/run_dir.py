"""The run folder: runs/train/NAME (never overwritten: NAME-2, NAME-3, …) with config.yaml, metrics.csv,
summary.json, last.pt, best.pt and plots/. Every file is written atomically."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from ..config import dump_yaml
from ..errors import ImgclfError
from ..fileio import write_text_atomic


def new_run_dir(out: str | Path, name: str) -> Path:
    """Create and return out/name, or out/name-2, -3, … if it already exists. `name` must be one folder name: a
    name with a path in it ('../x', 'a/b', '/tmp/x') would put the run outside --out."""
    if not name or name in (".", "..") or any(sep and sep in name for sep in ("/", os.sep, os.altsep)) \
            or "\0" in name:
        raise ImgclfError(f"--name {name!r}: a run folder name must be one folder name, without '/' or '..' (the run "
                          f"goes into --out {out}); use --out to choose where runs go")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for i in range(1, 10_000):
            path = out / (name if i == 1 else f"{name}-{i}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as e:
        raise ImgclfError(f"cannot create a run folder in {out} ({e.strerror or e}); choose a writable --out") from None
    raise ImgclfError(f"{out}: too many runs named {name}; pass --name")


def write_text(path: Path, text: str) -> None:
    """Atomic write (see fileio); a failure is one ImgclfError naming the file."""
    try:
        write_text_atomic(path, text)
    except OSError as e:
        raise ImgclfError(f"cannot write {path} ({e.strerror or e})") from None


def write_config(run_dir: Path, config: dict[str, Any], extra: dict[str, Any]) -> None:
    write_text(run_dir / "config.yaml", dump_yaml({**config, **extra}))


def metrics_text(history: list[dict[str, Any]]) -> str:
    """metrics.csv's text: one row per epoch of the history kept in the checkpoint."""
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    return buf.getvalue()


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> bool:
    """Rewrite metrics.csv whole from `history` unless it already says exactly that; returns whether it wrote."""
    if not history:
        return False
    text, path = metrics_text(history), run_dir / "metrics.csv"
    try:
        if path.read_bytes() == text.encode():
            return False
    except OSError:
        pass
    write_text(path, text)
    return True


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
