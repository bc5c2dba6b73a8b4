"""Photo folders: from scratch against the pretrained EfficientNet-Lite0 default (linear probe, and probe +
fine-tuning), whole commands side by side, plus the network's images/s on this machine.

    python benchmarks/photo_pretrained.py --folder PHOTO_FOLDER [--sizes 128 160 224] [--finetune-size 160]
        [--finetune-epochs 3] [--skip-speed] [--seed 0]

Each variant is the real `imgclf train` command in its own process (start-up, decoding from the cache, the
probe's features computed — the feature cache is emptied before each — training, val and test passes, no plots),
timed by the wall clock. The folder is decoded at each size first and that time printed apart ("first decode").
Test figures are on the folder's test split, val figures on the val split that chose best.pt.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from imgclf.data import load_dataset
from imgclf.data.registry import cache_dir
from imgclf.models.efficientnet import efficientnet_lite0


def cpu_name() -> str:
    """The CPU's model name and its bf16/AVX flags (lscpu)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
        flags = next(line for line in out.splitlines() if line.startswith("Flags")).split()
        return f"{name} ({' '.join(f for f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16') if f in flags)})"
    except (OSError, StopIteration):
        return "unknown CPU"


def run_variant(folder: str, out: Path, name: str, flags: list[str], seed: int) -> dict:
    """One `imgclf train` command, its wall-clock seconds and summary.json."""
    shutil.rmtree(cache_dir() / "features", ignore_errors=True)
    cmd = [sys.executable, "-m", "imgclf", "train", "--data", folder, "--out", str(out), "--name", name,
           "--no-plots", "--quiet", "--seed", str(seed), *flags]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t
    summary = json.loads((out / name / "summary.json").read_text())
    return {"seconds": seconds, **summary}


def speed(sizes: list[int], seconds: float = 3.0) -> None:
    """Forward (eval) and forward+backward (train, SGD step) images/s of EfficientNet-Lite0, fp32 and bf16."""
    model = efficientnet_lite0(num_classes=10).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    for size in sizes:
        for dtype in (None, torch.bfloat16):
            rates = []
            for batch, train in ((8, False), (32, True)):
                x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
                model.train(train)
                n, t = 0, None   # the first pass (one-off allocations) is not timed
                while t is None or time.perf_counter() - t < seconds:
                    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None), \
                            torch.set_grad_enabled(train):
                        y = model(x).float().sum()
                    if train:
                        y.backward()
                        opt.step()
                        opt.zero_grad()
                    if t is None:
                        t = time.perf_counter()
                    else:
                        n += batch
                rates.append(n / (time.perf_counter() - t))
            print(f"  {size:4d} px {'bf16' if dtype else 'fp32'}: forward {rates[0]:6.0f} img/s (batch 8), "
                  f"forward+backward {rates[1]:5.0f} img/s (batch 32)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", required=True)
    p.add_argument("--sizes", nargs="+", type=int, default=[128, 160, 224])
    p.add_argument("--finetune-size", type=int, default=160)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-speed", action="store_true")
    args = p.parse_args()
    print(f"CPU: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for size in sorted({*args.sizes, args.finetune_size}):
        t = time.perf_counter()
        load_dataset(args.folder, image_size=size)
        print(f"first decode at {size} px (0 if cached): {time.perf_counter() - t:.1f} s")
    variants = [("scratch (--no-pretrained: the old default)", ["--no-pretrained"])]
    variants += [(f"linear probe {s} px (the default at 224)", ["--image-size", str(s)]) for s in args.sizes]
    variants.append((f"probe + {args.finetune_epochs} fine-tuning epochs at {args.finetune_size} px",
                     ["--image-size", str(args.finetune_size), "--epochs", str(args.finetune_epochs + 1)]))
    with tempfile.TemporaryDirectory() as out:
        for i, (what, flags) in enumerate(variants):
            r = run_variant(args.folder, Path(out), f"v{i}", flags, args.seed)
            val = f"{r['val_accuracy']:.2%}" if r.get("val_accuracy") is not None else "—"
            print(f"{what:52s} test {r['test_accuracy']:7.2%} (balanced {r['test_balanced_accuracy']:.2%})  "
                  f"val {val}  best epoch {r['best_epoch']}  whole command {r['seconds']:6.1f} s  "
                  f"({r['model']}, `imgclf train --data FOLDER {' '.join(flags)}`)", flush=True)
    if not args.skip_speed:
        print("EfficientNet-Lite0 on this machine:")
        speed(sorted({*args.sizes, args.finetune_size}))


if __name__ == "__main__":
    main()
