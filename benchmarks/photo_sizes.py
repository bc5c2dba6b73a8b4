"""Training speed of the default photo model by image size on this machine: what `--image-size` costs.

    python benchmarks/photo_sizes.py --folder PHOTO_FOLDER [--sizes 64 96 128 224] [--seconds 8]

For each size: the run imgclf builds for the folder at that size (photo profile: its model, batch size,
random-resized crop, jitter, the precision --precision auto picks here), timed on the real batch pipeline
(gather, augment, normalize, step) for about --seconds. Prints images/s and the seconds an epoch of 1,000 photos
takes, with the CPU's name and whether it has native bf16.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time

import torch

from imgclf.engine.setup import build_run
from imgclf.engine.step import set_lr, train_step


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
        flags = next(line for line in out.splitlines() if line.startswith("Flags"))
        return f"{name} ({'avx512_bf16' if 'avx512_bf16' in flags else 'avx2' if 'avx2' in flags else 'no avx2'})"
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def images_per_second(folder: str, size: int, seconds: float) -> tuple[float, str, str]:
    run = build_run({"data": folder, "image_size": size, "val_split": 0.0})
    run.model.train()
    set_lr(run.opt, run.lr(0))
    n, t, epoch = 0, None, 0
    while True:
        for x, y in run.batches.epoch(epoch):
            train_step(run.step_model, x, y, run.opt, run.prec, run.cfg.label_smoothing, run.class_weights)
            if t is None:          # the first step pays one-time set-up
                t = time.perf_counter()
                continue
            n += len(y)
            if time.perf_counter() - t > seconds:
                return n / (time.perf_counter() - t), run.cfg.model, run.prec.name
        epoch += 1


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", required=True)
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 96, 128, 224])
    p.add_argument("--seconds", type=float, default=8.0)
    args = p.parse_args()
    print(f"CPU: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for size in args.sizes:
        rate, model, precision = images_per_second(args.folder, size, args.seconds)
        print(f"{size:4d} px: {model}, {precision}: {rate:7,.0f} training img/s; an epoch of 1,000 photos "
              f"{1000 / rate:6.1f}s", flush=True)


if __name__ == "__main__":
    main()
