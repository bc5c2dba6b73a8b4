"""The `imgclf` command: datasets, models, show, train, eval, predict, find-lr."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from .config import CHOICES, FIELDS, read_config_file
from .errors import ImgclfError

TRAIN_HELP = {
    "data": "dataset name (see `imgclf datasets`) or a folder of images: root/<class>/* or root/{train,test}/<class>/*",
    "data_dir": "where named datasets live or are downloaded (default $IMGCLF_DATA_DIR or ~/.cache/imgclf/data)",
    "image_size": "resize every image to N×N (images are never resized unless asked)",
    "val_split": "fraction of train held out (per class, fixed seed) to choose best.pt; 0 = best.pt is the last epoch",
    "test_split": "for a folder without test/: fraction held out as the test split",
    "strict_images": "make an unreadable image an error instead of a skipped-file warning",
    "download": "download a named dataset that is not found (--no-download to only look locally)",
    "recipe": "a named set of settings (tutorial, tutorial-fast, fast-1m, fast-5m, fast-10m)",
    "warmup": "epochs of linear learning-rate warm-up",
    "ema": "average weights with this decay per step (e.g. 0.999); evaluation uses the average",
    "tta": "test-time augmentation: average predictions over each image and its mirror",
    "log_every": "print the tutorial's running-loss line every N steps",
    "save_every_steps": "also write last.pt every N steps (epoch ends always save)",
    "out": "parent folder of run folders (each run gets OUT/NAME, NAME-2, …)",
    "threads": "CPU threads for PyTorch (0 = its default)",
    "progressive_size": "train the first --progressive-epochs epochs on images resized to this size (0 = off)",
}


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    for name, f in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        kind = str(f.type)
        help_ = TRAIN_HELP.get(name, "")
        default = f.default
        help_ = f"{help_} (default: {default})" if help_ else f"default: {default}"
        if kind.startswith("bool"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            typ = int if kind.startswith("int") else float if kind.startswith("float") else str
            p.add_argument(flag, type=typ, default=None, choices=CHOICES.get(name), help=help_, metavar=None
                           if name in CHOICES else name.upper())
    p.add_argument("--config", help="YAML or TOML file of settings (same names); flags override it")
    p.add_argument("--resume", help="continue a run from its last.pt (in the same run folder)")


def _data_flags(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--data", required=required, help=TRAIN_HELP["data"])
    p.add_argument("--data-dir", help=TRAIN_HELP["data_dir"])
    p.add_argument("--image-size", type=int, help=TRAIN_HELP["image_size"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgclf", description="Train, test and use image classifiers.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("datasets", help="list datasets, where each is expected and whether it is there").add_argument(
        "--data-dir", help=TRAIN_HELP["data_dir"])
    sub.add_parser("models", help="list models with their parameter counts")

    p = sub.add_parser("show", help="write a labelled grid of images from a dataset")
    _data_flags(p, required=True)
    p.add_argument("--split", default="train", choices=("train", "val", "test"))
    p.add_argument("--n", type=int, default=16, help="how many images (default 16)")
    p.add_argument("--seed", type=int, default=0, help="which images: a seeded random sample")
    p.add_argument("--out", default="grid.png", help="PNG file to write (default grid.png)")

    p = sub.add_parser("train", help="train a model, test it, write a run folder")
    _add_train_flags(p)

    p = sub.add_parser("eval", help="test a checkpoint: accuracy, per-class table, P/R/F1, confusion matrix")
    p.add_argument("checkpoint")
    _data_flags(p)
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--model", help="network of a bare state_dict (e.g. tutorial-net)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")

    p = sub.add_parser("predict", help="classify your own image files or folders")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", help="image files and/or folders (walked)")
    p.add_argument("--topk", type=int, default=1)
    p.add_argument("--model", help="network of a bare state_dict (e.g. tutorial-net)")
    p.add_argument("--classes", help="comma-separated class names for a bare state_dict")
    p.add_argument("--image-size", type=int,
                   help="input size of a bare state_dict (default 32, or 28 for 1 channel)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("export", help="write a checkpoint as ONNX or TorchScript (+ FILE.json: classes, normalization)")
    p.add_argument("checkpoint")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    p.add_argument("--out", help="file to write (default: next to the checkpoint, best.onnx / best.torchscript.pt)")
    p.add_argument("--dynamic-batch", action="store_true", help="ONNX: any batch size (default: a fixed batch of 1)")
    p.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's, 18 or newer)")
    p.add_argument("--force", action="store_true", help="overwrite the file and its .json if they exist")

    p = sub.add_parser("find-lr", help="learning-rate range test: plot loss against lr and suggest one")
    _add_train_flags(p)
    p.add_argument("--steps", type=int, default=100, help="how many steps of the range test (default 100)")
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--max-lr", type=float, default=10.0)
    p.add_argument("--plot", default="lr_find.png", help="PNG file to write")
    return parser


def cmd_datasets(args: argparse.Namespace) -> None:
    from rich.table import Table

    from .data.registry import NAMED, default_data_dir, locate
    from .report.console import console

    root = Path(args.data_dir) if args.data_dir else default_data_dir()
    table = Table(title=f"datasets (data dir {root})", title_justify="left")
    for col in ("name", "description", "status", "expected at"):
        table.add_column(col)
    for name, ds in NAMED.items():
        found = locate(name, root)
        status = "embedded" if not ds.files else ("present" if found else "missing (downloads on first use)")
        where = str(found) if found else str(root / ds.folder_names[0]) + "/ " + ", ".join(ds.files)
        table.add_row(name, ds.description, status, where if ds.files else "(inside scikit-learn)")
    console.print(table)
    console.print("a folder of your own images works too: --data PATH with PATH/<class>/* "
                  "or PATH/{train,test}/<class>/*")


def cmd_models(_: argparse.Namespace) -> None:
    from rich.table import Table

    from .models import MODELS, build_model, count_parameters
    from .report.console import console

    table = Table(title="models (parameters for 3×32×32 input, 10 classes)", title_justify="left")
    for col in ("name", "parameters", "description"):
        table.add_column(col, justify="right" if col == "parameters" else "left")
    for name, spec in MODELS.items():
        table.add_row(name, f"{count_parameters(build_model(name, 3, 10, (32, 32))):,}", spec.description)
    console.print(table)


def cmd_show(args: argparse.Namespace) -> None:
    import torch

    from .data import load_dataset
    from .report.plots import image_grid

    ds = load_dataset(args.data, args.data_dir, image_size=args.image_size, val_split=0.1 if args.split == "val" else 0)
    split = ds.split(args.split)
    n = min(args.n, len(split))
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(args.seed))[:n].sort().values
    titles = [ds.classes[int(y)] for y in split.labels[idx]]
    path = image_grid(split.images[idx], titles, Path(args.out), suptitle=f"{ds.name}, {args.split} split")
    print(f"wrote {path} ({n} {args.split} images of {ds.name})")


def _train_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings = read_config_file(args.config) if args.config else {}
    settings.update({k: getattr(args, k) for k in FIELDS if getattr(args, k, None) is not None})
    return settings


def cmd_train(args: argparse.Namespace) -> None:
    from .engine.train import train

    train(_train_settings(args), resume=args.resume)


def cmd_eval(args: argparse.Namespace) -> None:
    from .api import load
    from .report.console import console, metrics_table

    clf = load(args.checkpoint, model=args.model, device=args.device, image_size=args.image_size)
    result = clf.evaluate(args.data, args.data_dir, split=args.split)
    if args.json:
        print(json.dumps(result))
        return
    console.print(metrics_table(result, result["classes"], args.split))
    k = len(result["classes"])
    if k <= 12:
        from rich.table import Table

        cm = Table(title=f"confusion matrix, {args.split} split (rows: true, columns: predicted)", title_justify="left")
        cm.add_column("")
        for c in result["classes"]:
            cm.add_column(c[:6], justify="right")
        for c, row in zip(result["classes"], result["confusion_matrix"]):
            cm.add_row(c, *map(str, row))
        console.print(cm)
    console.print(f"[bold]{args.split} accuracy {result['accuracy']:.2%}[/] ({result['n']:,} images of "
                  f"{result['dataset']}, {args.split} split), {args.split} loss {result['loss']:.4f}")


def cmd_predict(args: argparse.Namespace) -> None:
    from .api import load

    classes = args.classes.split(",") if args.classes else None
    clf = load(args.checkpoint, model=args.model, device=args.device, classes=classes, image_size=args.image_size)
    results = clf.predict(args.images, topk=args.topk)
    if args.json:
        print(json.dumps(results))
        return
    for r in results:
        alts = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["topk"][1:])
        print(f"{r['file']}: {r['class']} ({r['probability']:.1%}){'  [' + alts + ']' if alts else ''}")


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export_model

    path = export_model(args.checkpoint, args.format, args.out, args.dynamic_batch, args.opset, force=args.force)
    print(f"wrote {path} and {path.name}.json (input: float32 NCHW, (x/255 - mean)/std; see the .json)")


def cmd_find_lr(args: argparse.Namespace) -> None:
    from .engine.lr_finder import find_lr

    result = find_lr(_train_settings(args), steps=args.steps, min_lr=args.min_lr, max_lr=args.max_lr,
                     plot=args.plot)
    print(f"suggested lr {result['suggested_lr']:.3g} (steepest descent of the smoothed loss); plot: {args.plot}")


COMMANDS = {"datasets": cmd_datasets, "models": cmd_models, "show": cmd_show, "train": cmd_train,
            "eval": cmd_eval, "predict": cmd_predict, "export": cmd_export, "find-lr": cmd_find_lr}


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a command; our errors print as one line (exit 2), an interrupted run exits 130."""
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except ImgclfError as e:
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def entry() -> int:
    """The `imgclf` command (console script and `python -m imgclf`): main(), then move every object into the
    permanent GC generation, so that the interpreter's exit skips collecting torch's hundreds of thousands of
    objects (~0.5 s of a 10 s run on our 2-core CPU). Everything is written and closed by then."""
    code = main()
    sys.stdout.flush()
    gc.freeze()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())

