"""Duplicate and near-duplicate detection (data/duplicates.py): recall and false pairs on generated copies, then
CIFAR-10's test images that repeat a training image.

    python benchmarks/duplicates.py [--weather DIR] [--cifar DIR] [--pairs-png /tmp/cifar_duplicates.png]

1. Generated copies: photos (the weather folder, ../shared/data/weather-mwd.tar.gz; generated smooth images when it is
   absent) are the training split; the test split holds copies of some of them — byte-identical, re-encoded at JPEG
   quality 40, rescaled to 80% and 120%, cropped by up to 5% a side, colour-shifted — each in its photo's class, some
   exact copies in another class (label conflicts, across splits and within train), and the folder's own test photos,
   of which no copy was made (which must not pair, unless the data already repeats them: those pairs go to a PNG to
   judge by eye). Printed per kind: the share found. Run at the sizes imgclf decodes photos at: 224 (the pretrained
   default) and 64 (from scratch).
2. CIFAR-10 (../shared/data/cifar10-jpeg.tar.gz): how many test images have a training near-duplicate, the cost of
   `imgclf check` and of find_duplicates cold and cached, and PNGs of found pairs side by side to judge by eye.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TRANSFORMS = ("exact", "jpeg q40", "rescale 80%", "rescale 120%", "crop ≤5%", "colour shift")
UNRELATED = "test photos, no copy made (paired: a false pair, or a duplicate the data had already)"


def transform(path: Path, kind: str, rng: random.Random) -> bytes:
    """The bytes of a copy of the image at `path`, changed as `kind` says."""
    if kind == "exact":
        return path.read_bytes()
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = im.size
    if kind.startswith("rescale"):
        f = 0.8 if "80" in kind else 1.2
        im = im.resize((max(8, round(w * f)), max(8, round(h * f))), Image.LANCZOS)
    elif kind.startswith("crop"):
        cut = [rng.uniform(0, 0.05) for _ in range(4)]
        im = im.crop((round(w * cut[0]), round(h * cut[1]), w - round(w * cut[2]), h - round(h * cut[3])))
    elif kind == "colour shift":
        r, g, b = im.split()
        gains = (1.15, 0.95, 0.8)
        im = Image.merge("RGB", [c.point(lambda v, k=k: min(255, int(v * k + 12))) for c, k in zip((r, g, b), gains)])
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=40 if kind == "jpeg q40" else 90)
    return buf.getvalue()


def generated_photos(out: Path, n: int = 400, seed: int = 0) -> Path:
    """A stand-in for the weather folder: smooth random images (sums of random low-frequency waves), 4 classes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:96, 0:128] / 96.0
    for i in range(n):
        img = np.zeros((96, 128, 3))
        for _ in range(6):
            fy, fx, ph = [*rng.uniform(0.5, 4, 2).tolist(), rng.uniform(0, 6.3)]
            img += np.sin(2 * np.pi * (fy * yy + fx * xx) + ph)[..., None] * rng.uniform(0.2, 1, 3)
        img = ((img - img.min()) / (np.ptp(img) + 1e-9) * 255).astype(np.uint8)
        split = "test" if i % 5 == 0 else "train"
        target = out / split / f"c{i % 4}" / f"g{i:04d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(target, quality=92)
    return out


def build_bench_folder(photos: Path, out: Path, copies: int = 120, seed: int = 0) -> dict[str, list[str]]:
    """out/train: every training photo, plus some exact copies put into another class (conflicts within train);
    out/test: the transformed copies and the unrelated photos (photos/test). Returns test file → what it is."""
    rng = random.Random(seed)
    shutil.copytree(photos / "train", out / "train")
    shutil.copytree(photos / "test", out / "test")
    classes = sorted(p.name for p in (out / "train").iterdir() if p.is_dir())
    train = sorted((c, p) for c in classes for p in (photos / "train" / c).iterdir() if p.is_file())
    truth: dict[str, list[str]] = {UNRELATED: [f"{c}/{p.name}" for c in classes
                                               for p in (photos / "test" / c).iterdir() if p.is_file()]}
    for k, (cls, path) in enumerate(rng.sample(train, copies)):
        for kind in TRANSFORMS:
            name = f"{cls}/copy{k:03d}-{kind.split()[0]}-{kind.split()[-1].strip('%≤')}.jpg"
            (out / "test" / name).write_bytes(transform(path, kind, rng))
            truth.setdefault(kind, []).append(name)
        other = rng.choice([c for c in classes if c != cls])
        if k % 4 == 0:                       # the same photo under another class: in test, and within train
            (out / "test" / other / f"conflict{k:03d}.jpg").write_bytes(path.read_bytes())
            truth.setdefault("conflict (test)", []).append(f"{other}/conflict{k:03d}.jpg")
        elif k % 4 == 1:
            (out / "train" / other / f"conflict{k:03d}.jpg").write_bytes(path.read_bytes())
            truth.setdefault("conflict (train)", []).append(f"{other}/conflict{k:03d}.jpg")
    return truth


