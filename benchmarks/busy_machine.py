"""The default thread count on a busy machine: `imgclf train` with no --threads against --threads 1..N, side by
side in one run of this script, with a CPU-bound competing process on every core (and once on a quiet machine).
With --late S, once more with the competing processes starting S seconds into each command (load that arrives
mid-run, which the run's thread watch must notice: engine/threads.py), on a longer MNIST run.

    python benchmarks/busy_machine.py [--mnist ../shared/data/mnist] [--rounds 2] [--late 10 --only-late]

Each command is the whole `imgclf train` in a fresh process (start-up, data, training, test); the commands of a
round run one after another in an order that rotates between rounds, and the figure per setting is its median wall
time. Prints, per workload and load, the wall time of each setting and the default's ratio to the best --threads.
Run it on an otherwise idle machine: its own competitors are the load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_sizes import cpu_name

SPIN = "while True: pass"


def workloads(mnist: Path | None) -> dict[str, list[str]]:
    """The commands timed: the 8×8 digits (small steps: many parallel regions a second) and MNIST."""
    out = {"digits, 3 epochs": ["--data", "digits", "--epochs", "3"]}
    if mnist is not None and (mnist / "train-images-idx3-ubyte.gz").is_file():
        out["mnist, 300 steps"] = ["--data", "mnist", "--data-dir", str(mnist), "--steps", "300", "--no-download"]
    return out


def timed(args: list[str], out: Path, late: float | None = None, spinners: int = 0) -> float:
    """Wall seconds of one whole `imgclf train`; with `late`, `spinners` competing processes start that many seconds
    into it and stop when it ends."""
    t = time.perf_counter()
    run = subprocess.Popen([sys.executable, "-m", "imgclf", "train", *args, "--no-plots", "--out", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    started: list[subprocess.Popen] = []
    try:
        if late is not None:
            try:
                run.wait(timeout=late)
            except subprocess.TimeoutExpired:
                started = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(spinners)]
        if run.wait() != 0:
            raise SystemExit(f"imgclf train {' '.join(args)} failed")
    finally:
        for p in started:
            p.kill()
            p.wait()
    return time.perf_counter() - t


def measure(args: list[str], cpus: int, rounds: int, out: Path, late: float | None = None) -> dict[str, float]:
    """Median wall seconds of the default and of each --threads k, interleaved over `rounds` rounds (with `late`:
    a competing process per CPU arriving that many seconds into each)."""
    settings = {"default": [], **{f"--threads {k}": ["--threads", str(k)] for k in range(1, cpus + 1)}}
    times: dict[str, list[float]] = {name: [] for name in settings}
    names = list(settings)
    timed(args, out)   # untimed: the dataset's cache
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(timed(args + settings[name], out, late, cpus))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mnist", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--late", type=float, help="also: the competing load arrives this many seconds into each run")
    ap.add_argument("--only-late", action="store_true", help="only the --late measurement")
    opts = ap.parse_args()
    cpus = len(os.sched_getaffinity(0))
    print(f"CPU: {cpu_name()}; {cpus} usable CPUs; {opts.rounds} rounds, median wall seconds per command")
    with tempfile.TemporaryDirectory() as tmp:
        if opts.late is not None:
            late_load(opts, cpus, Path(tmp))
        for name, args in ({} if opts.only_late else workloads(opts.mnist)).items():
            for load in ("quiet", "busy"):
                n = cpus if load == "busy" else 0
                spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]
                try:
                    time.sleep(0.5 if spinners else 0)
                    got = measure(args, cpus, opts.rounds, Path(tmp))
                finally:
                    for p in spinners:
                        p.kill()
                        p.wait()
                best = min(v for k, v in got.items() if k != "default")
                cells = ", ".join(f"{k} {v:.1f} s" for k, v in got.items())
                print(f"{name}, {load} ({len(spinners)} competing processes): {cells}; default / best "
                      f"{got['default'] / best:.2f}×")


def late_load(opts: argparse.Namespace, cpus: int, out: Path) -> None:
    """MNIST for 3,000 steps (~7 epochs) with a competing process per CPU arriving `opts.late` seconds in."""
    args = ["--data", "mnist", "--data-dir", str(opts.mnist), "--steps", "3000", "--no-download"]
    got = measure(args, cpus, opts.rounds, out, opts.late)
    best = min(v for k, v in got.items() if k != "default")
    cells = ", ".join(f"{k} {v:.1f} s" for k, v in got.items())
    print(f"mnist, 3000 steps, {cpus} competing processes from {opts.late:g} s in: {cells}; default / best "
          f"{got['default'] / best:.2f}×", flush=True)


if __name__ == "__main__":
    main()
