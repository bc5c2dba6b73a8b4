"""What each `imgclf` subcommand does with its parsed flags (the library does the work; these print)."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

from ..config import FIELDS, read_config_file, user_settings
from ..fileio import check_new_file, printable
from ..words import counted

GRID_FORMATS = (".png", ".jpg", ".jpeg", ".pdf", ".svg")   # what `show --out` can write (matplotlib)


def cmd_datasets(args: argparse.Namespace) -> None:
    from rich.table import Table

    from ..data.registry import NAMED, default_data_dir, locate
    from ..report.console import console

    root = Path(args.data_dir) if args.data_dir else default_data_dir()
    table = Table(title=f"datasets (data dir {root})", title_justify="left")
    for col in ("name", "description", "status", "expected at"):
        table.add_column(col)
    for name, ds in NAMED.items():
        found = locate(name, root)
        status = "embedded" if not ds.files else ("present" if found else "missing (downloads on first use)")
        where = str(found) if found else str(root / ds.folder_names[0]) + "/ " + ", ".join(ds.files)
        table.add_row(name, ds.description, status, where if ds.files else "(inside the imgclf package)")
    console.print(table)
    console.print("a folder of your own images works too: --data PATH with PATH/<class>/* "
                  "or PATH/{train,test}/<class>/*; so does a CSV of files and labels (--data labels.csv) and a "
                  "Hugging Face dataset (--data hf:PATH)")


def cmd_models(_: argparse.Namespace) -> None:
    from rich.table import Table

    from ..models import MODELS, build_model, count_parameters
    from ..models.pretrained import weights_source
    from ..report.console import console

    table = Table(title="models (parameters for 3×32×32 input, 10 classes)", title_justify="left")
    for col in ("name", "parameters", "description", "ImageNet weights (--pretrained)"):
        table.add_column(col, justify="right" if col == "parameters" else "left")
    for name, spec in MODELS.items():
        table.add_row(name, f"{count_parameters(build_model(name, 3, 10, (32, 32))):,}", spec.description,
                      weights_source(name) or "none")
    console.print(table)


def cmd_show(args: argparse.Namespace) -> None:
    from ..errors import ConfigError
    from ..report.plots import image_grid
    from ..showbatch import SHOW_CELL_PX, batch_to_show

    if args.n < 1:
        raise ConfigError(f"--n {args.n}: how many images to draw must be at least 1")
    if not 0 <= args.seed < 2**63:
        raise ConfigError(f"--seed {args.seed}: which images to draw must be a seed in [0, 2**63) (default 0)")
    check_new_file(args.out, args.force)
    if Path(args.out).suffix.lower() not in GRID_FORMATS:
        raise ConfigError(f"--out {args.out}: the grid is written as an image; end the name in "
                          f"{', '.join(GRID_FORMATS)} (e.g. --out grid.png)")
    images, titles, what = batch_to_show(args.data, args.n, args.split, args.seed, args.augmented, args.data_dir,
                                         args.image_size, args.images_root, args.columns)
    path = image_grid(images, titles, Path(args.out), suptitle=what, cell_px=SHOW_CELL_PX)
    print(f"wrote {path} ({counted(len(images), 'image')}: {what})")


def cmd_check(args: argparse.Namespace) -> None:
    from ..data.duplicates import write_duplicates_csv
    from ..data.health import check_data
    from ..errors import ConfigError, DataError
    from ..models.pretrained import weights_available
    from ..recipes import PHOTO_PRETRAINED_SIZE, PRETRAINED_PHOTOS
    from ..report.checkpage import print_check, verdict, write_check_html
    from ..report.console import console

    if not 0.0 < args.test_split < 1.0:
        raise ConfigError(f"--test-split {args.test_split}: the held-out fraction must be between 0 and 1 (e.g. 0.2)")
    for flag, value in (("--html", args.html), ("--csv", args.csv)):
        if value:
            check_new_file(value, args.force, flag)   # before the work, not after it
    # photos at the size `imgclf train` decodes them at, so the check reads (and fills) the cache entry train uses
    photo_size = PHOTO_PRETRAINED_SIZE if weights_available(PRETRAINED_PHOTOS["model"]) else None
    report = check_data(args.data, args.data_dir, image_size=args.image_size, test_split=args.test_split,
                        seed=args.seed, photo_size=photo_size, download_missing=args.download,
                        images_root=args.images_root, columns=args.columns)
    if args.json:
        print(json.dumps(report.to_json()))
    elif not args.quiet:
        print_check(report, console)
    if args.html:
        write_check_html(report, args.html)
    if args.csv:
        write_duplicates_csv(report.findings, args.csv)
    if not args.json:
        wrote = [f for f in (args.html, args.csv) if f]
        console.print(verdict(report) + (f"; wrote {', '.join(wrote)}" if wrote else ""), highlight=False)
    problems = report.findings.problems()
    if args.strict and problems:
        raise DataError(f"--strict: {', '.join(problems)} in {report.dataset.name}; --csv FILE lists every pair")


def _train_settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flags given, the --config file's settings): the two top layers of config.py's resolver."""
    flags = {k: getattr(args, k) for k in FIELDS if getattr(args, k, None) is not None}
    return flags, (read_config_file(args.config) if args.config else {})


