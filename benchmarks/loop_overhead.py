"""How much does imgclf's training loop add to a bare forward/backward/optimizer step?

    python benchmarks/loop_overhead.py [--data FOLDER_OR_NAME] [--model fastcnn-small] [--batch-size 256]

Both run in this process on the same machine: (1) the bare step on one pre-built, pre-normalized batch,
(2) epochs of `imgclf.train` (shuffling, augmentation, normalization, lr schedule, metrics, progress,
checkpoint each epoch). Prints images/s of both and the ratio (target ≥ 0.90). Without --data, a
CIFAR-shaped dataset (10,000 random images, official python format) is generated in a temporary folder.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import imgclf
from imgclf.config import resolve
from imgclf.data import load_dataset
from imgclf.data.batches import Normalizer
from imgclf.engine.setup import pick_device, pick_precision
from imgclf.engine.train import make_model, make_optimizer, normalization

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def synthetic_cifar(root: Path, n: int = 10_000) -> Path:
    from imgclf.data.cifar import write_cifar_batch

    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        write_cifar_batch(folder / name, rng.integers(0, 256, (n // 5, 3, 32, 32)), rng.integers(0, 10, n // 5))
    write_cifar_batch(folder / "test_batch", rng.integers(0, 256, (1000, 3, 32, 32)), rng.integers(0, 10, 1000))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    return root


def bare_steps(settings: dict, steps: int, repeats: int = 3) -> float:
    """images/s of model(x) → loss → backward → step on one fixed batch (median of `repeats` timings)."""
    data = load_dataset(settings["data"], settings.get("data_dir"), quiet=True)
    cfg = resolve(settings, data.name, data.shape)
    device = pick_device(cfg.device)
    prec = pick_precision(cfg, device)
    mean, std = normalization(cfg, data)
    model = make_model(cfg, data, mean, std, device, prec.channels_last)
    opt = make_optimizer(cfg, model)
    norm = Normalizer(mean, std, device, channels_last=prec.channels_last)
    x, y = norm(data.train.images[: cfg.batch_size].to(device)), data.train.labels[: cfg.batch_size].to(device)
    model.train()

    def step():
        with prec.autocast(device):
            loss = F.cross_entropy(model(x).float(), y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(steps * cfg.batch_size / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data")
    p.add_argument("--data-dir")
    p.add_argument("--model", default="fastcnn-small")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, data_dir = args.data, args.data_dir
        if data is None:
            data, data_dir = "cifar10", str(synthetic_cifar(Path(tmp)))
        settings = {"data": data, "data_dir": data_dir, "model": args.model, "batch_size": args.batch_size,
                    "device": args.device, "val_split": 0.0, "epochs": args.epochs, "crop_pad": 2,
                    "flip": "alternate"}
        summary = imgclf.train(settings | {"plots": False, "out": str(Path(tmp) / "runs")}, quiet=True)
        history = imgclf.engine.checkpoint.load_checkpoint(Path(summary["run_dir"]) / "last.pt")["history"]
        loop_rate = statistics.median(r["images_per_second"] for r in history[1:] or history)
        steps = max(10, int(history[-1]["images_per_second"] * history[-1]["seconds"] / args.batch_size) // 3)
        bare_rate = bare_steps(settings, steps)
    print(f"model {args.model}, batch {args.batch_size}, device {summary['device']}, torch {torch.__version__}")
    print(f"bare forward/backward/step on one pre-built batch: {bare_rate:,.0f} img/s")
    print(f"imgclf train epochs (median of epochs 2..{args.epochs}):   {loop_rate:,.0f} img/s")
    print(f"ratio loop/bare: {loop_rate / bare_rate:.3f} (target >= 0.90)")
    print(f"test pass: {summary['test_split_size']:,} images in {summary['test_seconds']:.2f}s = "
          f"{summary['test_split_size'] / summary['test_seconds']:,.0f} img/s (inference mode, batch 1024)")


if __name__ == "__main__":
    main()
