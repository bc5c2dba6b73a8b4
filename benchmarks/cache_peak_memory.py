"""Peak memory of a first folder decode: the old way (every decoded image in a list, np.stack, np.save) against
imgclf's (decoded straight into a memory-mapped cache file), on the same generated folder, in one run.

    python benchmarks/cache_peak_memory.py [--count 1000] [--photo 1000] [--image-size 224]

Each way runs in a fresh process with an empty cache. Figures per way: the process's peak RSS (getrusage
ru_maxrss: exact, includes the memory map's file pages, which the kernel can write back and drop), its RSS after
imports (the baseline: torch and imgclf), and the peak of anonymous memory (RssAnon from /proc/self/status,
sampled every 2 ms: memory that cannot be dropped). The decode workers are separate processes, not counted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, threading, time
from pathlib import Path
import numpy as np
from imgclf.data import folder as F
from imgclf.fileio import atomic_write

way, root, cache, size = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0

peak_anon, done = [0], threading.Event()
def sample():
    while not done.is_set():
        peak_anon[0] = max(peak_anon[0], status("RssAnon"))
        time.sleep(0.002)

fl = F.scan_split(root)
base_rss, base_anon = status("VmRSS"), status("RssAnon")
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
if way == "old":      # the way a whole-list decode works: a list of every decoded image, np.stack, np.save
    results = []
    for _, chunk in F.iter_decoded(fl.files, (size, size), "crop"):
        results.extend(chunk)
    images = np.stack([r for r in results if not isinstance(r, str)])
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_write(cache / "old.images.npy") as f:
        np.save(f, images)
    n = len(images)
else:
    n = len(F.load_split_cached(fl, "train", (size, size), cache))
seconds = time.perf_counter() - t
done.set()
time.sleep(0.01)
print(json.dumps({"images": n, "seconds": seconds, "base_rss": base_rss, "base_anon": base_anon,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "peak_anon": peak_anon[0]}))
"""


def make_photos(folder: Path, count: int, side: int) -> None:
    """`count` JPEG photos of side×side in two classes: a smooth random colour field, shifted and tinted per photo
    (photo-like to the JPEG coder: it compresses as a photo does, unlike noise)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (side // 50, side // 50, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(small).resize((side, side), Image.BICUBIC), dtype=np.int16)
    for i in range(count):
        (folder / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        noise = rng.integers(-3, 4, base.shape, dtype=np.int16)
        img = np.roll(base, (7 * i, 13 * i), axis=(0, 1)) + rng.integers(-8, 9, 3, dtype=np.int16) + noise
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"c{i % 2}" / f"{i:05d}.jpg", quality=90)


def run(way: str, folder: Path, cache: Path, size: int) -> dict:
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run([sys.executable, "-c", CHILD, way, str(folder), str(cache), str(size)], check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=1000, help="photos to generate")
    p.add_argument("--photo", type=int, default=1000, help="their side in pixels")
    p.add_argument("--image-size", type=int, default=224, help="the size they are decoded to")
    args = p.parse_args()
    mib = 1 << 20
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        t = time.perf_counter()
        make_photos(folder, args.count, args.photo)
        print(f"{args.count} photos of {args.photo}×{args.photo} generated in {time.perf_counter() - t:.1f} s; "
              f"decoded at {args.image_size}×{args.image_size}: {args.count * 3 * args.image_size ** 2 / mib:.1f} MiB")
        res = {way: run(way, folder, Path(tmp) / f"cache-{way}", args.image_size) for way in ("old", "new")}
    print("way  images seconds  baseline RSS  peak RSS  above baseline  peak anonymous above baseline")
    for way, r in res.items():
        above, anon = (r["peak_rss"] - r["base_rss"]) / mib, (r["peak_anon"] - r["base_anon"]) / mib
        print(f"{way:4} {r['images']:6d} {r['seconds']:7.1f} {r['base_rss'] / mib:9.0f} MiB "
              f"{r['peak_rss'] / mib:5.0f} MiB {above:11.0f} MiB {anon:26.0f} MiB")
    old, new = res["old"], res["new"]
    ratio = (old["peak_rss"] - old["base_rss"]) / max(1, new["peak_rss"] - new["base_rss"])
    anon = (old["peak_anon"] - old["base_anon"]) / max(1, new["peak_anon"] - new["base_anon"])
    print(f"old/new: peak RSS {old['peak_rss'] / new['peak_rss']:.2f}x, above the baseline {ratio:.2f}x, "
          f"anonymous memory above the baseline {anon:.1f}x")


if __name__ == "__main__":
    main()