def measure_generated(folder: Path, truth: dict[str, list[str]], size: int, png: Path) -> list[tuple[str, int, int]]:
    """Per kind: (kind, found, of how many) at decode size `size`; the photos of the test split that are no copy
    and were paired anyway are drawn with their partners into `png`, to judge by eye."""
    from imgclf.data import load_dataset
    from imgclf.data.duplicates import find_duplicates
    from imgclf.report.checkpage import pair_strip

    ds = load_dataset(folder, image_size=size)
    f = find_duplicates(ds)
    paired = {p.file: p for p in f.pairs if p.split == "test" and p.kind in ("exact", "near")}
    conflicts = {(p.split, p.file) for p in f.of("conflict")}
    conflicts |= {(p.other_split, p.other_file) for p in f.of("conflict")}   # reported by the later of the two
    rows = []
    for kind, names in truth.items():
        if kind.startswith("conflict"):
            where = "train" if "train" in kind else "test"
            hit = sum((where, n) in conflicts for n in names)
        else:
            hit = sum(n in paired for n in names)
        rows.append((kind, hit, len(names)))
    false = [paired[n] for n in sorted(truth[UNRELATED]) if n in paired]
    if false:
        pair_strip(ds, false, cols=6).save(png)
        print(f"  {len(false)} photos of the test split paired with a training photo at {size} px: {png}")
    return rows


def generated_table(photos: Path, tmp: Path) -> None:
    folder = tmp / "bench"
    truth = build_bench_folder(photos, folder)
    pngs = {size: Path(tempfile.gettempdir()) / f"test_photo_pairs_{size}.png" for size in (224, 64)}
    results = {size: measure_generated(folder, truth, size, png) for size, png in pngs.items()}
    print("\n| kind | images | found at 224 px | found at 64 px |\n|---|---|---|---|")
    for k, (kind, hit, n) in enumerate(results[224]):
        hit64 = results[64][k][1]
        print(f"| {kind} | {n} | {hit / n:.1%} ({hit}) | {hit64 / n:.1%} ({hit64}) |")


def cifar_figures(folder: Path, tmp: Path, png: Path) -> None:
    """CIFAR-10: test images with a train near-duplicate, the check's cost cold and cached, and PNGs of pairs."""
    env = {**os.environ, "IMGCLF_CACHE_DIR": str(tmp / "cache")}
    for state in ("cold: empty cache, decodes the folder", "cached"):
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "imgclf", "check", "--data", str(folder), "--quiet"], env=env,
                           capture_output=True, text=True)
        print(f"  imgclf check, the whole command ({state}): {time.perf_counter() - t:.1f} s; {p.stdout.strip()}")
    child = ("import json,sys\nfrom imgclf.data import load_dataset\nfrom imgclf.data.duplicates import "
             "find_duplicates\nds=load_dataset(sys.argv[1])\nf=find_duplicates(ds)\n"
             "print(json.dumps({'s':f.seconds,'hashed':f.hashed,'counts':f.counts,"
             "'test':len(f.test_indices_repeating_train())}))")
    for part in (tmp / "cache").glob("*.hashes.npz"):
        part.unlink()
    runs = [json.loads(subprocess.run([sys.executable, "-c", child, str(folder)], env=env, capture_output=True,
                                      text=True, check=True).stdout.splitlines()[-1]) for _ in range(3)]
    cold, cached = runs[0], min(runs[1:], key=lambda r: r["s"])
    print(f"  find_duplicates: {cold['test']:,} of 10,000 test images repeat a training image (pairs: "
          f"{cold['counts']}); {cold['s']:.2f} s with no hashes kept ({cold['hashed']:,} images hashed), "
          f"{cached['s']:.2f} s with them")
    os.environ["IMGCLF_CACHE_DIR"] = env["IMGCLF_CACHE_DIR"]
    index_recall(folder)
    save_pairs_png(folder, png)


