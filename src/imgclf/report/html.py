"""RUN_DIR/report.html: one self-contained page per run (inline CSS, images as base64 PNG data URIs, no script,
nothing fetched) built from the run folder's files only — summary.json, metrics.csv, steps.csv, config.yaml and
plots/*.png — so `imgclf report RUN_DIR` can rebuild it from any run folder, on any machine, later."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..config import tta_mirrors
from ..errors import ImgclfError
from ..words import counted, plural
from .htmlkit import esc, num, page, pct, png_img, seconds, split_tag, table
from .run_dir import write_text
from .runfiles import RunFiles, class_metrics, most_confused, read_run

SECTIONS = (("summary", "Summary"), ("checkpoint", "Chosen epoch"), ("curves", "Curves"),
            ("confusion", "Confusion matrix"), ("per-class", "Per class"), ("most-confused", "Most confused"),
            ("predictions", "Predictions"), ("top-losses", "Top losses"))


def run_page(run: RunFiles) -> str:
    """The report of one run, as one HTML document."""
    s = run.summary
    per_class, balanced, macro_f1 = class_metrics(s)
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in SECTIONS)
    header = (f"<h1>{esc(run.name)}</h1><p>{esc(s.get('dataset', '?'))} · {esc(s.get('model', '?'))}"
              f"{' · recipe ' + esc(s['recipe']) if s.get('recipe') else ''} · {esc(s.get('epochs', '?'))} "
              f"epoch{'' if s.get('epochs') == 1 else 's'} · "
              f"{esc(s.get('device', '?'))}</p><nav>{nav}</nav>")
    body = [cards(s, balanced, macro_f1), summary_section(run), checkpoint_section(run), curves_section(run),
            confusion_section(run), per_class_section(per_class), confused_section(s), images_section(run)]
    footer = (f"imgclf {esc(s.get('imgclf_version', '?'))}, torch {esc(s.get('torch_version', '?'))} · "
              f"run folder <code>{esc(s.get('run_dir', run.path))}</code> · rebuild with "
              f"<code>imgclf report {esc(run.path)}</code>")
    return page(f"imgclf report: {run.name}", header, body, footer)


def cards(s: dict[str, Any], balanced: float | None, macro_f1: float | None) -> str:
    """The headline figures, each with its split."""
    items = [(pct(s.get("test_accuracy")), "test accuracy", "test"), (pct(balanced), "balanced accuracy", "test"),
             (pct(macro_f1), "macro-F1", "test"), (num(s.get("test_loss")), "loss", "test")]
    if s.get("val_accuracy") is not None:
        items.append((pct(s["val_accuracy"]), f"accuracy, epoch {s.get('best_epoch')}", "val"))
    items.append((seconds(s.get("train_seconds")), f"training, {num(s.get('images_per_second'), ',.0f')} img/s",
                  "train"))
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{v}</div><div class="k">{k} {split_tag(sp)}</div></div>'
        for v, k, sp in items) + "</div>"


def summary_section(run: RunFiles) -> str:
    """What was trained, how, where and how long: three key/value tables side by side."""
    s, c = run.summary, run.config
    what = [("dataset", s.get("dataset")), ("classes", len(s.get("classes", []))),
            ("test split", f"{num(s.get('test_split_size'), ',d')} images"),
            ("model", f"{s.get('model')} ({num(s.get('parameters'), ',d')} parameters)"),
            ("recipe", s.get("recipe") or "none (defaults)"), ("device", s.get("device")),
            ("precision", s.get("compute_precision")), ("seed", s.get("seed"))]
    how = settings_rows(c, mirrored(s, c))
    time = [("training", seconds(s.get("train_seconds"))), ("testing", seconds(s.get("test_seconds"))),
            ("whole run", seconds(s.get("total_seconds"))),
            ("images/s (training)", num(s.get("images_per_second"), ",.0f"))]
    cols = "".join(f"<div><h3>{title}</h3>{table([], [[esc(k), esc(v)] for k, v in pairs], 'kv')}</div>"
                   for title, pairs in (("run", what), ("settings", how), ("time", time)))
    return (f'<section id="summary"><h2>Summary</h2><div class="cols">{cols}</div><p class="note">Every setting '
            "is in <code>config.yaml</code>; every figure in <code>summary.json</code>.</p></section>")


def mirrored(s: dict[str, Any], c: dict[str, Any]) -> bool:
    """Whether the run's TTA views mirrored: its summary.json says, else (a killed run) its config.yaml."""
    return bool(s["tta_mirror"]) if "tta_mirror" in s else tta_mirrors(c.get("tta_mirror"), c.get("flip", "none"))


