"""Kill `imgclf train` with SIGKILL at random moments, resume each time, and check that the final weights are
bitwise equal to an uninterrupted run with the same seed (CPU).

    python benchmarks/kill_resume.py --kills 20

Prints each kill (when, what was on disk) and a final line `kills survived and resumed exactly: N/N`.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ARGS = ["--data", "digits", "--model", "fastcnn-tiny", "--batch-size", "32", "--val-split", "0", "--ema", "0.9",
        "--no-plots", "--save-every-steps", "7", "--threads", "1"]


def _cmd(*extra: str) -> list[str]:
    return [sys.executable, "-m", "imgclf", "train", *extra]


def reference(out: Path, epochs: int) -> dict:
    subprocess.run(_cmd(*ARGS, "--epochs", str(epochs), "--out", str(out), "--name", "ref"), check=True,
                   capture_output=True)
    return torch.load(out / "ref" / "last.pt", weights_only=True)


def killed_run(out: Path, epochs: int, kills: int, rng: random.Random, window: tuple[float, float],
               log=print) -> tuple[dict, int]:
    """Start a run, SIGKILL it `kills` times at random moments (resuming from last.pt when one exists), let the
    last resume finish. Returns the final checkpoint and how many kills actually landed on a live process."""
    run = out / "killed"
    landed = 0
    for i in range(kills + 1):
        last = run / "last.pt"
        if last.exists():
            cmd = _cmd("--resume", str(last), "--threads", "1")
        else:
            shutil.rmtree(run, ignore_errors=True)
            cmd = _cmd(*ARGS, "--epochs", str(epochs), "--out", str(out), "--name", "killed")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if i == kills:
            _, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"final resume failed: {err.decode()[-500:]}")
            break
        delay = rng.uniform(*window)
        try:
            proc.wait(timeout=delay)
            log(f"kill {i + 1}: run finished before the kill at {delay:.2f}s; restarting the chain")
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            landed += 1
            step = torch.load(last, weights_only=True)["global_step"] if last.exists() else None
            log(f"kill {i + 1}: SIGKILL after {delay:.2f}s; last.pt on disk at step {step}")
        if i < kills and proc.returncode == 0:   # finished: discard and start over so every kill interrupts
            shutil.rmtree(run, ignore_errors=True)
    return torch.load(run / "last.pt", weights_only=True), landed


def same_weights(a: dict, b: dict) -> bool:
    return a["global_step"] == b["global_step"] and all(
        torch.equal(a[part][k], b[part][k]) for part in ("model", "ema") for k in a[part])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t = time.time()
        ref = reference(out, args.epochs)
        ref_seconds = time.time() - t
        window = (0.5 * ref_seconds * 0.5, ref_seconds * 0.95)
        print(f"reference run: {ref_seconds:.1f}s, {ref['global_step']} steps; kills land {window[0]:.1f}-"
              f"{window[1]:.1f}s after each start")
        final, landed = killed_run(out, args.epochs, args.kills, rng, window)
        ok = same_weights(ref, final)
        print(f"kills that hit a live process: {landed}/{args.kills}")
        print(f"kills survived and resumed exactly: {landed if ok else 0}/{landed} "
              f"(final weights {'bitwise equal' if ok else 'DIFFERENT'} to the uninterrupted run)")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
