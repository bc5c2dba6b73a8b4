"""The pieces the HTML pages are made of: one stylesheet (inlined into each page), escaping, number formats,
split labels, tables and PNG figures embedded as data URIs. Nothing here fetches anything or needs a script."""

from __future__ import annotations

import base64
import html
from typing import Any

from ..fileio import printable

STYLE = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff; --accent:#2563eb;
  --test:#7c3aed; --val:#d97706; --train:#0891b2; --good:#15803d; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg); line-height:1.45;
  font:15px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { background:#111827; color:#f9fafb; padding:22px 0 14px; }
header.top h1 { margin:0 0 4px; font-size:24px; font-weight:600; }
header.top p { margin:0; color:#cbd5e1; }
nav { margin-top:12px; display:flex; flex-wrap:wrap; gap:6px 16px; font-size:13px; }
nav a { color:#93c5fd; text-decoration:none; }
.wrap { max-width:1180px; margin:0 auto; padding:0 24px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; margin:20px 0;
  padding:18px 22px; box-shadow:0 1px 2px rgba(0,0,0,.04); }
h2 { margin:0 0 12px; font-size:18px; font-weight:600; }
h3 { margin:14px 0 6px; font-size:14px; color:var(--muted); font-weight:600; text-transform:uppercase;
  letter-spacing:.04em; }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(160px, 1fr)); gap:12px; margin:20px 0; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 16px; }
.card .v { font-size:26px; font-weight:650; font-variant-numeric:tabular-nums; }
.card .k { font-size:13px; color:var(--muted); }
.split { display:inline-block; font-size:11px; font-weight:600; padding:1px 7px; border-radius:999px;
  vertical-align:middle; color:#fff; white-space:nowrap; }
.split.test { background:var(--test); } .split.val { background:var(--val); } .split.train { background:var(--train); }
.cols { display:grid; grid-template-columns:repeat(auto-fit, minmax(300px, 1fr)); gap:4px 28px; }
table { border-collapse:collapse; width:100%; font-size:14px; font-variant-numeric:tabular-nums; }
th, td { padding:5px 10px; border-bottom:1px solid var(--line); text-align:right; }
th { color:var(--muted); font-weight:600; font-size:12.5px; background:#f9fafb; }
th:first-child, td:first-child { text-align:left; }
table.kv td:first-child { color:var(--muted); width:42%; }
table.compact { width:auto; min-width:50%; }
table.compact th, table.compact td { padding-right:28px; }
table.compact th:nth-child(2), table.compact td:nth-child(2) { text-align:left; }
table.kv td { text-align:left; }
tr.chosen td { background:#ecfdf5; font-weight:600; }
td.best { color:var(--good); font-weight:650; }
td.bar { background-repeat:no-repeat; background-size:var(--w) 62%; background-position:right center;
  background-image:linear-gradient(#dbeafe, #dbeafe); }
td.low { color:#b91c1c; }
.note { color:var(--muted); font-size:13.5px; margin:8px 0 0; }
.why { font-size:15px; margin:0 0 12px; }
figure { margin:8px 0 4px; text-align:center; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; background:#fff; }
figcaption { color:var(--muted); font-size:13px; margin-top:6px; }
.figs { display:grid; grid-template-columns:repeat(auto-fit, minmax(420px, 1fr)); gap:14px; }
.missing { color:var(--muted); font-style:italic; }
footer { color:var(--muted); font-size:12.5px; padding:8px 0 30px; }
code { font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; }
"""

def esc(value: Any) -> str:
    """`value` as HTML text; a file or class name that is not UTF-8 shows its odd bytes as \\xNN."""
    return html.escape(printable(str(value)), quote=True)


def pct(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}%}"


def num(v: Any, fmt: str = ".4f") -> str:
    return "—" if v is None or v == "" else (format(v, fmt) if isinstance(v, (int, float)) else esc(v))


def seconds(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.1f} s" if v < 120 else f"{int(v // 60)} min {v % 60:.0f} s"


def split_tag(split: str) -> str:
    """The pill that says which split a figure comes from."""
    return f'<span class="split {esc(split)}">{esc(split)} split</span>'


def png_img(png: bytes | None, alt: str, caption: str, missing: str) -> str:
    """A <figure> with the PNG embedded as a data URI, or a note when the run folder has no such plot."""
    if not png or not png.startswith(b"\x89PNG\r\n\x1a\n"):
        return f'<p class="missing">{esc(missing)}</p>'
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def table(head: list[str], rows: list[list[str]], cls: str = "", row_cls: list[str] | None = None) -> str:
    """An HTML table; cells are already-escaped HTML (a cell may be a (html, td attributes) pair)."""
    out = [f'<table class="{cls}">' if cls else "<table>"]
    if head:
        out.append("<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>")
    out.append("<tbody>")
    for k, row in enumerate(rows):
        rc = f' class="{row_cls[k]}"' if row_cls and row_cls[k] else ""
        cells = "".join(f"<td {c[1]}>{c[0]}</td>" if isinstance(c, tuple) else f"<td>{c}</td>" for c in row)
        out.append(f"<tr{rc}>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def page(title: str, header: str, body: list[str], footer: str) -> str:
    """The whole document: inline style, no script, nothing fetched."""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
            f'<header class="top"><div class="wrap">{header}</div></header><main class="wrap">{"".join(body)}'
            f'</main><footer class="wrap">{footer}</footer></body></html>\n')