def settings_rows(c: dict[str, Any], mirror: bool = True) -> list[tuple[str, str]]:
    """The settings that shape the result, in words, from config.yaml (every other one is in that file); `mirror`:
    whether its test-time views mirrored (mirrored())."""
    if not c:
        return [("config.yaml", "not in this run folder")]
    g = c.get
    opt = f"{g('optimizer')}, lr {g('lr'):g}" if isinstance(g("lr"), (int, float)) else str(g("optimizer"))
    if g("optimizer") in ("sgd", "muon") and g("momentum"):
        opt += f", momentum {g('momentum'):g}{' (Nesterov)' if g('nesterov') else ''}"
    augment = [f"random-resized crop of {g('crop_scale'):.0%}–100% of the area" if g("crop_scale") else
               f"shift ±{g('crop_pad')} px" if g("crop_pad") else "no shift",
               f"{g('flip')} flips" if g("flip") not in (None, "none") else "no flips",
               f"cutout {g('cutout')} px" if g("cutout") else "no cutout"]
    if g("color_jitter"):
        augment.append(f"colour jitter ±{g('color_jitter'):.0%}")
    start = ("ImageNet weights" if g("pretrained") else f"weights of {g('init_weights')}" if g("init_weights")
             else "random initialization")
    if g("linear_probe"):
        start += (f"; epoch 1 a linear probe (a head fitted on the frozen features), then "
                  f"{counted(g('epochs') - 1, 'epoch')} of fine-tuning"
                  + (" with BatchNorm statistics kept" if g("freeze_bn") else ""))
    rows = [("starting weights", start), ("epochs", g("epochs")), ("batch size", g("batch_size")), ("optimizer", opt),
            ("schedule", f"{g('schedule')}, {g('warmup'):g} {plural('epoch', g('warmup'))} warm-up" if g("warmup")
             else g("schedule")),
            ("weight decay", g("weight_decay")), ("label smoothing", g("label_smoothing")),
            ("augmentation", ", ".join(augment))]
    if g("progressive_size") and g("progressive_epochs"):
        rows.append(("progressive resizing",
                     f"{g('progressive_size')} px for {counted(g('progressive_epochs'), 'epoch')}"))
    rows += [("weight average (EMA)", g("ema") or "off"),
             ("test-time augmentation", tta_views(g("tta"), g("tta_shift"), mirror)),
             ("val split", f"{g('val_split'):.0%} of train" if g("val_split") else "none"),
             ("image size", f"{g('image_size')} px" if g("image_size") else "as stored"),
             ("normalize", g("normalize"))]
    return [(k, f"{v:g}" if isinstance(v, float) else str(v)) for k, v in rows]


def tta_views(tta: Any, shift: Any, mirror: bool) -> str:
    """What evaluate.tta_logits averages for these settings, in words."""
    if not tta:
        return "off"
    views = (2 if mirror else 1) * (3 if shift else 1)
    what = ("image and mirror" if mirror else "image") + (f", shifted ±{shift} px" if shift else "")
    return f"{counted(views, 'view')} ({what})"


