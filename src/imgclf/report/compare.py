"""The comparison page of `imgclf report A B ...` (default report-compare.html): the settings that differ between
the runs, their metrics side by side (the best of each marked) and their loss curves overlaid, one self-contained
HTML file like report.html, built from the run folders' files only."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from .curves import overlay
from .htmlkit import esc, num, page, pct, png_img, seconds, split_tag, table
from .run_dir import write_text
from .runfiles import RunFiles, class_metrics, read_run

# Settings that differ between any two runs by design, so they say nothing about why results differ.
NOT_SETTINGS = ("name", "out", "run_dir")


def labels(runs: list[RunFiles]) -> list[str]:
    """A short distinct name per run: its folder's name, with its parent's when two share one."""
    names = [r.path.name for r in runs]
    if len(set(names)) < len(names):
        names = [f"{r.path.parent.name}/{r.path.name}" for r in runs]
    return names if len(set(names)) == len(names) else [f"{i + 1}: {n}" for i, n in enumerate(names)]


def differing_settings(runs: list[RunFiles]) -> list[tuple[str, list[str]]]:
    """(setting, its value in each run) for every config.yaml key whose values are not all the same."""
    keys = list(dict.fromkeys(k for r in runs for k in r.config if k not in NOT_SETTINGS))
    out = []
    for key in keys:
        values = [_value(r.config, key) for r in runs]
        if len(set(values)) > 1:
            out.append((key, values))
    return out


def _value(config: dict[str, Any], key: str) -> str:
    if key not in config:
        return "(not recorded)"
    v = config[key]
    return "—" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


# (label, split, how to read it from a run, format, whether higher is better)
METRICS = (("accuracy", "test", lambda r: r.summary.get("test_accuracy"), "pct", True),
           ("balanced accuracy", "test", lambda r: class_metrics(r.summary)[1], "pct", True),
           ("macro-F1", "test", lambda r: class_metrics(r.summary)[2], "pct", True),
           ("loss", "test", lambda r: r.summary.get("test_loss"), ".4f", False),
           ("training time", "train", lambda r: r.summary.get("train_seconds"), "s", False),
           ("images/s", "train", lambda r: r.summary.get("images_per_second"), ",.0f", True))


def metrics_table(runs: list[RunFiles], names: list[str]) -> str:
    """One row per metric, one column per run; the best value of each row in green."""
    rows = []
    for label, split, read, fmt, higher in METRICS:
        values = [read(r) for r in runs]
        known = [v for v in values if isinstance(v, (int, float))]
        best = (max(known) if higher else min(known)) if len(known) > 1 else None
        cells: list[Any] = [f"{esc(label)} {split_tag(split)}"]
        for v in values:
            text = pct(v) if fmt == "pct" else seconds(v) if fmt == "s" else num(v, fmt)
            cells.append((text, 'class="best"') if best is not None and v == best else text)
        rows.append(cells)
    return table(["metric", *map(esc, names)], rows)


def compare_page(runs: list[RunFiles], out: Path) -> str:
    """The comparison page as one HTML document; links to each run's report.html are relative to `out`."""
    names = labels(runs)
    links = " · ".join(f'<a href="{esc(_relative(r.path / "report.html", out))}">{esc(n)}</a>'
                       for r, n in zip(runs, names))
    datasets = ", ".join(dict.fromkeys(esc(r.summary.get("dataset", "?")) for r in runs))
    header = f"<h1>{len(runs)} runs compared</h1><p>data: {datasets}</p><nav>{links}</nav>"
    diff = differing_settings(runs)
    settings = (table(["setting", *map(esc, names)], [[esc(k), *map(esc, v)] for k, v in diff])
                if diff else '<p class="missing">no setting differs between these runs (config.yaml).</p>')
    buf = io.BytesIO()
    overlay([(n, r.steps, r.history) for r, n in zip(runs, names)], buf)
    caption = (f"{split_tag('train')} {split_tag('val')} Solid: the training loss from each run's steps.csv "
               "(per epoch where a run has none); dashed: val loss at each epoch's end. Epochs on the x axis, "
               "so runs with different batch sizes line up.")
    body = [f'<section id="settings"><h2>Settings that differ</h2>{settings}<p class="note">From each run\'s '
            "<code>config.yaml</code>; every other setting is the same.</p></section>",
            f'<section id="metrics"><h2>Metrics</h2>{metrics_table(runs, names)}<p class="note">Balanced accuracy '
            "(mean per-class recall) and macro-F1 come from each run's test confusion matrix; the best of each row "
            "is in green.</p></section>",
            f'<section id="curves"><h2>Loss curves</h2>{png_img(buf.getvalue(), "loss curves", caption, "")}'
            "</section>"]
    footer = "runs: " + " · ".join(f"<code>{esc(r.path)}</code>" for r in runs)
    return page(f"imgclf: {len(runs)} runs compared", header, body, footer)


def _relative(target: Path, out: Path) -> str:
    return Path(os.path.relpath(target.resolve(), out.resolve().parent)).as_posix()


def write_comparison(run_dirs: list[str | Path], out: str | Path = "report-compare.html") -> Path:
    """Write the comparison page of these run folders to `out`; returns its path."""
    out = Path(out)
    write_text(out, compare_page([read_run(d) for d in run_dirs], out))
    return out
