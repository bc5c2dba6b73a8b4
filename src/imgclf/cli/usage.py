"""What each `imgclf` command is for and examples of it, for its --help: the one-line summary (the command list of
`imgclf --help`), a description, and commands to copy, each under a comment that says what it does."""

from __future__ import annotations

import shutil
import textwrap

# command: (summary for `imgclf --help`, description for `imgclf COMMAND --help`, [(what, example), ...])
COMMANDS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "datasets": (
        "list datasets, where each is expected and whether it is there",
        "List the named datasets (--data NAME), the folder each is read from and whether its files are there.",
        [("the named datasets and where they are", "imgclf datasets"),
         ("the same, looking in another data folder", "imgclf datasets --data-dir ~/data")]),
    "models": (
        "list models with their parameter counts",
        "List the networks --model takes: parameter counts, what each is, and where its ImageNet weights come from.",
        [("the networks and their sizes", "imgclf models"),
         ("train one of them", "imgclf train --data cifar10 --model fastcnn-medium")]),
    "check": (
        "a dataset's health without training: images per class and split, file sizes and modes, unreadable files, "
        "repeated images across splits, label conflicts",
        "Check a dataset without training: images per class and split, sizes and modes, unreadable files, images "
        "repeated across splits, label conflicts.",
        [("a folder of images (one sub-folder per class)", "imgclf check --data ./my_photos"),
         ("the same as a page with the repeated images side by side; exit 3 on a problem (for CI)",
          "imgclf check --data ./my_photos --html check.html --strict")]),
    "show": (
        "write a labelled grid of images from a dataset",
        "Write a labelled grid of a dataset's images (or, with --augmented, a training batch as the model sees it).",
        [("16 training images of CIFAR-10", "imgclf show --data cifar10 --out grid.png"),
         ("32 images of a folder after the augmentation training would use",
          "imgclf show --data ./my_photos --augmented --n 32 --out batch.png")]),
    "train": (
        "train a model, test it, write a run folder",
        "Train a model, test it on the test split and write a run folder (checkpoints, metrics, plots, report.html).",
        [("the embedded 8×8 digits, with the settings imgclf picks for them", "imgclf train --data digits"),
         ("a folder of photos (one sub-folder per class), 10 epochs at 96×96",
          "imgclf train --data ./my_photos --epochs 10 --image-size 96"),
         ("CIFAR-10 in 5 minutes on this machine: the steps (and model) planned to fit",
          "imgclf train --data cifar10 --budget 5m")]),
    "eval": (
        "test a checkpoint: accuracy, per-class table, P/R/F1, confusion matrix",
        "Test a checkpoint (or an exported .onnx file): accuracy, a per-class table, precision/recall/F1, the "
        "confusion matrix.",
        [("a run's best checkpoint on its own test split", "imgclf eval runs/train/digits-fastcnn-tiny/best.pt"),
         ("an exported model on another folder, as JSON", "imgclf eval best.onnx --data ./more_photos --json")]),
    "predict": (
        "classify your own image files or folders",
        "Classify image files and folders with a checkpoint or an exported model: the class and its probability.",
        [("one photo", "imgclf predict runs/train/my_photos-fastcnn-small/best.pt photo.jpg"),
         ("every image under a folder, the 3 likeliest classes each, also written to a CSV file",
          "imgclf predict best.pt ./new_photos --topk 3 --csv predictions.csv")]),
    "export": (
        "write a checkpoint as ONNX or TorchScript (+ FILE.json: classes, normalization)",
        "Write a checkpoint as ONNX or TorchScript, with FILE.json beside it (classes, normalization, image size).",
        [("ONNX next to the checkpoint (best.onnx)", "imgclf export runs/train/digits-fastcnn-tiny/best.pt "
          "--format onnx"),
         ("TorchScript to a file of your choosing", "imgclf export best.pt --format torchscript --out model.pt")]),
    "find-lr": (
        "learning-rate range test: plot loss against lr and suggest one",
        "Learning-rate range test: train a few steps at a rising learning rate, plot the loss against it and suggest "
        "one for --lr.",
        [("the default model on CIFAR-10", "imgclf find-lr --data cifar10"),
         ("a pretrained network on a photo folder, with AdamW",
          "imgclf find-lr --data ./my_photos --model resnet18-imagenet --optimizer adamw")]),
    "report": (
        "rebuild report.html in run folders; with several, also a comparison page",
        "Rebuild report.html in each run folder; given several, also write a page that compares them.",
        [("one run's report again", "imgclf report runs/train/digits-fastcnn-tiny"),
         ("every run under runs/train, side by side", "imgclf report runs/train/* --out compare.html")]),
    "cache": (
        "list the decoded image folders cached on disk; remove the ones no run needs",
        "List the decoded image folders cached on disk ($IMGCLF_CACHE_DIR, else ~/.cache/imgclf/folders), or remove "
        "entries.",
        [("what is cached, and its size", "imgclf cache"),
         ("remove the entries of folders that no longer exist", "imgclf cache --prune")]),
}


def width() -> int:
    """The width argparse wraps help to (the terminal's, less 2), at most 100: descriptions and notes wrap to it."""
    return max(40, min(100, shutil.get_terminal_size().columns - 2))


def description(command: str) -> str:
    return textwrap.fill(COMMANDS[command][1], width())


def examples_text(command: str, *more: str) -> str:
    """`imgclf COMMAND --help`'s epilog: the examples, each command under a comment saying what it does, then
    `more` paragraphs, wrapped."""
    lines = ["examples:"]
    for what, example in COMMANDS[command][2]:
        lines += [f"  # {what}", f"  {example}"]
    return "\n".join(lines + [f"\n{textwrap.fill(text, width())}" for text in more])
