"""What verifying the folder cache's checksums costs each cached open: CRC-32 of every 4 MiB block of each
cached images.npy (from the page cache, as on a second open), median of 5, and a whole cached open with and without
verifying them (alternated, median of 9 each).

    python benchmarks/cache_checksum.py --folder EXTRACTED_CIFAR10_JPEG_DIR

The first open decodes the folder into a fresh cache (skipped when --cache already holds it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from imgclf.data import foldercache
from imgclf.data.folder import load_folder


def median_seconds(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folder", type=Path, required=True)
    p.add_argument("--cache", type=Path, help="a cache folder to reuse (default: a fresh temporary one)")
    p.add_argument("--repeats", type=int, default=9, help="cached opens each way (median)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        load_folder(args.folder, cache)
        print(f"first open (or an existing cache): {time.perf_counter() - t:.2f} s")
        total = 0.0
        for path in sorted(cache.glob("*.images.npy")):
            images = np.load(path, mmap_mode="r")
            s = median_seconds(lambda images=images: foldercache.block_crcs(images))
            total += s
            print(f"{path.name}: {images.nbytes / 1e6:.1f} MB, crc32 of every block {s * 1000:.1f} ms "
                  f"= {images.nbytes / s / 1e9:.2f} GB/s")
        real, times = foldercache._verify_blocks, {True: [], False: []}
        for i in range(2 * args.repeats):      # alternated, so a busy moment of the machine hits both alike
            verify = i % 2 == 0
            foldercache._verify_blocks = real if verify else (lambda images, crcs: None)
            times[verify].append(median_seconds(lambda: load_folder(args.folder, cache), 1))
        foldercache._verify_blocks = real
        opened, unverified = statistics.median(times[True]), statistics.median(times[False])
        print(f"checksums {total * 1000:.0f} ms; cached open (load_folder, in-process) {opened:.3f} s verified, "
              f"{unverified:.3f} s without: +{(opened - unverified) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
