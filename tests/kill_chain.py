"""SIGKILL `imgclf train` in a child process on progress, not on a clock: each kill waits until the run's last.pt
holds a step past a randomly chosen target, then kills at once (the child is mid-step somewhere after that save),
and the next process resumes from whatever last.pt survived. Used by tests/test_kill_resume.py and by
benchmarks/kill_resume.py (many more kills). Children see no GPU, so the bitwise comparison means the same on
every machine."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ARGS = ["--data", "digits", "--model", "fastcnn-tiny", "--batch-size", "32", "--val-split", "0", "--ema", "0.9",
        "--no-plots", "--save-every-steps", "7", "--threads", "1"]
STEPS_PER_EPOCH = 1437 // 32   # digits' 1,437 train images, full batches only
CPU_ONLY = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


def _cmd(*extra: str) -> list[str]:
    return [sys.executable, "-m", "imgclf", "train", *extra]


def reference(out: Path, epochs: int) -> dict:
    """An uninterrupted run with the same settings; its final last.pt."""
    subprocess.run(_cmd(*ARGS, "--epochs", str(epochs), "--out", str(out), "--name", "ref"), check=True,
                   capture_output=True, env=CPU_ONLY)
    return torch.load(out / "ref" / "last.pt", weights_only=True)


def saved_step(path: Path) -> int | None:
    """The global_step in a last.pt, or None while there is none (it is replaced atomically: never half-read)."""
    try:
        return int(torch.load(path, weights_only=True)["global_step"])
    except FileNotFoundError:
        return None


def _wait_for_step(proc: subprocess.Popen, last: Path, target: int) -> int | None:
    """Poll until last.pt holds a step >= target (returns it) or the process ends (returns None)."""
    seen_mtime = None
    while proc.poll() is None:
        try:
            mtime = last.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime is not None and mtime != seen_mtime:
            seen_mtime = mtime
            step = saved_step(last)
            if step is not None and step >= target:
                return step
        time.sleep(0.005)
    return None


def killed_run(out: Path, epochs: int, kills: int, rng: random.Random, log=print) -> tuple[dict, list[int]]:
    """Start a run, SIGKILL it `kills` times on progress, resuming from last.pt each time, and let the last resume
    finish. Returns the final checkpoint and the global step each resume started from."""
    run, total = out / "killed", epochs * STEPS_PER_EPOCH
    last = run / "last.pt"
    resumed_from: list[int] = []
    for i in range(kills + 1):
        start = saved_step(last) if last.exists() else None
        if start is None:
            shutil.rmtree(run, ignore_errors=True)
            cmd = _cmd(*ARGS, "--epochs", str(epochs), "--out", str(out), "--name", "killed")
        else:
            cmd = _cmd("--resume", str(last), "--threads", "1")
            resumed_from.append(start)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=CPU_ONLY)
        if i == kills:
            _, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"final resume failed: {err.decode()[-500:]}")
            break
        begin = start or 0
        target = rng.randint(begin + 1, max(begin + 1, begin + (total - begin) // 2))
        step = _wait_for_step(proc, last, target)
        if step is None:
            raise RuntimeError(f"run ended before last.pt reached step {target}: {proc.stderr.read().decode()[-500:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        log(f"kill {i + 1}: SIGKILL once last.pt held step {step} (target {target}); on disk after the kill: step "
            f"{saved_step(last)}")
    return torch.load(last, weights_only=True), resumed_from


def same_weights(a: dict, b: dict) -> bool:
    return a["global_step"] == b["global_step"] and all(
        torch.equal(a[part][k], b[part][k]) for part in ("model", "ema") for k in a[part])


# Kills in the middle of a file write: the child is killed as soon as one of imgclf's temporary files (written before
# the rename that replaces the real file; fileio.temporary_name) appears, so it dies with the write under way.
# A registered model carries a 32 MB buffer of ballast, so that each checkpoint write lasts long enough to be seen.
BALLAST_CHILD = """
import sys
import torch
from imgclf.cli import main
from imgclf.models import MODELS, register_model

def ballasted(**kw):
    model = MODELS["fastcnn-tiny"].builder(**kw)
    model.register_buffer("ballast", torch.zeros(8 << 20))
    return model

register_model("fastcnn-ballast", ballasted)
sys.exit(main(sys.argv[1:]))
"""
BALLAST_ARGS = ["--data", "digits", "--model", "fastcnn-ballast", "--batch-size", "64", "--threads", "1"]


def ballast_cmd(*args: str) -> list[str]:
    """`imgclf ARGS` in a child that knows the ballasted model."""
    return [sys.executable, "-c", BALLAST_CHILD, *args]


def temporaries(folder: Path, pattern: str = ".*.tmp*") -> list[Path]:
    """imgclf's temporary files below `folder` (see fileio.temporary_name)."""
    return sorted(folder.rglob(pattern)) if folder.exists() else []


def kill_mid_write(cmd: list[str], folder: Path, pattern: str, ready=lambda: True) -> list[Path] | None:
    """Start `cmd`; SIGKILL it the moment a temporary file matching `pattern` appears below `folder` while `ready()`
    holds. Returns the temporary files still there after the kill (empty: the write finished first), or None if the
    process ended without writing one."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=CPU_ONLY)
    try:
        while proc.poll() is None:
            if temporaries(folder, pattern) and ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return temporaries(folder, pattern)
            time.sleep(0.001)   # a polling interval: the kill itself waits on the file, never on a clock
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
