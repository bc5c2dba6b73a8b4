"""Target 2 of issue 4: test accuracy against wall-clock minutes for the CPU time-budget recipes.

    python benchmarks/time_to_accuracy.py --folder CIFAR10_JPEG_DIR [--recipes fast-1m fast-5m] [--seeds 0 1]

Each point is one whole `imgclf train --data FOLDER --recipe R --no-plots --seed S` command in a fresh process
(start-up, cache load, training and the test pass included; the dataset cache is warmed first, untimed).
Prints one line per run and a table of mean test accuracy (± spread over seeds) and median minutes per recipe.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tutorial_vs_imgclf import timed_train


def run(folder: Path, recipe: str, seed: int, out: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "imgclf", "train", "--data", str(folder), "--recipe", recipe, "--no-plots",
           "--seed", str(seed), "--out", str(out)]
    return timed_train(cmd)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", type=Path, required=True)
    p.add_argument("--recipes", nargs="+", default=["fast-1m", "fast-5m", "fast-10m"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--no-warm", action="store_true", help="skip the untimed cache-warming run (cache known warm)")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            if not args.no_warm:  # warm the decoded-image cache at the recipe's resolution, untimed
                subprocess.run([sys.executable, "-m", "imgclf", "train", "--data", str(args.folder), "--recipe",
                                recipe, "--epochs", "1", "--no-plots", "--out", tmp], check=True, capture_output=True)
            walls, accs = [], []
            for seed in args.seeds:
                wall, s = run(args.folder, recipe, seed, Path(tmp))
                walls.append(wall)
                accs.append(s["test_accuracy"])
                print(f"{recipe} seed {seed}: {s['test_accuracy']:.2%} test accuracy (test split) in "
                      f"{wall / 60:.2f} min "
                      f"(train {s['train_seconds']:.0f}s at {s['images_per_second']:,.0f} img/s, test "
                      f"{s['test_seconds']:.1f}s)", flush=True)
            rows.append((recipe, statistics.mean(accs), (max(accs) - min(accs)) / 2, statistics.median(walls)))
    print("\nrecipe      test accuracy (mean ± half-range)   minutes (median), whole command")
    for recipe, acc, spread, wall in rows:
        print(f"{recipe:10s}  {acc:.2%} ± {spread:.2%}                   {wall / 60:.2f}")


if __name__ == "__main__":
    main()
