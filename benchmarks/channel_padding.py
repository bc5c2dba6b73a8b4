"""Why TutorialNet pads conv1 from 6 to 8 channels on CPU: training and inference images/s of its forward
(padded) against the same network computed with the plain layers, interleaved rounds, medians.

    python benchmarks/channel_padding.py [--rounds 6] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from imgclf.models import build_model


def plain_forward(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The tutorial's forward with its own layers: conv1 has 6 channels."""
    x = m.pool(F.relu(m.conv1(x)))
    x = m.pool(F.relu(m.conv2(x)))
    return m.fc3(F.relu(m.fc2(F.relu(m.fc1(torch.flatten(x, 1))))))


def throughput(forward, batch_size: int, steps: int) -> tuple[float, float]:
    """(training img/s, inference img/s at batch 512) of `forward(model, x)` on a fresh tutorial-net."""
    torch.manual_seed(0)
    m = build_model("tutorial-net", 3, 10, (32, 32)).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    xs = [torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last) for _ in range(16)]
    y = torch.randint(0, 10, (batch_size,))

    def step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(m, xs[i % 16]), y).backward()
        opt.step()

    for i in range(10):
        step(i)
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    train = batch_size * steps / (time.perf_counter() - t)
    xi = torch.randn(512, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        forward(m, xi)
        t = time.perf_counter()
        for _ in range(20):
            forward(m, xi)
        infer = 512 * 20 / (time.perf_counter() - t)
    return train, infer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {"plain (6 channels)": [], "padded (imgclf)": []}
    for _ in range(args.rounds):
        runs["plain (6 channels)"].append(throughput(plain_forward, args.batch_size, 9600 // args.batch_size))
        runs["padded (imgclf)"].append(throughput(lambda m, x: m(x), args.batch_size, 9600 // args.batch_size))
    med = {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v)) for k, v in runs.items()}
    for k, (tr, inf) in med.items():
        print(f"{k:20s} train {tr:8,.0f} img/s (batch {args.batch_size})   inference {inf:8,.0f} img/s (batch 512)")
    (pt, pi), (qt, qi) = med.values()
    print(f"padded/plain: train {qt / pt:.2f}x, inference {qi / pi:.2f}x (medians of {args.rounds} interleaved rounds, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__})")


if __name__ == "__main__":
    main()
