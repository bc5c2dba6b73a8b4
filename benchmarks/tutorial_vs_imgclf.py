"""The PyTorch CIFAR-10 tutorial loop as the tutorial runs it vs `imgclf train --model tutorial-net`, same
machine, same run of this script, on the CIFAR-10 JPEG folder.

    python benchmarks/tutorial_vs_imgclf.py --folder CIFAR10_JPEG_DIR [--imgclf-args "..."]

The tutorial side: the JPEGs decoded once, untimed, into one uint8 array per split (what torchvision's CIFAR10
holds), ToTensor + Normalize((0.5,)*3, (0.5,)*3) per sample (written out by hand: torchvision cannot be imported on
our machines), DataLoader(batch 4, shuffle, 2 workers), the tutorial's Net, SGD(lr 0.001, momentum 0.9), 2 epochs
with the running-loss print, then the test accuracy. The imgclf side: the whole `imgclf train` command in a fresh
process, dataset cache warm (one untimed run first), testing included, --runs times (the median is the figure: wall
times on our VMs drift by ±15%). Prints both wall times, accuracies and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_sizes import cpu_name
from tutorial_reference import Net


class InMemoryCIFAR(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 is: the whole split in memory as one uint8 N×32×32×3 array and a label list,
    ToTensor + Normalize applied per sample in __getitem__ (written out: torchvision cannot be imported here)."""

    def __init__(self, data: np.ndarray, targets: list[int]):
        self.data, self.targets = data, targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        x = torch.from_numpy(self.data[i]).permute(2, 0, 1).float().div(255)    # transforms.ToTensor()
        return (x - 0.5) / 0.5, self.targets[i]             # transforms.Normalize((0.5,)*3, (0.5,)*3)


def decode_split(root: Path) -> InMemoryCIFAR:
    """Decode a JPEG class folder once, before any timing (the tutorial's dataset holds decoded pixels)."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    items = [(f, i) for i, c in enumerate(classes) for f in sorted((root / c).iterdir())]
    data = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.uint8) for f, _ in items])
    return InMemoryCIFAR(data, [label for _, label in items])


class JpegFolder(torch.utils.data.Dataset):
    """The other variant: each JPEG decoded per sample inside the loop (NOT what the tutorial does)."""

    def __init__(self, root: Path):
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.items = [(str(f), i) for i, c in enumerate(self.classes) for f in sorted((root / c).iterdir())]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
        return (x - 0.5) / 0.5, label


def tutorial(folder: Path, jpeg_per_sample: bool = False) -> tuple[float, float]:
    """The tutorial's loop: 2 epochs, batch 4, 2 workers, then the test accuracy; (seconds, accuracy)."""
    if jpeg_per_sample:
        train_set, test_set = JpegFolder(folder / "train"), JpegFolder(folder / "test")
    else:
        train_set, test_set = decode_split(folder / "train"), decode_split(folder / "test")   # untimed, as the
    t = time.perf_counter()                                           # tutorial's dataset is loaded before it
    torch.manual_seed(0)
    trainloader = torch.utils.data.DataLoader(train_set, batch_size=4, shuffle=True, num_workers=2)
    testloader = torch.utils.data.DataLoader(test_set, batch_size=4, shuffle=False, num_workers=2)
    net = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    for epoch in range(2):
        running_loss = 0.0
        for i, (inputs, labels) in enumerate(trainloader, 0):
            optimizer.zero_grad()
            loss = criterion(net(inputs), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            if i % 2000 == 1999:
                print(f"[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 2000:.3f}", flush=True)
                running_loss = 0.0
    correct = total = 0
    with torch.no_grad():
        for images, labels in testloader:
            correct += (net(images).argmax(1) == labels).sum().item()
            total += labels.size(0)
    return time.perf_counter() - t, correct / total


def imgclf_runs(folder: Path, extra: list[str], out: Path, runs: int) -> list[tuple[float, dict]]:
    cmd = [sys.executable, "-m", "imgclf", "train", "--data", str(folder), "--model", "tutorial-net",
           "--out", str(out), "--no-plots", *extra]
    subprocess.run(cmd, check=True, capture_output=True)                     # warm the dataset cache
    return [timed_train(cmd) for _ in range(runs)]


def timed_train(cmd: list[str]) -> tuple[float, dict]:
    """Run an `imgclf train` command line; its wall time and the summary.json of the run folder it printed."""
    t = time.perf_counter()
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    run_dir = r.stdout.strip().splitlines()[-1].split("run folder: ")[-1]
    return wall, json.loads((Path(run_dir) / "summary.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", type=Path, required=True)
    p.add_argument("--imgclf-args", default="", help="extra flags for imgclf train, e.g. '--epochs 2'")
    p.add_argument("--runs", type=int, default=5, help="timed imgclf runs (the median is reported)")
    p.add_argument("--skip-tutorial", type=float, help="use this many seconds for the tutorial instead of running it")
    p.add_argument("--jpeg-per-sample", action="store_true",
                   help="also time the variant that decodes each JPEG inside the loop (not the tutorial's way)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours = imgclf_runs(args.folder, shlex.split(args.imgclf_args), Path(tmp), args.runs)
        if args.skip_tutorial:
            tut, tut_acc = args.skip_tutorial, float("nan")
        else:
            tut, tut_acc = tutorial(args.folder)
        jpeg = tutorial(args.folder, jpeg_per_sample=True) if args.jpeg_per_sample else None
    walls = [w for w, _ in ours]
    wall = statistics.median(walls)
    accs = sorted({round(s["test_accuracy"], 6) for _, s in ours})
    print(f"CPU: {cpu_name()}; torch {torch.__version__}")
    print(f"tutorial loop as written (uint8 arrays in memory, per-sample ToTensor + Normalize, 2 workers, batch 4, "
          f"2 epochs): {tut:.1f}s, test accuracy {tut_acc:.2%}")
    if jpeg:
        print(f"variant decoding each JPEG inside the loop (not the tutorial's way): {jpeg[0]:.1f}s, "
              f"{jpeg[1]:.2%} ({jpeg[0] / wall:.1f}x)")
    print(f"imgclf train --model tutorial-net {args.imgclf_args}: median {wall:.2f}s for the whole command over "
          f"{len(walls)} runs ({', '.join(f'{w:.2f}' for w in walls)}; train "
          f"{statistics.median(s['train_seconds'] for _, s in ours):.1f}s), test accuracy "
          f"{', '.join(f'{a:.2%}' for a in accs)} (test split)")
    print(f"speed-up: {tut / wall:.1f}x median (runs: {', '.join(f'{tut / w:.1f}' for w in walls)}; "
          f"target 20x at >= 54%)")


if __name__ == "__main__":
    main()
