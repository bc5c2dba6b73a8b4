"""The test pass in fp32 against bf16 autocast (what a run on a CPU with native bf16 now tests in): speed side by
side in one process, and, given trained checkpoints, what the precision changes in their test figures.

    python benchmarks/test_pass_precision.py [--models fastcnn-tiny fastcnn-wide fastcnn] [--rounds 3]
        [--checkpoints runs/.../best.pt ...]

Speed: predict_logits over 2,048 random 3×32×32 images with airbench's six TTA views (the budget ladder's 32×32
rungs), channels_last, rounds interleaved so a drifting machine hits both precisions alike; img/s medians and the
ratio. Checkpoints: `imgclf.load(ckpt, precision=P).evaluate()` on their own test split in fp32 and amp-bf16, the
accuracy in each and how many test images change class.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import imgclf
from imgclf.data.batches import Normalizer
from imgclf.data.split import Split
from imgclf.engine.device import cpu_has_native_bf16
from imgclf.engine.evaluate import predict_logits
from imgclf.machine import cpu_description
from imgclf.models import build_model

PRECISIONS = {"fp32": None, "amp-bf16": torch.bfloat16}


def speed(name: str, rounds: int, n: int = 2048) -> dict[str, float]:
    """Test-pass img/s of model `name` in each precision (medians over interleaved rounds)."""
    torch.manual_seed(0)
    model = build_model(name, 3, 10, (32, 32)).to(memory_format=torch.channels_last).eval()
    split = Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8), torch.zeros(n, dtype=torch.int64))
    norm = Normalizer([0.5] * 3, [0.25] * 3, torch.device("cpu"), channels_last=True)
    views = dict(tta=True, tta_shift=1, tta_mirror=True)
    times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for dtype in PRECISIONS.values():   # warm-up: oneDNN builds its kernels on first use
        predict_logits(model, split.subset(torch.arange(256)), norm, torch.device("cpu"), **views,
                       autocast_dtype=dtype)
    for _ in range(rounds):
        for p, dtype in PRECISIONS.items():
            t0 = time.perf_counter()
            predict_logits(model, split, norm, torch.device("cpu"), **views, autocast_dtype=dtype)
            times[p].append(n / (time.perf_counter() - t0))
    return {p: statistics.median(v) for p, v in times.items()}


def agreement(ckpt: str) -> str:
    """A checkpoint's test accuracy in fp32 and in bf16, and the test images whose class differs."""
    out = {p: imgclf.load(ckpt, precision=p, device="cpu") for p in PRECISIONS}
    logits = {p: clf.split_logits("test")[1] for p, clf in out.items()}
    part = out["fp32"].split_logits("test")[0]
    acc = {p: float((v.argmax(1) == part.labels).double().mean()) for p, v in logits.items()}
    moved = int((logits["fp32"].argmax(1) != logits["amp-bf16"].argmax(1)).sum())
    return (f"| {ckpt} | {acc['fp32']:.2%} | {acc['amp-bf16']:.2%} | {moved} of {len(part.labels):,} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["fastcnn-tiny", "fastcnn-small", "fastcnn-wide", "fastcnn"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--checkpoints", nargs="*", default=[])
    args = ap.parse_args()
    if not cpu_has_native_bf16():
        raise SystemExit("this CPU has no native bf16: a run here tests in fp32, there is nothing to compare")
    cpu = cpu_description()
    print(f"CPU: {cpu.get('model')}; {torch.get_num_threads()} threads; six TTA views, 32×32, batch 256")
    print("| model | fp32 img/s | bf16 img/s | bf16 / fp32 |\n|---|---|---|---|")
    for name in args.models:
        s = speed(name, args.rounds)
        print(f"| {name} | {s['fp32']:,.0f} | {s['amp-bf16']:,.0f} | {s['amp-bf16'] / s['fp32']:.2f}× |", flush=True)
    if args.checkpoints:
        print("\n| checkpoint | test, fp32 | test, bf16 | test images whose class differs |\n|---|---|---|---|")
        for ckpt in args.checkpoints:
            print(agreement(ckpt), flush=True)


if __name__ == "__main__":
    main()
