"""airbench94's recipe against `imgclf train --budget T` at equal wall time, same folder, same machine, same run.

    python benchmarks/airbench_equal_time.py --folder CIFAR10_JPEG_DIR [--epochs 1 3 9.9] [--seeds 0]

For each epoch count E: airbench94_reference.py trains E epochs of airbench94's recipe in a fresh process (its wall
time from process start to the printed result: imports, normalization, whitening, training, the TTA test pass), on
the folder's pixels decoded beforehand into uint8 arrays (untimed, as torchvision's CIFAR10 holds them). Then the
whole `imgclf train --data FOLDER --budget W --no-plots` command runs with W = that wall time (airbench writes no
plots or report, so neither does imgclf; dataset cache warm). Prints both accuracies (test split) and wall times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from photo_sizes import cpu_name  # noqa: E402
from tutorial_vs_imgclf import decode_split  # noqa: E402


def write_npz(folder: Path, path: Path) -> None:
    """The folder's train and test splits as uint8 N×32×32×3 arrays and int64 labels (untimed)."""
    train, test = decode_split(folder / "train"), decode_split(folder / "test")
    np.savez(path, train_x=train.data, train_y=np.asarray(train.targets, dtype=np.int64),
             test_x=test.data, test_y=np.asarray(test.targets, dtype=np.int64))


def airbench(npz: Path, epochs: float, seed: int) -> dict:
    """One airbench94 run in a fresh process: its JSON result with the wall time measured from outside."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, str(HERE / "airbench94_reference.py"), "--npz", str(npz),
                          "--epochs", str(epochs), "--seed", str(seed)], check=True, capture_output=True, text=True)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "wall": time.perf_counter() - t}


def imgclf_budget(folder: Path, seconds: float, seed: int, out: Path) -> dict:
    """The whole `imgclf train --budget` command: wall time, test accuracy and what the plan chose."""
    cmd = [sys.executable, "-m", "imgclf", "train", "--data", str(folder), "--budget", f"{seconds:.1f}s",
           "--seed", str(seed), "--no-plots", "--out", str(out)]
    t = time.perf_counter()
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    run_dir = Path(r.stdout.strip().splitlines()[-1].split("run folder: ")[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    import yaml
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    chosen = f"{cfg['model']} {cfg.get('image_size') or 32}px, {cfg['steps']:,} steps"
    return {"wall": wall, "test_accuracy": summary["test_accuracy"], "chosen": chosen}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", type=Path, required=True)
    p.add_argument("--epochs", type=float, nargs="+", default=[1.0, 3.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "cifar.npz"
        write_npz(args.folder, npz)
        subprocess.run([sys.executable, "-m", "imgclf", "check", "--data", str(args.folder)], check=True,
                       capture_output=True)   # the dataset cache warm, as for every timed imgclf command
        for epochs in args.epochs:
            for seed in args.seeds:
                a = airbench(npz, epochs, seed)
                b = imgclf_budget(args.folder, a["wall"], seed, Path(tmp) / "runs")
                rows.append((epochs, seed, a, b))
                print(f"E={epochs:g} seed {seed}: airbench94 {a['test_accuracy']:.2%} in {a['wall']:.1f} s; "
                      f"imgclf {b['test_accuracy']:.2%} in {b['wall']:.1f} s ({b['chosen']})", flush=True)
    print(f"\nCPU: {cpu_name()}; airbench94 precision {rows[0][2]['precision']}, {rows[0][2]['threads']} threads")
    print("| airbench94 epochs | seed | airbench94 test acc | its wall s | imgclf --budget (s) | imgclf test acc | "
          "imgclf wall s | imgclf chose | difference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for epochs, seed, a, b in rows:
        print(f"| {epochs:g} | {seed} | {a['test_accuracy']:.2%} | {a['wall']:.1f} | {a['wall']:.1f} | "
              f"{b['test_accuracy']:.2%} | {b['wall']:.1f} | {b['chosen']} | "
              f"{(b['test_accuracy'] - a['test_accuracy']) * 100:+.2f} points |")


if __name__ == "__main__":
    main()
