"""What a user reads: each command's --help (a description, examples, train's options grouped by topic), the run
header's settings profile, table and plot labels, and counted words in the singular and plural."""

import argparse
import io
import re
import shlex
from pathlib import Path

import numpy as np
import torch
from conftest import make_image_folder

from imgclf.cli import build_parser, main
from imgclf.cli.parser import TRAIN_GROUPS
from imgclf.config import FIELDS
from imgclf.engine import device
from imgclf.words import counted, plural

WEATHER_CLASSES = ("cloudy", "rain", "shine", "sunrise")   # weather-mwd's
SRC = Path(__file__).resolve().parents[1] / "src" / "imgclf"


def test_a_training_size_that_changes_the_profile_says_so(tmp_path, capsys):
    """Photos trained at --image-size 16 take the 32×32 colour settings: the header names that profile and why, and
    a note lists what that changed from the photos profile (a flag you give is yours in either)."""
    root = tmp_path / "weather"
    for split, n in (("train", 16), ("test", 4)):
        make_image_folder(root / split, WEATHER_CLASSES, per_class=n, size=48, seed=len(split))
    args = ["train", "--data", str(root), "--model", "fastcnn-tiny", "--epochs", "1", "--no-plots", "--out",
            str(tmp_path / "runs")]
    assert main([*args, "--image-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "(the 32×32 colour profile: colour images trained at 32×32 or less;" in out
    note = next(line for line in out.splitlines() if "take the" in line)
    assert note.strip().startswith("trained at 16×16, images stored at 48×48 px (the median image) take the rgb32 "
                                   "profile's settings, not the photos profile's: --val-split 0.1 → 0, ")
    assert "--model" not in note and "--epochs" not in note
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "(the photos profile: images trained at more than 32×32;" in out and "take the" not in out
    assert "val split:" in out


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_command_has_a_description_and_examples_that_run_it():
    """Each `imgclf COMMAND --help` says what the command does and ends with at least two examples, each a command
    line the parser takes (no flag misspelt or gone), one of them of this command."""
    parser = build_parser()
    for command, p in subcommand_parsers(parser).items():
        text = p.format_help()
        assert p.description and len(p.description.split()) >= 6, command
        assert "\nexamples:\n" in text, command
        examples = [line.strip() for line in text.split("\nexamples:\n", 1)[1].splitlines()
                    if line.startswith("  imgclf ")]
        assert len(examples) >= 2, (command, examples)
        parsed = [parser.parse_args(shlex.split(example)[1:]) for example in examples]
        assert command in [args.command for args in parsed], (command, examples)


def test_train_options_are_grouped_by_topic():
    """train's --help lists its settings under topic headings, each setting under one (a new setting needs its
    place in cli/parser.py's TRAIN_GROUPS), and the usage line is short."""
    p = subcommand_parsers(build_parser())["train"]
    shown = {g.title: {a.dest for a in g._group_actions} for g in p._action_groups if g._group_actions}
    assert list(shown)[1:] == list(TRAIN_GROUPS)
    for name in FIELDS:
        holders = [title for title, dests in shown.items() if name in dests]
        assert holders and holders[0] in TRAIN_GROUPS, f"--{name.replace('_', '-')} is under {holders}"
    assert {"data", "image_size", "val_split"} <= shown["data"] and {"epochs", "lr"} <= shown["training"]
    assert {"budget", "precision"} <= shown["budget & speed"] and {"resume", "out"} <= shown["output & resume"]
    text = p.format_help()
    assert text.index("\ndata:\n") < text.index("\nmodel:\n") < text.index("\ntraining:\n")
    assert len(text.split("\n\n", 1)[0].splitlines()) == 1          # usage: one line, not 35


def test_precision_help_says_what_auto_picks(monkeypatch):
    """--help's account of --precision auto is what auto_precision does, on a CPU with native bf16 and without."""
    help_ = " ".join(subcommand_parsers(build_parser())["train"]._option_string_actions["--precision"].help.split())
    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert device.auto_precision(cpu)[0] == "amp-bf16" and "amp-bf16 on a GPU that has bf16" in help_
    assert "and on a CPU with native bf16 (AVX512-BF16 or AMX" in help_
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert device.auto_precision(cpu)[0] == "fp32" and "fp32 on other CPUs" in help_


def test_tables_never_cut_a_class_name_or_a_figure():
    """eval's tables keep 'sunrise' whole (it was cut to 'sunris') and every figure whole, at any terminal width:
    a confusion matrix too wide for the terminal numbers its columns instead."""
    from rich.console import Console

    from imgclf.report.console import confusion_table, metrics_table

    cm = [[28, 0, 27, 4], [5, 21, 5, 10], [1, 1, 39, 1], [0, 1, 1, 1059]]
    recall = {c: row[i] / sum(row) for i, (c, row) in enumerate(zip(WEATHER_CLASSES, cm))}
    m = {"confusion_matrix": cm, "per_class_accuracy": recall, "precision": recall, "recall": recall, "f1": recall}
    for width in (100, 60, 40):
        out = Console(width=width, record=True, file=io.StringIO(), soft_wrap=True)   # as report.console's
        table = confusion_table(cm, list(WEATHER_CLASSES), "test", width=width)
        out.print(table)
        out.print(metrics_table(m, list(WEATHER_CLASSES), "test"))
        text = out.export_text()
        rows = [line for line in text.splitlines() if line.startswith("│") and "sunrise" in line]
        assert len(rows) == 2 and "1059" in rows[0] and "99.8%" in rows[1], (width, text)   # its row in each
        assert all(f"{v:.1%}" in text for v in recall.values()) and "…" not in text.split("per class")[0]
        head = next(line for line in text.splitlines() if line.startswith("┃"))
        assert ("4 sunrise" in text) == (width < 60) and ("┃ sunrise ┃" in head) == (width >= 60), (width, text)
    odd = ["[red]", "b"]                                    # a class name is shown as named, never read as markup
    per_class = dict.fromkeys(odd, 1.0)
    out = Console(width=100, record=True, file=io.StringIO())
    out.print(confusion_table([[1, 0], [0, 1]], odd, "test"))
    out.print(metrics_table({"confusion_matrix": [[1, 0], [0, 1]], "per_class_accuracy": per_class,
                             "precision": per_class, "recall": per_class, "f1": per_class}, odd, "test"))
    assert out.export_text().count("[red]") == 3, out.export_text()


def test_a_row_normalized_confusion_plot_of_an_accurate_model_reads(monkeypatch):
    """MNIST-like: ten classes at 98.9-99.6%. The cells give one decimal of a percentage (99.6, not 1.00 for 0.996;
    0.4 for 4 errors in 1,000, not 0.00), nothing for no errors, and a few errors are coloured visibly."""
    from imgclf.report import plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi: drawn.append(fig))
    cm = [[996 if i == j else 0 for j in range(10)] for i in range(10)]
    cm[0][1], cm[0][2], cm[5][3] = 4, 0, 11                 # class 0: 99.6% right; 4 (0.4%) predicted as 1
    plots.confusion(cm, [str(i) for i in range(10)], io.BytesIO(), normalize=True)
    ax = drawn[0].axes[0]
    cells = {tuple(map(round, t.get_position())): t.get_text() for t in ax.texts}
    assert cells[(0, 0)] == "99.6" and cells[(1, 0)] == "0.4" and cells[(3, 5)] == "1.1" and cells[(1, 1)] == "100.0"
    assert cells[(2, 0)] == "" and not any(text in ("1.00", "0.00") for text in cells.values())
    shade = ax.images[0].norm
    assert shade(0.4) > 0.15 > shade(0.0) and "%" in ax.get_title() and "%" in drawn[0].axes[1].get_ylabel()


def test_show_draws_photos_from_their_files_at_a_readable_size(tmp_path, capsys):
    """`imgclf show` of photos trained at 24×24 reads the 16 drawn files again at their size (up to 160 px) and
    says so; small images (8×8 digits) are enlarged by whole pixels to ~128 px cells."""
    from PIL import Image

    root = tmp_path / "weather"
    for split, n in (("train", 6), ("test", 2)):
        make_image_folder(root / split, WEATHER_CLASSES, per_class=n, size=120, seed=len(split))
    out = tmp_path / "grid.png"
    assert main(["show", "--data", str(root), "--image-size", "24", "--out", str(out)]) == 0
    assert "(drawn at 120×120 from the files; training sees 24×24)" in capsys.readouterr().out
    with Image.open(out) as grid:
        assert grid.width >= 4 * 120 and grid.height >= 4 * 120, grid.size
        cells = np.asarray(grid.convert("RGB"))
    assert len(np.unique(cells.reshape(-1, 3), axis=0)) > 16 * 24 * 24 * 2    # more detail than 16 images of 24×24
    assert main(["show", "--data", "digits", "--out", str(tmp_path / "digits.png")]) == 0
    with Image.open(tmp_path / "digits.png") as grid:
        assert grid.width >= 4 * 128, grid.size


def test_counted_words_agree_with_their_number():
    assert [counted(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert counted(1437, "training image") == "1,437 training images" and counted(1, "usable CPU") == "1 usable CPU"
    assert [plural(w, 2) for w in ("class", "copy", "entry", "day", "box", "CPU")] == \
        ["classes", "copies", "entries", "days", "boxes", "CPUs"]
    assert plural("repeats", 1, "repeat") == "repeats" and plural("repeats", 3, "repeat") == "repeat"


def test_no_message_hedges_a_count_or_pluralizes_by_hand():
    """Counts in messages go through words.counted/plural: no '{n} image(s)' and no inline "{'s' if n > 1 ...}"
    left in the source (they gave '1 epochs' and '(1 threads)' where one was missed)."""
    hedged = re.compile(r"\}[\w ]*\w\(s\)")                  # "{n} image(s)", "{n} usable CPU(s)"
    by_hand = re.compile(r"\{['\"](s|es|ies)['\"] if ")      # "epoch{'s' if n != 1 else ''}"
    found = [f"{path.relative_to(SRC)}:{i}: {line.strip()}" for path in sorted(SRC.rglob("*.py"))
             for i, line in enumerate(path.read_text().splitlines(), 1) if hedged.search(line) or by_hand.search(line)]
    assert not found, found


def test_a_one_epoch_one_thread_run_and_a_one_image_grid_read_in_the_singular(tmp_path, capsys):
    assert main(["train", "--data", "digits", "--epochs", "1", "--threads", "1", "--no-plots", "--out",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "  1 epoch, batch" in out and "device cpu (1 thread)" in out and "1 epochs" not in out
    assert main(["show", "--data", "digits", "--n", "1", "--out", str(tmp_path / "one.png")]) == 0
    assert "(1 image: digits, train split)" in capsys.readouterr().out