def checkpoint_section(run: RunFiles) -> str:
    """Which epoch's weights were tested, and why; the per-epoch table with that row marked."""
    s = run.summary
    best, epochs = s.get("best_epoch"), s.get("epochs")
    if s.get("checkpoint_selected_on") == "val":
        choice = s.get("checkpoint_choice") or (f"epoch {best} of {epochs}: highest val accuracy "
                                                f"{pct(s.get('val_accuracy'))}")
        why = (f"Chosen on the {split_tag('val')}: {esc(choice)}. The test split was used once, on this "
               "checkpoint, never to choose it.")
    else:
        why = (f"Epoch <b>{best}</b> of {epochs} was tested: the run has no validation split "
               f"(<code>--val-split 0</code>), so <code>best.pt</code> is the last epoch.")
    cols = [("epoch", "epoch", "d"), ("train_loss", "train loss", ".4f"), ("train_accuracy", "train acc", "pct"),
            ("val_loss", "val loss", ".4f"), ("val_accuracy", "val acc", "pct"), ("lr", "lr", ".4g"),
            ("seconds", "seconds", ".1f"), ("images_per_second", "img/s", ",.0f")]
    cols = [col for col in cols if any(col[0] in r for r in run.history)]
    rows = [[pct(r.get(k)) if f == "pct" else num(r.get(k), f) for k, _, f in cols] for r in run.history]
    marks = ["chosen" if r.get("epoch") == best else "" for r in run.history]
    tbl = table([t for _, t, _ in cols], rows, row_cls=marks) if rows else '<p class="missing">no metrics.csv</p>'
    return (f'<section id="checkpoint"><h2>Chosen epoch</h2><p class="why">{why}</p>{tbl}<p class="note">'
            "train figures are running means over each epoch's augmented batches; the marked row is the "
            "checkpoint that was tested.</p></section>")


def curves_section(run: RunFiles) -> str:
    n = len(run.steps)
    gap = run.steps[-1]["step"] - run.steps[-2]["step"] if n > 1 else 1
    every = (f"the training loss {'every step' if gap == 1 else f'every {gap} steps'} "
             f"({n} rows of <code>steps.csv</code>{'; light: as logged, dark: smoothed' if n >= 50 else ''})"
             if run.steps else "the training loss per epoch (this run has no steps.csv)")
    cap = (f"{split_tag('train')} {split_tag('val')} Left: {every}; the learning rate (dashed, right axis); "
           "val loss per epoch; the chosen epoch in green. Right: accuracy per epoch.")
    return (f'<section id="curves"><h2>Curves</h2>'
            f"{png_img(run.plots.get('curves'), 'loss and accuracy curves', cap, 'no plots/curves.png')}</section>")


def confusion_section(run: RunFiles) -> str:
    kinds = (("confusion", "counts"), ("confusion_normalized", "row-normalized: recall on the diagonal"))
    figs = "".join(png_img(run.plots.get(name), f"confusion matrix ({how})",
                           f"{split_tag('test')} {how}; rows: true class, columns: predicted", f"no plots/{name}.png")
                   for name, how in kinds)
    return (f'<section id="confusion"><h2>Confusion matrix {split_tag("test")}</h2><div class="figs">{figs}</div>'
            "</section>")


