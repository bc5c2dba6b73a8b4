"""Accuracy against wall-clock time for the time budgets (`--budget`, and the fast-1m/5m/10m recipes that are
budgets with the 32×32 colour settings).

    python benchmarks/time_to_accuracy.py --folder CIFAR10_JPEG_DIR [--recipes fast-1m fast-5m] [--seeds 0 1]
    python benchmarks/time_to_accuracy.py --folder CIFAR10_JPEG_DIR --recipes fast-1m --val   # tuning: val figures

Each point is one whole `imgclf train --data FOLDER --recipe R --seed S` command in a fresh process (start-up,
cache load, calibration, training, the test pass and the plots and report included; the dataset caches at 24×24
and 32×32 are warmed first, untimed). Prints one line per run (with what the budget chose) and a table of mean
accuracy (± half-range over seeds), median minutes per recipe and whether every run stayed within its budget.
With --val, 10% of train is held out and the val accuracy of the last epoch is what counts (tuning never looks
at test).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tutorial_vs_imgclf import timed_train


def run(folder: Path, recipe: str, seed: int, out: Path, extra: list[str]) -> tuple[float, dict, dict]:
    """One timed command: wall seconds, summary.json, and the plan recorded in its checkpoint."""
    cmd = [sys.executable, "-m", "imgclf", "train", "--data", str(folder), "--recipe", recipe, "--seed", str(seed),
           "--out", str(out), *extra]
    wall, summary = timed_train(cmd)
    ckpt = torch.load(Path(summary["run_dir"]) / "last.pt", map_location="cpu", weights_only=False)
    return wall, summary, ckpt


def replan_words(ckpt: dict) -> str:
    """The loop's re-plan (engine/budget.py Replan), if it made one: its measured step against the calibrated."""
    r = (ckpt.get("budget_plan") or {}).get("replan")
    if not r:
        return ""
    return (f"; re-planned at step {r['at_step']}: loop {r['loop_step_seconds'] * 1e3:.1f} ms a step, calibrated "
            f"{r['calibrated_step_seconds'] * 1e3:.1f} ms, timed {r.get('timed_seconds', 0):.1f} s"
            f"{'' if r.get('trusted', True) else ' (the floor: calibrated)'}, "
            f"{r['steps_before']:,} → {r['steps']:,} steps")


def warm(folder: Path, out: str) -> None:
    """Decode the folder into its caches at 24×24 and at its own size, untimed."""
    for size in (["--image-size", "24"], []):
        subprocess.run([sys.executable, "-m", "imgclf", "train", "--data", str(folder), "--steps", "2",
                        "--no-plots", "--out", out, *size], check=True, capture_output=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", type=Path, required=True)
    p.add_argument("--recipes", nargs="+", default=["fast-1m", "fast-5m", "fast-10m"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--val", action="store_true", help="hold out 10%% of train and report val accuracy (tuning)")
    p.add_argument("--imgclf-args", default="", help="extra flags for imgclf train, e.g. '--tta-shift 1'")
    p.add_argument("--no-warm", action="store_true", help="skip the untimed cache-warming runs (caches known warm)")
    args = p.parse_args()
    extra = (["--val-split", "0.1"] if args.val else []) + shlex.split(args.imgclf_args)
    split = "val" if args.val else "test"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_warm:
            warm(args.folder, tmp)
        for recipe in args.recipes:
            walls, accs, within = [], [], []
            for seed in args.seeds:
                wall, s, ckpt = run(args.folder, recipe, seed, Path(tmp), extra)
                acc = ckpt["history"][-1]["val_accuracy"] if args.val else s["test_accuracy"]
                walls.append(wall)
                accs.append(acc)
                within.append(bool(s["budget"] and s["budget"]["within"]))
                chose = ckpt["config"]
                per_epoch = next(c for c in ckpt["budget_plan"]["calibration"] if c["chosen"])["steps_per_epoch"]
                print(f"{recipe} seed {seed}: {acc:.2%} {split} accuracy in {wall / 60:.2f} min whole command "
                      f"({chose['model']} at {ckpt['model_args']['image_size'][0]} px, {ckpt['global_step']:,} steps "
                      f"= {ckpt['global_step'] / per_epoch:.1f} "
                      f"epochs; train {s['train_seconds']:.0f}s at {s['images_per_second']:,.0f} img/s, test "
                      f"{s['test_seconds']:.1f}s, precision {s['precision_mode']}; within budget: "
                      f"{s['budget']['within'] if s['budget'] else 'n/a'}{replan_words(ckpt)})", flush=True)
            rows.append((recipe, statistics.mean(accs), (max(accs) - min(accs)) / 2, statistics.median(walls),
                         all(within)))
    print(f"\nrecipe      {split} accuracy (mean ± half-range)   minutes (median), whole command   all within budget")
    for recipe, acc, spread, wall, ok in rows:
        print(f"{recipe:10s}  {acc:.2%} ± {spread:.2%}                   {wall / 60:.2f}                       {ok}")


if __name__ == "__main__":
    main()
