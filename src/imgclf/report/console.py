"""What a run prints: a header, a progress bar per epoch, the tutorial's running-loss line, one line per epoch
(every figure labelled with its split), and the final test report as tables."""

from __future__ import annotations

import sys
import time
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .. import verbosity
from ..fileio import printable, stdout_to_devnull
from ..recipes import PROFILE_WHY, profile_name
from ..words import counted


class _Console(Console):
    """rich's Console, except that when the output's reader has gone (`imgclf train ... | head`) the command goes
    on silently instead of exiting (rich's way): a training run still finishes and saves everything."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        stdout_to_devnull()


# Not a terminal (a log file, CI): wide enough that tables of paths are not folded.
console = _Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({counted(n, 'thread')})"
    return str(device)


PROFILE_WORDS = {"digits": "8×8 digits", "gray28": "28×28 grayscale", "rgb32": "32×32 colour", "photos": "photos"}


def run_header(cfg: Any, data: Any, device: torch.device, prec: Any, n_params: int, run_dir: Any,
               resumed: bool) -> None:
    if not verbosity.shown():
        return
    c, h, w = data.shape
    sizes = ", ".join(f"{k} {len(v):,}" for k, v in data.splits().items())
    console.print(f"[bold]{'resuming' if resumed else 'training'}[/] {cfg.model} ({n_params:,} parameters) on "
                  f"{data.name}: {sizes} images of {c}×{h}×{w}, {data.num_classes} classes")
    for note in data.notes:
        console.print(f"  {note}")
    tuned = cfg.epochs - 1 if cfg.linear_probe else cfg.epochs
    length = counted(tuned, "epoch")
    if cfg.linear_probe:
        length = (f"linear probe (epoch 1: a head on the frozen backbone's features) + {length} of fine-tuning"
                  f"{' (BatchNorm statistics kept)' if cfg.freeze_bn else ''}")
    profile = profile_name(data.name, data.shape)
    console.print(f"  {length}, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}, {cfg.schedule} (the "
                  f"{PROFILE_WORDS[profile]} profile: {PROFILE_WHY[profile]}; --print-config says where each setting "
                  "comes from); "
                  f"device {device_name(device)}, {prec.name} ({prec.reason})"
                  f"{', channels_last' if prec.channels_last else ''}; run folder {run_dir}")


PLAIN_EVERY_S = 30.0   # outside a terminal or notebook (a log file, CI): a progress line at most this often


class EpochBar:
    """One epoch's progress with live loss, accuracy and images/s: a bar in a terminal or a Jupyter notebook, a plain
    line every PLAIN_EVERY_S elsewhere (a log file, CI: nothing for minutes is no answer), nothing when quiet."""

    def __init__(self, epoch: int, epochs: int, steps: int) -> None:
        quiet = not verbosity.shown()
        self.every = max(1, steps // 25)
        self.progress = None
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.plain = not quiet and not (console.is_terminal or console.is_jupyter)
        self.started = self.last = time.monotonic()
        if not quiet and not self.plain:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console,
                                     transient=True)
            self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, info="")
            self.progress.start()

    def retotal(self, epochs: int, steps: int) -> None:
        """A budget re-planned the run mid-epoch: the new epoch count and this epoch's steps."""
        self.epochs, self.steps = epochs, steps
        if self.progress is not None:
            self.progress.update(self.task, description=f"epoch {self.epoch + 1}/{epochs}", total=steps)

    def wants_update(self, step: int) -> bool:
        """Whether to read the loss for an update after `step` (reading it waits for the device)."""
        if (step + 1) % self.every:
            return False
        return self.progress is not None or (self.plain and time.monotonic() - self.last >= PLAIN_EVERY_S)

    def update(self, step: int, loss: float, acc: float, ips: float) -> None:
        info = f"train loss {loss:.3f} acc {acc:.1%} {ips:,.0f} img/s"
        if self.progress is not None:
            self.progress.update(self.task, completed=step + 1, info=info)
        elif self.plain and time.monotonic() - self.last >= PLAIN_EVERY_S:
            self.last = now = time.monotonic()
            left = (now - self.started) / (step + 1) * max(0, self.steps - step - 1)
            console.print(f"epoch {self.epoch + 1}/{self.epochs}  step {step + 1:,}/{self.steps:,}  {info}  "
                          f"epoch ends in {left:,.0f}s")

    def close(self) -> None:
        """Take the bar off the screen (also when the epoch ends by an interrupt or an error)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def running_loss(epoch: int, step: int, loss: float) -> None:
    """The tutorial's line: [epoch, step] loss: running average."""
    if verbosity.shown():
        console.print(f"[{epoch + 1}, {step + 1:5d}] loss: {loss:.3f}")


def note(text: str) -> None:
    """An indented one-line remark in the run's output."""
    if verbosity.shown():
        console.print(f"  {text}")


def epoch_line(row: dict[str, Any]) -> None:
    if not verbosity.shown():
        return
    val = f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.2%}" if "val_accuracy" in row else ""
    console.print(f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.2%}"
                  f"{val}  lr {row['lr']:.4g}  {row['seconds']:.1f}s  {row['images_per_second']:,.0f} img/s")