def index_recall(folder: Path) -> None:
    """The index (near_pairs) against an all-pairs search of test × train (a ±1 matrix product per hash, in chunks):
    the share of the test–train near pairs it finds."""
    import torch

    from imgclf.data import load_dataset
    from imgclf.data.duplicates import near_pairs, split_hashes
    from imgclf.data.imagehash import FINE_WORDS, is_near

    ds = load_dataset(folder)
    (train, test), _ = split_hashes([ds.train, ds.test])

    def signs(h: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.unpackbits(h.view(np.uint8), axis=1, bitorder="little").astype(np.float32) * 2 - 1)

    a, b = signs(test.perceptual), signs(train.perceptual)
    cut = FINE_WORDS * 64
    truth = set()
    t = time.perf_counter()
    for s in range(0, len(a), 500):
        fine = ((cut - a[s:s + 500, :cut] @ b[:, :cut].T) / 2).round().long().numpy()
        coarse = ((64 - a[s:s + 500, cut:] @ b[:, cut:].T) / 2).round().long().numpy()
        q, r = np.nonzero(is_near(fine, coarse))
        truth |= {(int(x), len(train) + s + int(y)) for x, y in zip(r, q)}
    brute = time.perf_counter() - t
    t = time.perf_counter()
    i, j, _ = near_pairs(np.concatenate([train.perceptual, test.perceptual]))
    fast = time.perf_counter() - t
    found = set(zip(i.tolist(), j.tolist())) & truth
    print(f"  the index finds {len(found) / len(truth):.1%} of the {len(truth):,} test–train pairs within the rule "
          f"that all pairs give ({len({y for _, y in found}) / len({y for _, y in truth}):.1%} of the test images "
          f"that have one), in {fast:.2f} s against {brute:.1f} s for all pairs (before the class and density rules)")


def save_pairs_png(folder: Path, png: Path, n: int = 8) -> None:
    """`n` near pairs drawn at random into `png`, and 48 more into a second file: to judge by eye."""
    from imgclf.data import load_dataset
    from imgclf.data.duplicates import find_duplicates
    from imgclf.report.checkpage import pair_strip

    ds = load_dataset(folder)
    near = find_duplicates(ds).of("near")
    rng = random.Random(0)
    sample = rng.sample(near, min(n + 48, len(near)))
    pair_strip(ds, sorted(sample[:n], key=lambda p: p.distance), scale=4).save(png)
    more = png.with_name(png.stem + "_sample48.png")
    pair_strip(ds, sample[n:], scale=3, cols=8).save(more)
    print(f"  {min(n, len(sample))} random near pairs (test left, train right) → {png}; 48 more → {more}")


def extract(archive: Path, tmp: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    return tmp


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weather", type=Path, help="the extracted weather-mwd folder (default: extract the archive)")
    p.add_argument("--cifar", type=Path, help="the extracted CIFAR-10 JPEG folder (default: extract the archive)")
    p.add_argument("--pairs-png", type=Path, default=Path(tempfile.gettempdir()) / "cifar_duplicates.png")
    p.add_argument("--skip-cifar", action="store_true")
    args = p.parse_args()
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True)
                .stdout.splitlines() if line.startswith("Model name")), platform.processor())
    print(f"CPU: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["IMGCLF_CACHE_DIR"] = str(tmp / "bench-cache")
        photos = args.weather
        if photos is None and (SHARED / "weather-mwd.tar.gz").is_file():
            photos = extract(SHARED / "weather-mwd.tar.gz", tmp / "weather") / "weather-mwd"
        if photos is None:
            print("weather-mwd not found: generated smooth images instead of photos")
            photos = generated_photos(tmp / "generated")
        print(f"\n1. generated copies of the photos in {photos}")
        generated_table(photos, tmp)
        if args.skip_cifar:
            return
        cifar = args.cifar
        if cifar is None:
            if not (SHARED / "cifar10-jpeg.tar.gz").is_file():
                print("CIFAR-10 JPEG archive not found: pass --cifar")
                return
            cifar = extract(SHARED / "cifar10-jpeg.tar.gz", tmp / "cifar")
        print("\n2. CIFAR-10")
        cifar_figures(cifar, tmp, args.pairs_png)


if __name__ == "__main__":
    main()
