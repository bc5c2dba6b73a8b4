"""What `imgclf check` shows: tables in the terminal, a one-line verdict, and the same as one self-contained HTML page
(htmlkit's style) with a few repeated images side by side as thumbnails."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from rich.table import Table

from ..data.duplicates import KINDS, Pair
from ..data.health import TINY_CLASS, CheckReport
from ..data.split import Dataset
from ..fileio import printable, write_text_atomic
from ..words import counted
from .htmlkit import esc, page, png_img, split_tag, table

KIND_TEXT = {"exact": "identical pixels in another split", "near": "a near-duplicate in another split",
             "conflict": "the same image (within 16 bits) under another class",
             "exact_within": "identical pixels twice in one split"}
SHOWN_PAIRS = 5     # per kind, in the terminal
THUMB_PAIRS = 8     # per kind, in the HTML page


def verdict(report: CheckReport) -> str:
    """One line: what would fail --strict, or that nothing did, with what it cost."""
    problems = report.findings.problems()
    took = sum(report.seconds.values())
    what = f"{report.dataset.name}: " + ("; ".join(problems) if problems else "no label conflicts, no test image "
                                         "repeating a train/val image")
    return f"{what} ({took:.1f} s)"


def print_check(report: CheckReport, console: Any) -> None:
    """The report as tables and lines, for the terminal."""
    ds = report.dataset
    sizes = ", ".join(f"{k} {len(v):,}" for k, v in ds.splits().items())
    c, h, w = ds.shape
    console.print(f"[bold]{printable(ds.name)}[/]: {sizes} images of {c}×{h}×{w}, {len(ds.classes)} classes"
                  f"{' — ' + printable(ds.source) if ds.source else ''}")
    for note in ds.notes:
        console.print(f"  {note}")
    console.print(class_table(report))
    if report.files is not None:
        for line in file_lines(report):
            console.print(line, highlight=False)
    for msg in report.loader_warnings[:10]:
        console.print(f"[yellow]loader: {printable(msg)}[/]", highlight=False)
    console.print(duplicate_table(report))
    f = report.findings
    if f.near_limit is not None:
        console.print(f"  most training images have a near partner here ({f.dense:.0%}, as in handwritten digits): "
                      f"near-duplicates only within {f.near_limit} bits")
    for kind in KINDS:
        for p in report.findings.of(kind)[:SHOWN_PAIRS]:
            console.print(f"  {kind}: {pair_text(p)}", highlight=False)
        more = report.findings.counts[kind] - SHOWN_PAIRS
        if more > 0:
            console.print(f"  {kind}: … and {more:,} more (--csv FILE lists every pair)")


def class_table(report: CheckReport) -> Table:
    counts = report.per_class()
    tiny = set(report.tiny_classes())
    t = Table(title="images per class and split", title_justify="left")
    t.add_column("class")
    for name in counts:
        t.add_column(name, justify="right")
    t.add_column("total", justify="right")
    for k, cls in enumerate(report.dataset.classes):
        row = [counts[name][k] for name in counts]
        t.add_row(printable(cls) + (f" [red](tiny: under {TINY_CLASS} train)[/]" if cls in tiny else ""),
                  *(f"{v:,}" for v in row), f"{sum(row):,}")
    return t


def file_lines(report: CheckReport) -> list[str]:
    f = report.files
    hist = ", ".join(f"{k}: {v:,}" for k, v in f.longer_side.items() if v)
    lines = [f"files: longer side (px) {hist}",
             f"  width/height {f.aspect.get('min')}–{f.aspect.get('max')} (median {f.aspect.get('median')}); "
             f"modes {', '.join(f'{k} {v:,}' for k, v in f.modes.items())} (grey {f.kinds['grey']:,}, colour "
             f"{f.kinds['colour']:,}, alpha {f.kinds['alpha']:,})"]
    for m in f.mismatched[:5]:
        lines.append(f"  [yellow]{printable(m['split'])}/{printable(m['file'])}: named like another format, holds "
                     f"{m['format']}[/]")
    if len(f.mismatched) > 5:
        lines.append(f"  … {len(f.mismatched) - 5} more files named like another format than they hold")
    if f.unreadable:
        lines.append(f"  [yellow]{counted(f.unreadable, 'file header')} unreadable[/]")
    return lines


def duplicate_table(report: CheckReport) -> Table:
    f = report.findings
    t = Table(title=f"repeated images ({', '.join(f'{k} {v:,}' for k, v in f.sizes.items())} looked at)",
              title_justify="left")
    for col in ("kind", "pairs", "what"):
        t.add_column(col, justify="right" if col == "pairs" else "left")
    for kind in KINDS:
        style = "red" if f.counts[kind] and kind in ("exact", "near", "conflict") else ""
        t.add_row(kind, f"[{style}]{f.counts[kind]:,}[/]" if style else f"{f.counts[kind]:,}", KIND_TEXT[kind])
    return t


def pair_text(p: Pair) -> str:
    how = "identical" if p.kind in ("exact", "exact_within") or (p.kind == "conflict" and not p.distance) else \
        f"{p.distance} bits apart"
    return f"{p.split}/{printable(p.file)} ≈ {p.other_split}/{printable(p.other_file)} ({how})"


def _thumb(images: np.ndarray, side: int) -> Image.Image:
    """One uint8 C×H×W image as a PIL image scaled so its longer side is `side` (nearest for small images)."""
    arr = images[0] if images.shape[0] == 1 else images[:3].transpose(1, 2, 0)
    im = Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")
    scale = side / max(im.size)
    method = Image.NEAREST if scale >= 1 else Image.LANCZOS
    return im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), method)


def pair_strip(ds: Dataset, pairs: list[Pair], scale: int = 3, cols: int = 4) -> Image.Image:
    """Pairs side by side (each image of `pair.split` left, its partner right), `cols` pairs a row, with the kind
    and distance under each: for eyeballing what was found."""
    side = max(96, min(160, ds.shape[1] * scale))
    gap, caption = 6, 16
    cell = (2 * side + gap, side + caption)
    rows = max(1, -(-len(pairs) // cols))
    canvas = Image.new("RGB", (cols * (cell[0] + 3 * gap), rows * (cell[1] + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, p in enumerate(pairs):
        x, y = (k % cols) * (cell[0] + 3 * gap), (k // cols) * (cell[1] + gap)
        for j, (split, index) in enumerate(((p.split, p.index), (p.other_split, p.other_index))):
            canvas.paste(_thumb(ds.split(split).images[index].numpy(), side), (x + j * (side + gap), y))
        draw.text((x, y + side + 2), f"{p.kind} {p.distance}", fill="black")
    return canvas


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def check_page(report: CheckReport) -> str:
    """The report as one HTML document."""
    ds, f = report.dataset, report.findings
    header = (f"<h1>imgclf check: {esc(ds.name)}</h1><p>{esc(ds.source or 'named dataset')} · "
              f"{len(ds.classes)} classes · {' · '.join(f'{k} {len(v):,}' for k, v in ds.splits().items())}</p>")
    limit = f"; near-duplicates within {f.near_limit} bits only: most training images have a near partner here " \
        f"({f.dense:.0%})" if f.near_limit is not None else ""
    body = [f'<section id="verdict"><h2>Verdict</h2><p class="why">{esc(verdict(report))}</p>'
            f'<p class="note">--strict fails on label conflicts and on test images repeating a train/val image'
            f"{esc(limit)}</p></section>",
            _classes_section(report), _files_section(report), _duplicates_section(report)]
    footer = f"imgclf check · {esc(f'{sum(report.seconds.values()):.1f}')} s"
    return page(f"imgclf check: {ds.name}", header, body, footer)


def _classes_section(report: CheckReport) -> str:
    counts = report.per_class()
    tiny = set(report.tiny_classes())
    rows = [[esc(c) + (" <span class='split val'>tiny</span>" if c in tiny else ""),
             *(f"{counts[n][k]:,}" for n in counts), f"{sum(counts[n][k] for n in counts):,}"]
            for k, c in enumerate(report.dataset.classes)]
    head = ["class", *(split_tag(n) for n in counts), "total"]
    return f'<section id="classes"><h2>Images per class</h2>{table(head, rows)}</section>'


def _files_section(report: CheckReport) -> str:
    f = report.files
    warn = "".join(f"<p class='note'>loader: {esc(m)}</p>" for m in report.loader_warnings[:20])
    if f is None:
        return ('<section id="files"><h2>Files</h2><p class="note">images held as arrays (a named dataset) or as rows '
                f'of a Hugging Face dataset, not files</p>{warn}</section>')
    side = table(["longer side (px)", "images"], [[esc(k), f"{v:,}"] for k, v in f.longer_side.items()], "compact")
    aspect = table(["width / height", "images"], [[esc(k), f"{v:,}"] for k, v in f.aspect.get("bins", {}).items()],
                   "compact")
    modes = table(["mode", "images"], [[esc(k), f"{v:,}"] for k, v in f.modes.items()], "compact")
    odd = table(["split", "file", "holds"], [[esc(m["split"]), esc(m["file"]), esc(m["format"])]
                                             for m in f.mismatched[:50]]) if f.mismatched else ""
    return (f'<section id="files"><h2>Files</h2><div class="cols"><div>{side}</div><div>{aspect}</div><div>{modes}'
            f"</div></div>{odd}{warn}</section>")


def _duplicates_section(report: CheckReport) -> str:
    f, ds = report.findings, report.dataset
    counts = table(["kind", "pairs", "what"], [[esc(k), f"{f.counts[k]:,}", esc(KIND_TEXT[k])] for k in KINDS])
    parts = [counts]
    for kind in KINDS:
        pairs = f.of(kind)[:THUMB_PAIRS]
        if pairs:
            listed = "".join(f"<li><code>{esc(pair_text(p))}</code></li>" for p in pairs)
            parts.append(f"<h3>{esc(kind)}</h3>" + png_img(_png(pair_strip(ds, pairs)), f"{kind} pairs",
                                                            esc(KIND_TEXT[kind]), "") + f"<ul>{listed}</ul>")
    return f'<section id="duplicates"><h2>Repeated images</h2>{"".join(parts)}</section>'


def write_check_html(report: CheckReport, path: str | Path) -> Path:
    write_text_atomic(path, check_page(report))
    return Path(path)
