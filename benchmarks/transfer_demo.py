"""Transfer learning with real weights (no download can run here, so we make our own pretrained model):
train on five CIFAR-10 classes, then fine-tune on a few hundred images of the other five, against training the
same small set from scratch with the same settings and epochs. Test splits: the five new classes' full test split.

    python benchmarks/transfer_demo.py --folder CIFAR10_JPEG_DIR [--per-class 60] [--epochs 15] [--seeds 0 1 2]

Prints the source run, then each seed's from-scratch and fine-tuned test accuracy, and their means.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import imgclf

SOURCE = ("airplane", "automobile", "bird", "cat", "deer")
TARGET = ("dog", "frog", "horse", "ship", "truck")


def subset(folder: Path, out: Path, classes: tuple[str, ...], per_class: int | None) -> Path:
    """out/{train,test}/<class>/ as symlinks to the first `per_class` train images (all test images)."""
    for split in ("train", "test"):
        for c in classes:
            (out / split / c).mkdir(parents=True)
            files = sorted((folder / split / c).iterdir())
            for f in files[:per_class] if split == "train" and per_class else files:
                os.symlink(f, out / split / c / f.name)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", type=Path, required=True)
    p.add_argument("--per-class", type=int, default=60, help="training images per class of the small set")
    p.add_argument("--epochs", type=int, default=15, help="epochs on the small set (both arms)")
    p.add_argument("--source-epochs", type=int, default=8)
    p.add_argument("--model", default="fastcnn-small")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = subset(args.folder, tmp / "source", SOURCE, None)
        small = subset(args.folder, tmp / "small", TARGET, args.per_class)
        common = dict(model=args.model, out=str(tmp / "runs"), plots=False, quiet=True)
        source = imgclf.train(data=str(src), epochs=args.source_epochs, val_split=0.1, **common)
        print(f"source: {args.model} on {', '.join(SOURCE)} ({len(SOURCE) * 5000:,} images), "
              f"{source['test_accuracy']:.2%} test accuracy (their test split) in {source['train_seconds']:.0f}s")
        small_args = dict(data=str(small), epochs=args.epochs, val_split=0.0, **common)
        scratch, tuned = [], []
        for seed in args.seeds:
            a = imgclf.train(seed=seed, **small_args)
            b = imgclf.train(seed=seed, init_weights=source["checkpoint"], **small_args)
            scratch.append(a["test_accuracy"])
            tuned.append(b["test_accuracy"])
            print(f"seed {seed}: {len(TARGET) * args.per_class} images of {', '.join(TARGET)}, {args.epochs} epochs: "
                  f"from scratch {a['test_accuracy']:.2%} ({a['train_seconds']:.0f}s), fine-tuned from the source "
                  f"model {b['test_accuracy']:.2%} ({b['train_seconds']:.0f}s); test split of 5,000 images")
    print(f"mean over seeds {args.seeds}: from scratch {statistics.mean(scratch):.2%}, "
          f"fine-tuned {statistics.mean(tuned):.2%}")


if __name__ == "__main__":
    main()