def per_class_section(rows: list[dict[str, Any]]) -> str:
    """Precision, recall, F1 and support per class; a bar behind each figure, the weakest classes in red."""
    if not rows:
        return ""
    f1s = sorted(r["f1"] for r in rows if r["f1"] is not None)
    low = f1s[max(0, len(f1s) // 5 - 1)] if len(f1s) >= 5 else -1.0   # the bottom fifth, by F1

    def cell(v: float | None, mark: bool = False) -> tuple[str, str]:
        cls = "bar low" if mark else "bar"
        return (pct(v, 1), f'class="{cls}" style="--w:{0 if v is None else 100 * v:.0f}%"')

    body = [[esc(r["class"]), cell(r["precision"]), cell(r["recall"]), cell(r["f1"], (r["f1"] or 0) <= low),
             num(r["support"], ",d")] for r in rows]
    return (f'<section id="per-class"><h2>Per class {split_tag("test")}</h2>'
            f"{table(['class', 'precision', 'recall', 'F1', 'support'], body)}<p class='note'>From the test "
            "confusion matrix. Recall is the class's accuracy; support is its number of test images. Red: the "
            "lowest fifth of the classes by F1.</p></section>")


def confused_section(s: dict[str, Any]) -> str:
    pairs = most_confused(s)
    if pairs:
        body = table(["true class", "predicted as", "images", "share of the true class"],
                     [[esc(t), esc(p), f"{n:,}", pct(f, 1)] for t, p, n, f in pairs], "compact")
    elif s.get("confusion_matrix"):
        body = '<p class="missing">no confusions: every test image was classified correctly.</p>'
    else:
        body = '<p class="missing">summary.json has no confusion matrix (a run from an older imgclf).</p>'
    return (f'<section id="most-confused"><h2>Most confused {split_tag("test")}</h2>{body}<p class="note">The '
            "largest off-diagonal counts of the confusion matrix, highest first (at most 10).</p></section>")


def images_section(run: RunFiles) -> str:
    pred = png_img(run.plots.get("predictions"), "test images with prediction and truth",
                   f"{split_tag('test')} Test images spread over the split: prediction and truth; wrong ones in red.",
                   "no plots/predictions.png")
    top = png_img(run.plots.get("top_losses"), "top losses",
                  f"{split_tag('test')} The wrong test images with the highest loss, highest first: the predicted "
                  "class with its probability, the true class with its probability.",
                  "no plots/top_losses.png (no test image was wrong, or the run had no plots)")
    batch = png_img(run.plots.get("train_batch"), "a training batch, augmented",
                    f"{split_tag('train')} The first training batch as the model sees it, after augmentation.",
                    "no plots/train_batch.png")
    return (f'<section id="predictions"><h2>Predictions {split_tag("test")}</h2>{pred}</section>'
            f'<section id="top-losses"><h2>Top losses {split_tag("test")}</h2>{top}</section>'
            f'<section id="train-batch"><h2>Training batch {split_tag("train")}</h2>{batch}</section>'
            + duplicates_section(run))


def duplicates_section(run: RunFiles) -> str:
    """What the run found repeated in its data (summary.json's counts, plots/duplicates.png): nothing when the run
    looked and found none, or did not look."""
    counts, record = run.summary.get("duplicates") or {}, run.summary.get("test_duplicates")
    if not any(counts.values()):
        return ""
    said = [f"{n:,} {what}" for what, n in (("images identical to one in another split", counts.get("exact", 0)),
                                           ("near-duplicates across splits", counts.get("near", 0)),
                                           ("label conflicts (one image, two classes)", counts.get("conflict", 0)),
                                           ("identical copies within a split", counts.get("exact_within", 0))) if n]
    if record:
        left = "left out of" if record["policy"] == "exclude" else "counted in"
        said.append(f"the {record['repeating_train']:,} test images repeating training images are {left} the test "
                    f"figures: accuracy {record['accuracy_without_them']:.2%} without them, "
                    f"{record['accuracy_with_them']:.2%} with them")
    strip = png_img(run.plots.get("duplicates"), "repeated images side by side",
                    "The first pairs found: each image beside its repeat, with the kind and how many hash bits apart "
                    "(0: identical pixels).", "no plots/duplicates.png")
    return (f'<section id="duplicates"><h2>Repeated images</h2><p>{esc("; ".join(said))}.</p>{strip}'
            '<p class="note"><code>duplicates.csv</code> lists every pair.</p></section>')


def write_report(run_dir: str | Path) -> Path:
    """Build RUN_DIR/report.html from the run folder's files; returns its path."""
    run = read_run(run_dir)
    out = run.path / "report.html"
    try:
        text = run_page(run)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:  # values of the wrong kind
        raise ImgclfError(f"{run.path}: its files do not make a report ({type(e).__name__}: {str(e)[:120]}); "
                          "summary.json or metrics.csv is damaged or was not written by imgclf") from None
    write_text(out, text)
    return out


def write_report_or_warn(run_dir: Path) -> Path | None:
    """At the end of a run: the report is a convenience, so a failure warns and the run still succeeds."""
    try:
        return write_report(run_dir)
    except Exception as e:  # best-effort: a finished run never fails over its report
        warnings.warn(f"could not write {Path(run_dir) / 'report.html'} ({type(e).__name__}: {e}); "
                      f"rebuild it with: imgclf report {run_dir}", stacklevel=2)
        return None