def _trackers(args: argparse.Namespace) -> list[Any]:
    """The loggers --mlflow [URI] and --wandb [PROJECT] ask for (a missing package: a one-line error); with
    --quiet, W&B prints nothing either."""
    from ..report.trackers import MLflowLogger, WandbLogger

    quiet = {"settings": {"silent": True}} if args.quiet else {}
    return ([MLflowLogger(args.mlflow or None)] if args.mlflow is not None else []) + \
        ([WandbLogger(args.wandb or None, **quiet)] if args.wandb is not None else [])


def cmd_train(args: argparse.Namespace) -> None:
    flags, file = _train_settings(args)
    if args.print_config:
        from ..engine.setup import describe_settings

        print(describe_settings(user_settings(flags), file, args.resume))   # the checks a run makes
        return
    from ..engine.train import train
    from ..report.console import result_line

    summary = train(flags, config_file=file, resume=args.resume, started=args.started,
                    callbacks=_trackers(args))
    if args.quiet:
        print(f"{result_line(summary)}; run folder {summary['run_dir']}")


def cmd_eval(args: argparse.Namespace) -> None:
    from ..api import load
    from ..report.console import balance_remark, confusion_table, console, metrics_table, repeats_text

    clf = load(args.checkpoint, model=args.model, device=args.device, image_size=args.image_size,
               trust_exported=args.trust_exported, precision=args.precision)
    result = clf.evaluate(args.data, args.data_dir, split=args.split, allow_changed_data=args.allow_changed_data,
                          images_root=args.images_root, columns=args.columns)
    if result.get("data_changed"):
        warnings.warn(f"{result['data_changed']}: this figure is on a different test split than the run's",
                      stacklevel=1)
    if args.json:
        print(json.dumps(result))
        return
    if not args.quiet:
        console.print(metrics_table(result, result["classes"], args.split))
    if len(result["classes"]) <= 12 and not args.quiet:
        console.print(confusion_table(result["confusion_matrix"], result["classes"], args.split))
    console.print(f"[bold]{args.split} accuracy {result['accuracy']:.2%}[/] ({counted(result['n'], 'image')} of "
                  f"{result['dataset']}, {args.split} split{repeats_text(result.get('test_duplicates'))}; "
                  f"balanced accuracy {result['balanced_accuracy']:.2%}, "
                  f"macro-F1 {result['macro_f1']:.3f}), {args.split} loss {result['loss']:.4f}; computed in "
                  f"{result['computed_in']}")
    remark = balance_remark(result, result["classes"], args.split)
    if remark:
        console.print(f"[yellow]{remark}[/]")


def cmd_predict(args: argparse.Namespace) -> None:
    from ..api import load
    from ..errors import ConfigError

    if args.topk < 1:
        raise ConfigError(f"--topk {args.topk}: how many classes to list must be at least 1")
    if args.csv:
        check_new_file(args.csv, args.force, "--csv")   # before the work, not after it
    classes = args.classes.split(",") if args.classes else None
    clf = load(args.checkpoint, model=args.model, device=args.device, classes=classes, image_size=args.image_size,
               trust_exported=args.trust_exported, precision=args.precision)
    results = clf.predict(args.images, topk=args.topk, strict_images=args.strict_images)
    if args.csv:
        write_predictions_csv(Path(args.csv), results)   # checked before predicting
    if args.json:
        print(json.dumps(results))
        return
    for r in results:
        alts = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["topk"][1:])
        print(f"{printable(r['file'])}: {r['class']} ({r['probability']:.1%}){'  [' + alts + ']' if alts else ''}")
    if args.csv and not args.quiet:
        print(f"wrote {args.csv} ({counted(len(results), 'prediction')})")


def write_predictions_csv(path: Path, results: list[dict[str, Any]]) -> None:
    """predict's results as CSV (atomically): file, class, probability, and topk as class:probability;… ."""
    import csv
    import io

    from ..report.run_dir import write_text

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "class", "probability", "topk"])
    for r in results:
        writer.writerow([printable(r.get("file", "")), r["class"], r["probability"],
                         ";".join(f"{t['class']}:{t['probability']}" for t in r["topk"])])
    write_text(path, buf.getvalue())


