"""How steady a budgeted run's step time is: the re-plan's timed window (engine/budget.py Replan) against the
whole run's steps, and epoch by epoch. This is what TRUSTED_WINDOW_S rests on: on a shared VM the pace of the same
steps wanders, and a window of ~1.4 s (fastcnn-tiny's warm-up) is not a measurement of the whole run.

    python benchmarks/step_pace.py --folder cifar10-jpeg/ [--recipe fast-1m] [--seeds 0 1]

Runs `imgclf train` in this process with a clock after each training step, then prints the re-plan's record, the
mean step of its window (the steps it timed), the mean and median step of the whole run, and per epoch the mean,
median and slowest step and the epoch's first step (its boundary: reshuffle, the checkpoints before it).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import imgclf
import imgclf.engine.train as train_module
from imgclf.checkpoint import load_checkpoint
from imgclf.engine import budget


def timed_run(folder: str, recipe: str, seed: int, out: str) -> tuple[list[float], dict[str, Any], int]:
    """(clock after each step, the re-plan record or {}, steps per epoch) of one run."""
    stamps: list[float] = []
    step = train_module.train_step

    def clocked(*args: Any, **kwargs: Any) -> Any:
        result = step(*args, **kwargs)
        stamps.append(time.perf_counter())
        return result

    train_module.train_step = clocked
    try:
        s = imgclf.train({"data": folder, "recipe": recipe, "seed": seed, "plots": False, "out": out}, quiet=True)
    finally:
        train_module.train_step = step
    ckpt = load_checkpoint(Path(s["run_dir"]) / "last.pt")
    per_epoch = -(-ckpt["global_step"] // ckpt["config"]["epochs"])
    return stamps, (ckpt.get("budget_plan") or {}).get("replan") or {}, per_epoch


def report(stamps: list[float], replan: dict[str, Any], per_epoch: int) -> None:
    ms = [(b - a) * 1e3 for a, b in itertools.pairwise(stamps)]   # ms[i]: step i + 2
    if replan:
        at, first = replan["at_step"], budget.REPLAN_FROM
        window = (stamps[at - 1] - stamps[first - 1]) * 1e3 / (at - first)
        print(f"  re-plan at step {at}: timed {replan.get('timed_seconds', 0):.1f} s, its steps {window:.1f} ms "
              f"(recorded {replan['loop_step_seconds'] * 1e3:.1f}; calibrated "
              f"{replan['calibrated_step_seconds'] * 1e3:.1f}), trusted: {replan.get('trusted')}")
    print(f"  whole run: {len(stamps):,} steps, mean {statistics.mean(ms):.1f} ms, median {statistics.median(ms):.1f}")
    first = ms[:per_epoch - 1]
    print(f"  epoch 1: mean {statistics.mean(first):.1f} ms, median {statistics.median(first):.1f}, "
          f"slowest {max(first):.0f}")
    for e, start in enumerate(range(per_epoch - 1, len(ms), per_epoch)):
        chunk = ms[start + 1:start + per_epoch]
        if chunk:
            print(f"  epoch {e + 2}: mean {statistics.mean(chunk):.1f} ms, median {statistics.median(chunk):.1f}, "
                  f"slowest {max(chunk):.0f}, first step {ms[start]:.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", required=True)
    p.add_argument("--recipe", default="fast-1m")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = p.parse_args()
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"{args.recipe} seed {seed}:")
            report(*timed_run(args.folder, args.recipe, seed, tmp))


if __name__ == "__main__":
    main()
