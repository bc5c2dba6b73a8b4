"""Training-step speed of the fast CNNs in three precisions, measured side by side in one process:
fp32; bf16 autocast (what `--precision auto` picks on a CPU with native bf16; weights and BatchNorm fp32); and
the whole model in bf16 with BatchNorm in fp32 (airbench's way: weights, activations and gradients bf16).

    python benchmarks/bf16_modes.py [--models fastcnn-tiny fastcnn-small fastcnn] [--size 32] [--rounds 3]

Prints img/s per mode (median of rounds, rounds interleaved so a drifting machine hits every mode alike) and the
ratios against fp32 and against autocast. Speed only: accuracy of the whole-bf16 mode is the question a run
answers, and only if it is faster.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from imgclf.engine.device import cpu_has_native_bf16
from imgclf.models import build_model


def make(name: str, size: int, mode: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = build_model(name, 3, 10, (size, size)).to(memory_format=torch.channels_last)
    if mode == "whole-bf16":
        model = model.to(torch.bfloat16)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.float()
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)


def steps_per_second(model: nn.Module, opt: torch.optim.Optimizer, mode: str, x: torch.Tensor, y: torch.Tensor,
                     n: int) -> float:
    if mode == "whole-bf16":
        x = x.to(torch.bfloat16)

    def step() -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=mode == "autocast"):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["fastcnn-tiny", "fastcnn-small"])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    print(f"native bf16: {cpu_has_native_bf16()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    x = torch.randn(args.batch_size, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,))
    modes = ("fp32", "autocast", "whole-bf16")
    for name in args.models:
        built = {m: make(name, args.size, m) for m in modes}
        rates: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(args.rounds):
            for m in modes:
                rates[m].append(steps_per_second(*built[m], m, x, y, args.steps) * args.batch_size)
        med = {m: statistics.median(r) for m, r in rates.items()}
        print(f"{name} {args.size}px batch {args.batch_size}: " + ", ".join(f"{m} {med[m]:,.0f} img/s" for m in modes)
              + f"; autocast/fp32 {med['autocast'] / med['fp32']:.2f}, whole-bf16/fp32 "
              f"{med['whole-bf16'] / med['fp32']:.2f}, whole-bf16/autocast {med['whole-bf16'] / med['autocast']:.2f}")


if __name__ == "__main__":
    main()
