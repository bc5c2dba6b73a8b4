"""--optimizer muon against sgd on CIFAR-10 (airbench94_muon reaches in 8 epochs what SGD needs ~10 for):
val accuracy and time for a list of epoch counts and seeds, the 32×32 colour settings of the fast recipes.

    python benchmarks/muon_vs_sgd.py --folder CIFAR10_JPEG_DIR [--epochs 4 6 8 10] [--seeds 0 1 2]

Each run is one whole `imgclf train --data FOLDER --val-split 0.1 --recipe fast-5m --epochs E --optimizer O --seed S
--no-plots` in a fresh process (--epochs replaces the recipe's budget: fastcnn-small at 32×32, lr 0.2, one-cycle);
the folder's cache is warmed first, untimed. Runs go seed by seed, epochs by epochs, sgd then muon, so a machine
that drifts (another job) hits both alike. The figure is the last epoch's val accuracy (10% of train held out:
tuning never looks at test). Prints one line per run and a table: mean val accuracy ± half-range over seeds, median
training seconds and median whole-command seconds per optimizer and epoch count.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tutorial_vs_imgclf import timed_train


def last_val_accuracy(run_dir: str) -> float:
    """The val accuracy of a run's last epoch, from its metrics.csv."""
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_accuracy")]
    return float(rows[-1]["val_accuracy"])


def run(folder: Path, optimizer: str, epochs: int, seed: int, out: Path, extra: list[str]
        ) -> tuple[float, float, float]:
    """One timed command: (last-epoch val accuracy, training seconds, whole-command seconds)."""
    cmd = [sys.executable, "-m", "imgclf", "train", "--data", str(folder), "--val-split", "0.1", "--recipe",
           "fast-5m", "--epochs", str(epochs), "--optimizer", optimizer, "--seed", str(seed), "--no-plots",
           "--out", str(out), *extra]
    wall, summary = timed_train(cmd)
    return last_val_accuracy(summary["run_dir"]), summary["train_seconds"], wall


def warm(folder: Path, out: str) -> None:
    """Decode the folder into its cache (at its own size), untimed."""
    subprocess.run([sys.executable, "-m", "imgclf", "train", "--data", str(folder), "--val-split", "0.1", "--steps",
                    "2", "--no-plots", "--out", out], check=True, capture_output=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", type=Path, required=True, help="CIFAR-10 as a JPEG folder (train/ and test/)")
    p.add_argument("--epochs", nargs="+", type=int, default=[4, 6, 8, 10])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--optimizers", nargs="+", default=["sgd", "muon"])
    p.add_argument("--imgclf-args", default="", help="extra flags for imgclf train, e.g. '--lr 0.3'")
    p.add_argument("--no-warm", action="store_true", help="skip the untimed cache-warming run (cache known warm)")
    args = p.parse_args()
    extra = shlex.split(args.imgclf_args)
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_warm:
            warm(args.folder, tmp)
        for seed in args.seeds:
            for epochs in args.epochs:
                for optimizer in args.optimizers:
                    acc, train_s, wall = run(args.folder, optimizer, epochs, seed, Path(tmp), extra)
                    results.setdefault((optimizer, epochs), []).append((acc, train_s, wall))
                    print(f"{optimizer:5s} {epochs:3d} epochs seed {seed}: {acc:.2%} val accuracy, train "
                          f"{train_s:.0f}s, whole command {wall:.0f}s", flush=True)
    print("\noptimizer  epochs  val accuracy (mean ± half-range)  train s (median)  whole command s (median)")
    for (optimizer, epochs), rows in sorted(results.items(), key=lambda r: (args.optimizers.index(r[0][0]), r[0][1])):
        accs = [a for a, _, _ in rows]
        print(f"{optimizer:9s}  {epochs:6d}  {statistics.mean(accs):.2%} ± {(max(accs) - min(accs)) / 2:.2%}"
              f"                  {statistics.median(t for _, t, _ in rows):14.0f}  "
              f"{statistics.median(w for _, _, w in rows):24.0f}")


if __name__ == "__main__":
    main()