def cmd_export(args: argparse.Namespace) -> None:
    from ..export import export_model

    path = export_model(args.checkpoint, args.format, args.out, args.dynamic_batch, args.opset, force=args.force)
    print(f"wrote {path} and {path.name}.json (input: uint8 N×H×W×C pixels; the .json says how imgclf decodes "
          "and resizes an image for it)")


def cmd_find_lr(args: argparse.Namespace) -> None:
    from ..engine.lr_finder import find_lr

    flags, file = _train_settings(args)
    out, name = flags.pop("out"), flags.pop("name", None)      # where the plot goes, not training settings
    flags.pop("steps", None)                                   # the range test's length, not the training's
    result = find_lr(flags, steps=args.steps, min_lr=args.min_lr, max_lr=args.max_lr, out=out, name=name, file=file)
    print(f"suggested lr {result['suggested_lr']:.3g} (steepest descent of the smoothed loss); "
          f"plot: {result['plot']}")


def cmd_report(args: argparse.Namespace) -> None:
    from ..report.compare import write_comparison
    from ..report.html import write_report

    if len(args.run_dirs) > 1:
        check_new_file(args.out, args.force)
        own = [d for d in args.run_dirs if Path(args.out).resolve() == (Path(d) / "report.html").resolve()]
        if own:   # the comparison would replace the run's own report just written, even with --force
            from ..errors import ConfigError
            raise ConfigError(f"--out {args.out}: is the run report of {own[0]}; name another file for the comparison")
    for run_dir in args.run_dirs:
        print(f"wrote {write_report(run_dir)}")
    if len(args.run_dirs) > 1:
        print(f"wrote {write_comparison(args.run_dirs, args.out)} ({len(args.run_dirs)} runs compared)")


def cmd_cache(args: argparse.Namespace) -> None:
    import datetime

    from rich.table import Table

    from ..data.cachedir import clear, disk_free, entries, prune
    from ..data.dupcache import clear_found, duplicates_dir
    from ..data.foldercache import CACHE_VERSION
    from ..data.registry import cache_dir
    from ..engine.probe import clear_features, feature_entries, features_dir
    from ..report.console import console

    where = cache_dir()
    if args.clear or args.prune:
        gone = clear(where) if args.clear else prune(where, missing_folders=True)
        print(f"removed {len(gone)} cache entries ({sum(c.bytes for c in gone) / 1e6:,.1f} MB) from {where}")
        if args.clear:
            count, size = clear_features()
            print(f"removed {count} cached feature arrays ({size / 1e6:,.1f} MB) from {features_dir()}")
            count, size = clear_found()
            print(f"removed {count} kept duplicate findings ({size / 1e6:,.1f} MB) from {duplicates_dir()}")
        return
    listed = entries(where)
    table = Table(title=f"decoded image folders in {where} ($IMGCLF_CACHE_DIR)", title_justify="left")
    for col in ("folder", "images", "MB", "written", "state"):
        table.add_column(col, justify="right" if col == "MB" else "left")
    for c in listed:
        folder = c.folder or "(not recorded: written by an older imgclf)"
        size_choice = all(p.name.endswith(".size.json") for p in c.files)
        state = "complete" if c.complete else "size choice" if size_choice else \
            "left by a removed entry (--prune removes it)" if c.orphaned else "incomplete (a killed first decode)"
        if c.folder and not Path(c.folder).exists():   # an image folder, a CSV file, a Hugging Face dataset
            state = "folder gone"
        if c.version is not None and c.version != CACHE_VERSION:
            state = f"old format (v{c.version}): unused"
        images = f"{c.shape[0]:,} × {c.shape[1]}×{c.shape[2]}×{c.shape[3]}" if c.shape else "-"
        table.add_row(printable(folder), images, f"{c.bytes / 1e6:,.1f}",
                      datetime.datetime.fromtimestamp(c.modified).strftime("%Y-%m-%d %H:%M"), state)
    if listed:
        console.print(table)
    features = feature_entries()
    if features:
        size = sum(p.stat().st_size for p in features if p.is_file())
        print(f"{len(features)} cached feature arrays (linear probes), {size / 1e6:,.1f} MB in {features_dir()}")
    free = disk_free(where)
    print(f"{counted(len(listed), 'entry')}, {sum(c.bytes for c in listed) / 1e6:,.1f} MB"
          + (f" ({free / 1e9:,.1f} GB free on that disk)" if free is not None else "")
          + "; `imgclf cache --prune` removes entries no run can use, `--clear` all of them")


COMMANDS = {"datasets": cmd_datasets, "models": cmd_models, "check": cmd_check, "show": cmd_show, "train": cmd_train,
            "eval": cmd_eval, "predict": cmd_predict, "export": cmd_export, "find-lr": cmd_find_lr,
            "report": cmd_report, "cache": cmd_cache}

