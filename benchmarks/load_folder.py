"""Open the CIFAR-10 JPEG folder twice: first with an empty cache (decode on all cores), then again (cache).

    python benchmarks/load_folder.py [--folder EXTRACTED_DIR]

Without --folder it extracts ../shared/data/cifar10-jpeg.tar.gz to a temporary folder first.
Each open runs in a fresh process, so the second figure includes nothing that was already in memory
except the OS page cache.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
CHILD = """
import json, sys, time
t0 = time.perf_counter()
from imgclf.data import load_dataset
t1 = time.perf_counter()
ds = load_dataset(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "images": len(ds.train) + len(ds.test)}))
"""


def open_once(folder: Path, cache: Path) -> dict:
    env = {"IMGCLF_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, env=env,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", type=Path)
    p.add_argument("--repeats", type=int, default=3, help="cached opens to take the median of")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            if not ARCHIVE.is_file():
                sys.exit(f"{ARCHIVE} not found: pass --folder with the extracted CIFAR-10 JPEG folder")
            folder = Path(tmp) / "cifar10-jpeg"
            with tarfile.open(ARCHIVE) as tar:
                tar.extractall(folder, filter="data")
            inner = [p for p in folder.iterdir() if p.is_dir()]
            folder = inner[0] if len(inner) == 1 and not (folder / "train").is_dir() else folder
        cache = Path(tmp) / "cache"
        first = open_once(folder, cache)
        again = sorted((open_once(folder, cache) for _ in range(args.repeats)), key=lambda r: r["open_s"])
        median = again[len(again) // 2]
        n = first["images"]
        print(f"images: {n:,} JPEG files in {folder}")
        print(f"first open (decode on all cores + write cache): {first['open_s']:.2f}s = "
              f"{n / first['open_s']:,.0f} img/s")
        print(f"second open (from cache), median of {args.repeats}: {median['open_s']:.2f}s "
              f"(+{median['import_s']:.2f}s importing imgclf/torch; whole process {median['process_s']:.2f}s)")
        print(f"ratio first/second open: {first['open_s'] / median['open_s']:.1f}x")


if __name__ == "__main__":
    main()
