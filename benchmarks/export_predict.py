"""CPU inference images/s of `imgclf predict` with a checkpoint against the same model exported to ONNX (run by
onnxruntime): the same images, the same Classifier.predict code path (batch 256, imgclf's CPU default), one process,
interleaved rounds, medians. Two figures each: the whole predict (decode the image files, normalize, run, top-k)
and the model part alone (predict on the already-decoded uint8 tensor).

    python benchmarks/export_predict.py CHECKPOINT FOLDER [--rounds 5] [--limit N]

The ONNX file is exported with --dynamic-batch into a temporary folder (so both run batches of 256).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import imgclf
from imgclf.api import expand_image_paths
from imgclf.data.images import decode_image
from imgclf.export import export_model


def cpu_description() -> str:
    """lscpu's model name and whether the CPU has the AVX-512 BF16 / AVX2 flags."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown CPU (no lscpu)"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown").strip()
    flags = set(fields.get("Flags", "").split())
    marks = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in ("avx512_bf16", "avx2"))
    return f"{name} ({fields.get('CPU(s)', '?').strip()} CPUs; {marks})"


def timed(fn: Callable[[], object], n: int) -> float:
    """Images per second of one call of `fn` over `n` images."""
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("folder", help="image folder (walked), e.g. cifar10-jpeg/test")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    args = p.parse_args()
    load_before = os.getloadavg()[0]
    files = expand_image_paths([args.folder])
    files = files[: args.limit] if args.limit else files
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = export_model(args.checkpoint, "onnx", Path(tmp) / "model.onnx", dynamic_batch=True)
        clfs = {"checkpoint": imgclf.load(args.checkpoint, device="cpu"), "onnx": imgclf.load(onnx_file)}
        c, h, w = clfs["checkpoint"].image_shape
        images = torch.from_numpy(np.stack([decode_image(f, (h, w), "L" if c == 1 else "RGB") for f in files]))
        for clf in clfs.values():  # warm-up (first-call allocations, oneDNN/ORT kernel choice)
            clf.predict(images[:512])
        whole: dict[str, list[float]] = {k: [] for k in clfs}
        model: dict[str, list[float]] = {k: [] for k in clfs}
        for r in range(args.rounds):
            for name in (list(clfs) if r % 2 == 0 else list(reversed(clfs))):  # alternate who goes first
                clf = clfs[name]
                whole[name].append(timed(lambda clf=clf: clf.predict(files), len(files)))
                model[name].append(timed(lambda clf=clf: clf.predict(images), len(images)))
        ours, theirs = clfs["checkpoint"].predict(images), clfs["onnx"].predict(images)
        same = [a["class"] == b["class"] for a, b in zip(ours, theirs)]
    print(f"load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f} (a shared CPU)")
    print(f"CPU: {cpu_description()}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"onnxruntime {__import__('onnxruntime').__version__}")
    print(f"{len(files):,} images of {c}×{h}×{w} from {args.folder}; model {args.checkpoint}; batch 256; "
          f"medians of {args.rounds} interleaved rounds")
    for title, runs in (("predict on files (decode + model)", whole), ("model part (decoded uint8 tensor)", model)):
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"{title:36s} checkpoint {med['checkpoint']:10,.0f} img/s   onnx {med['onnx']:10,.0f} img/s   "
              f"onnx/checkpoint {med['onnx'] / med['checkpoint']:.2f}x")
    print(f"same top-1 class for {sum(same):,} of {len(same):,} images")


if __name__ == "__main__":
    main()
