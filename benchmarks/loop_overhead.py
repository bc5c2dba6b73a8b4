"""How much does imgclf's training loop add to a bare forward/backward/optimizer step, and does testing run at
the model's full inference speed?

    python benchmarks/loop_overhead.py [--data FOLDER_OR_NAME] [--model fastcnn-small] [--batch-size 256]
                                       [--image-size 24] [--epochs 3] [--rounds 3]

Each round, in this process: (1) `imgclf.train` for --epochs epochs (shuffling, augmentation, normalization,
lr schedule, metrics, checkpoint each epoch, then the test pass); (2) the bare step, timed for as long as an
epoch, on one pre-built, pre-normalized batch; (3) bare inference (eval, inference mode) on one pre-built test
batch of the size testing uses, with the weights the test pass used. Rounds interleave (1)-(3) so that the
machine's drift (±15% on our VM) hits both sides alike; the figures are medians over rounds. Without --data,
a CIFAR-shaped dataset (10,000 random images, official python format) is generated in a temporary folder.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import imgclf
from imgclf.engine.setup import build_run
from imgclf.engine.step import train_step


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


class Bare:
    """The same model, optimizer and precision as `imgclf train` builds, stepped on pre-built tensors."""

    def __init__(self, settings: dict) -> None:
        run = build_run(settings)   # exactly what `imgclf train` builds for these settings
        self.device, self.prec, self.model, self.opt = run.device, run.prec, run.model, run.opt
        b = run.cfg.batch_size
        data = run.data
        self.x, self.y = run.norm(data.train.images[:b].to(self.device)), data.train.labels[:b].to(self.device)
        test_batch = 1024 if self.device.type == "cuda" else 256  # what evaluate.predict_logits uses
        self.x_test = run.norm(data.test.images[:test_batch].to(self.device))
        self.smoothing = run.cfg.label_smoothing

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def train_rate(self, seconds: float) -> float:
        """images/s of model(x) → loss → backward → step, timed for about `seconds`."""
        self.model.train()

        def step() -> None:
            train_step(self.model, self.x, self.y, self.opt, self.prec, self.smoothing)

        return _timed(step, len(self.x), seconds, self._sync)

    @torch.inference_mode()
    def infer_rate(self, seconds: float) -> float:
        """images/s of the eval-mode forward pass alone."""
        self.model.eval()

        def step() -> None:
            with self.prec.autocast(self.device):
                self.model(self.x_test)

        return _timed(step, len(self.x_test), seconds, self._sync)


def _timed(step, batch: int, seconds: float, sync) -> float:
    for _ in range(3):
        step()
    sync()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        step()
        n += batch
    sync()
    return n / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data")
    p.add_argument("--data-dir")
    p.add_argument("--model", default="fastcnn-small")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--image-size", type=int, help="train at this resolution (as the fast-1m/-5m recipes do: 24)")
    args = p.parse_args()
    loop, bare, test, infer = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        data, data_dir = args.data, args.data_dir
        if data is None:
            data, data_dir = "cifar10", str(synthetic_cifar(Path(tmp)))
        # augmentation, smoothing, TTA: whatever the dataset profile and model defaults give, as a user gets
        settings = {"data": data, "data_dir": data_dir, "model": args.model, "batch_size": args.batch_size,
                    "device": args.device, "val_split": 0.0, "epochs": args.epochs, "image_size": args.image_size}
        bare_side = Bare(settings)
        for r in range(args.rounds):
            summary = imgclf.train(settings | {"plots": False, "out": str(Path(tmp) / "runs")}, quiet=True)
            last = imgclf.checkpoint.load_checkpoint(Path(summary["run_dir"]) / "last.pt")
            history = last["history"]
            bare_side.model.load_state_dict(last["model"])  # time inference on the weights the test pass used
            rows = history[1:] or history  # the first epoch also pays one-time set-up (allocations, primitives)
            loop.append(statistics.median(r["images_per_second"] for r in rows))
            passes = 2 if summary["tta"] else 1  # flip TTA (on in the rgb32 profile) runs every image twice
            test.append(passes * summary["test_split_size"] / summary["test_seconds"])
            epoch_s = statistics.median(r["seconds"] for r in rows)
            bare.append(bare_side.train_rate(epoch_s))
            infer.append(bare_side.infer_rate(min(epoch_s, 5.0)))
            print(f"round {r + 1}: loop {loop[-1]:,.0f}, bare {bare[-1]:,.0f}, test pass {test[-1]:,.0f}, "
                  f"bare inference {infer[-1]:,.0f} img/s", flush=True)
    med = statistics.median
    aug = {k: last["config"][k] for k in ("crop_pad", "flip", "cutout", "label_smoothing", "tta")}
    print(f"model {args.model}, batch {args.batch_size}, image size {args.image_size or 'native'}, {aug}, "
          f"device {summary['device']}, torch {torch.__version__}, {args.rounds} rounds (medians)")
    print(f"bare forward/backward/step on one pre-built batch: {med(bare):,.0f} img/s")
    epochs = "epoch 1" if args.epochs == 1 else f"median of epochs 2..{args.epochs}"
    print(f"imgclf train epochs ({epochs}):   {med(loop):,.0f} img/s")
    paired = [a / b for a, b in zip(loop, bare)]
    # Each round's loop and bare figures are seconds apart, the rounds minutes apart: the per-round (paired)
    # ratio cancels the VM's drift better than a ratio of medians taken at different times.
    print(f"ratio loop/bare: {med(paired):.3f} median of per-round ratios ({', '.join(f'{r:.2f}' for r in paired)}); "
          f"ratio of medians {med(loop) / med(bare):.3f} (target >= 0.90)")
    tpaired = [a / b for a, b in zip(test, infer)]
    print(f"test pass ({summary['test_split_size']:,} images{', x2 for flip TTA' if summary['tta'] else ''}, metrics "
          f"included): {med(test):,.0f} img/s; bare inference {med(infer):,.0f} img/s; ratio {med(tpaired):.3f} "
          f"median of per-round ratios ({', '.join(f'{r:.2f}' for r in tpaired)}), ratio of medians "
          f"{med(test) / med(infer):.3f}")

if __name__ == "__main__":
    main()