def metrics_table(metrics: dict[str, Any], classes: list[str], split: str) -> Table:
    """Accuracy, precision, recall and F1 per class; in a narrow terminal the headers shorten, never a class name
    (up to 40 characters, shown as named: '[red]' is not markup) or a figure."""
    table = Table(title=f"per class, {split} split", title_justify="left")
    support = [sum(row) for row in metrics["confusion_matrix"]]

    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.1%}"

    rows = [[escape(c), fmt(metrics["per_class_accuracy"][c]), fmt(metrics["precision"][c]), fmt(metrics["recall"][c]),
             fmt(metrics["f1"][c]), str(n)] for c, n in zip(classes, support)]
    for i, col in enumerate(("class", "accuracy", "precision", "recall", "f1", "images")):
        widest = max((len(printable(c) if i == 0 else row[i]) for c, row in zip(classes, rows)), default=1)
        table.add_column(col, justify="left" if i == 0 else "right", min_width=min(40, widest), no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def confusion_table(cm: list[list[int]], classes: list[str], split: str, width: int | None = None) -> Table:
    """The confusion matrix as a table (rows: true class, columns: predicted) with no class name cut: the columns
    carry the names where they fit in `width` (default: the console's), else numbers that the rows give."""
    names = [printable(c) for c in classes]
    counts = max((len(str(v)) for row in cm for v in row), default=1)
    fits = max(map(len, names), default=1) + 1 + sum(max(len(n), counts) + 3 for n in names) + 3 \
        <= (console.width if width is None else width)
    heads = names if fits else [str(i + 1) for i in range(len(names))]
    labels = names if fits else [f"{i + 1} {n}" for i, n in enumerate(names)]
    how = "columns: predicted" if fits else "columns: predicted, numbered as the rows"
    table = Table(title=f"confusion matrix, {split} split (rows: true, {how})", title_justify="left")
    table.add_column("", min_width=max(map(len, labels), default=1), no_wrap=True)
    for head in heads:
        table.add_column(escape(head), justify="right", min_width=max(len(head), counts), no_wrap=True)
    for label, row in zip(labels, cm):
        table.add_row(escape(label), *map(str, row))
    return table


def balance_remark(m: dict[str, Any], classes: list[str], split: str) -> str | None:
    """One line when accuracy hides poor classes: plain accuracy far above balanced accuracy (the mean recall)."""
    acc, bal = m.get("accuracy"), m.get("balanced_accuracy")
    if acc is None or bal is None or not acc - bal > 0.1:
        return None
    predicted = [sum(col) for col in zip(*m["confusion_matrix"])]
    top = max(range(len(classes)), key=predicted.__getitem__)
    share = predicted[top] / max(1, sum(predicted))
    return (f"{split} accuracy {acc:.1%} but balanced accuracy {bal:.1%}: {share:.0%} of predictions are "
            f"{classes[top]!r}; look at the per-class recall")


def test_report(summary: dict[str, Any], test: dict[str, Any]) -> None:
    if not verbosity.shown():
        return
    if len(summary["classes"]) <= 30:
        console.print(metrics_table(test, summary["classes"], "test"))
    console.print(result_line(summary, bold=True))
    remark = balance_remark(test, summary["classes"], "test")
    if remark:
        console.print(f"[yellow]{remark}[/]")
    console.print(f"run folder: {summary['run_dir']}")


def repeats_text(record: dict[str, Any] | None) -> str:
    """What the test images that repeat training images did to the figure (engine/evaluate.test_metrics)."""
    if not record:
        return ""
    k = record["repeating_train"]
    if record["policy"] == "exclude":
        return (f" without the {k:,} that repeat training images, {record['accuracy_with_them']:.2%} with them")
    return f", {k:,} of them repeating training images ({record['accuracy_without_them']:.2%} without them)"


def result_line(summary: dict[str, Any], bold: bool = False) -> str:
    """A run's result in one line (the last figures of the report; all that `imgclf train --quiet` prints)."""
    accuracy = f"test accuracy {summary['test_accuracy']:.2%}"
    top5 = f", top-5 {summary['test_top5_accuracy']:.2%}" if "test_top5_accuracy" in summary else ""
    return (f"{f'[bold]{accuracy}[/]' if bold else accuracy} (test split, "
            f"{counted(summary['test_split_size'], 'image')}{repeats_text(summary.get('test_duplicates'))}; "
            f"balanced accuracy {summary['test_balanced_accuracy']:.2%}, macro-F1 {summary['test_macro_f1']:.3f}"
            f"{top5}), test loss {summary['test_loss']:.4f}; checkpoint chosen on "
            f"{summary['checkpoint_selected_on']}: {summary['checkpoint_choice']}; trained "
            f"{summary['train_seconds']:.1f}s at {summary['images_per_second']:,.0f} img/s, "
            + (f"{summary['total_seconds']:.1f}s this command (resumed: the training time is the whole run's)"
               if summary.get("resumed") else f"{summary['total_seconds']:.1f}s in all"))
