"""Repeated images (data/duplicates.py, imagehash.py): generated copies found — byte-identical, re-encoded, rescaled,
cropped, colour-shifted — unrelated images not paired, label conflicts in and across splits, the index against an
all-pairs search, hashes kept beside the folder cache entry (reused, damage rebuilt, removed with the entry), and
`imgclf check` (table, --json, --strict, --html, --csv)."""

import io
import json
import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgclf.cli import main
from imgclf.data import cachedir, load_dataset
from imgclf.data.dupcache import clear_found
from imgclf.data.duplicates import CSV_COLUMNS, find_duplicates, near_pairs
from imgclf.data.imagehash import WORDS, distances, hash_images, is_near
from imgclf.data.split import Dataset, Split

CLASSES = ("alpha", "beta", "gamma")
TRANSFORMS = ("exact", "jpeg", "rescale80", "rescale120", "crop", "colour")


def _cache() -> Path:
    return Path(os.environ["IMGCLF_CACHE_DIR"])       # this test's own (conftest)


def smooth_image(rng: np.random.Generator, h: int = 72, w: int = 96) -> Image.Image:
    """A photo-like picture: a few random waves and blobs, different for every draw."""
    yy, xx = np.mgrid[0:h, 0:w] / float(h)
    img = np.zeros((h, w, 3))
    for _ in range(5):
        fy, fx = rng.uniform(0.3, 3.0, 2)
        img += np.sin(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 6.3))[..., None] * rng.uniform(0.2, 1.0, 3)
    for _ in range(3):
        cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 1.2), rng.uniform(0.08, 0.3)
        img += (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r)[..., None] * rng.uniform(-1.5, 1.5, 3)
    img = (img - img.min()) / (np.ptp(img) + 1e-9) * 255
    return Image.fromarray(img.astype(np.uint8))


def changed(path: Path, kind: str, rng: random.Random) -> bytes:
    """A copy of the image file at `path`: the same bytes, or re-encoded, rescaled, cropped or colour-shifted."""
    if kind == "exact":
        return path.read_bytes()
    im = Image.open(path).convert("RGB")
    w, h = im.size
    if kind.startswith("rescale"):
        f = int(kind[7:]) / 100
        im = im.resize((round(w * f), round(h * f)), Image.LANCZOS)
    elif kind == "crop":
        cut = [rng.uniform(0.0, 0.04) for _ in range(4)]
        im = im.crop((round(w * cut[0]), round(h * cut[1]), w - round(w * cut[2]), h - round(h * cut[3])))
    elif kind == "colour":
        im = Image.merge("RGB", [c.point(lambda v, g=g: min(255, int(v * g + 10)))
                                 for c, g in zip(im.split(), (1.15, 0.95, 0.85))])
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=40 if kind == "jpeg" else 92)
    return buf.getvalue()


def build_folder(root: Path, per_class: int = 14, seed: int = 0) -> dict[str, list[str]]:
    """root/train/<class>/: generated photos; root/test/<class>/: every transform of 4 of each class's photos,
    unrelated photos, two training photos' copies under another class (one re-encoded); and in train, one photo
    twice in its class and one under two classes. Returns what each listed file is (relative to its split folder)."""
    nrng, rng = np.random.default_rng(seed), random.Random(seed)
    truth: dict[str, list[str]] = {}
    for c in CLASSES:
        for split in ("train", "test"):
            (root / split / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            smooth_image(nrng).save(root / "train" / c / f"{i:02d}.jpg", quality=92)
        for i in range(3):
            smooth_image(nrng).save(root / "test" / c / f"new{i}.jpg", quality=92)
            truth.setdefault("unrelated", []).append(f"{c}/new{i}.jpg")
        for i in range(4):
            for kind in TRANSFORMS:
                name = f"{c}/copy{i}-{kind}.jpg"
                (root / "test" / name).write_bytes(changed(root / "train" / c / f"{i:02d}.jpg", kind, rng))
                truth.setdefault(kind, []).append(name)
    (root / "test" / "beta" / "alpha05.jpg").write_bytes((root / "train" / "alpha" / "05.jpg").read_bytes())
    (root / "test" / "gamma" / "beta09.jpg").write_bytes(changed(root / "train" / "beta" / "09.jpg", "jpeg", rng))
    (root / "train" / "alpha" / "06again.jpg").write_bytes((root / "train" / "alpha" / "06.jpg").read_bytes())
    (root / "train" / "gamma" / "beta07.jpg").write_bytes((root / "train" / "beta" / "07.jpg").read_bytes())
    return truth


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("dups") / "photos"
    return root, build_folder(root)


def test_generated_copies_are_found_and_unrelated_images_are_not(folder):
    root, truth = folder
    ds = load_dataset(root, image_size=64)
    f = find_duplicates(ds)
    repeats = {p.file: p for p in f.pairs if p.split == "test" and p.kind in ("exact", "near")}
    recall = {kind: np.mean([n in repeats for n in truth[kind]]) for kind in TRANSFORMS}
    assert recall["exact"] == recall["jpeg"] == recall["colour"] == 1.0, recall
    assert min(recall["rescale80"], recall["rescale120"], recall["crop"]) >= 0.8, recall
    assert all(repeats[n].kind == "exact" and repeats[n].distance == 0 for n in truth["exact"])
    for n in truth["jpeg"]:                            # paired with the photo it was made from
        assert repeats[n].other_split == "train" and repeats[n].other_file == n.split("/")[0] + "/0" + n[-10] + ".jpg"
    assert not [n for n in truth["unrelated"] if n in repeats]
    assert not [p for p in f.pairs if "new" in p.file or "new" in p.other_file]
    repeating = f.test_indices_repeating_train()
    assert sorted(ds.test.keys[i] for i in repeating) == sorted(repeats)


def test_label_conflicts_and_copies_within_a_split_are_found(folder):
    root, _ = folder
    f = find_duplicates(load_dataset(root, image_size=64))
    conflicts = {frozenset([(p.split, p.file), (p.other_split, p.other_file)]) for p in f.of("conflict")}
    assert frozenset([("test", "beta/alpha05.jpg"), ("train", "alpha/05.jpg")]) in conflicts   # across splits
    assert frozenset([("train", "beta/07.jpg"), ("train", "gamma/beta07.jpg")]) in conflicts   # within train
    assert frozenset([("test", "gamma/beta09.jpg"), ("train", "beta/09.jpg")]) in conflicts     # re-encoded
    assert len(conflicts) == 3
    within = [(p.file, p.other_file, p.distance) for p in f.of("exact_within")]
    assert ("alpha/06again.jpg", "alpha/06.jpg", 0) in within
    assert ("gamma/beta07.jpg", "beta/07.jpg", 0) in within                # identical, whatever the labels
    assert "label conflict" in " ".join(f.problems()) and "repeating" in " ".join(f.problems())


def test_the_index_finds_what_an_all_pairs_search_finds_and_nothing_beyond_the_rule():
    """Hashes with planted near pairs among random ones: every planted pair found, every pair found within the rule,
    and each at its true distance."""
    rng = np.random.default_rng(1)
    n = 3000
    h = rng.integers(0, 2**63, size=(n, WORDS), dtype=np.uint64)
    h[:, WORDS - 2] &= np.uint64((1 << 15) - 1)        # the fine hash's last word holds 15 bits, the coarse one 63
    h[:, WORDS - 1] &= np.uint64((1 << 63) - 1)
    planted = []
    for a in range(0, 300, 3):
        b = a + 1
        h[b] = h[a]
        for bit in rng.choice(143, rng.integers(0, 20), replace=False):   # up to 20 of the fine bits flipped
            h[b, bit // 64] ^= np.uint64(1 << int(bit % 64))
        planted.append((a, b))
    i, j, d = near_pairs(h)
    found = set(zip(i.tolist(), j.tolist()))
    assert set(planted) <= found
    fine, coarse = distances(h[i], h[j])
    assert is_near(fine, coarse).all() and (fine == d).all() and (i < j).all()


def test_exact_keys_tell_identical_pixels_and_perceptual_hashes_survive_brightness():
    rng = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 20, 20), dtype=torch.uint8, generator=rng)
    images[3] = images[1]
    h = hash_images(images)
    assert (h.exact[3] == h.exact[1]).all() and len({tuple(k) for k in h.exact.tolist()}) == 5
    brighter = (images.float() * 0.8 + 30).round().clamp(0, 255).to(torch.uint8)
    fine, coarse = distances(hash_images(brighter).perceptual, h.perceptual)
    assert (fine <= 8).all() and (coarse <= 4).all()            # an affine change of brightness: (nearly) no bit
    grey = hash_images(images[:, :1].contiguous())              # one channel works too, and any size
    assert grey.perceptual.shape == (6, WORDS)


def test_a_named_dataset_is_checked_without_files_and_dense_data_is_held_to_nearly_identical():
    """digits (8×8 handwriting): most images have a near partner, so near-duplicates must be nearly identical there."""
    ds = load_dataset("digits")
    f = find_duplicates(ds)
    assert f.dense > 0.25 and f.near_limit is not None
    assert all(p.distance <= f.near_limit for p in f.pairs)
    assert all(p.file.startswith("#") for p in f.pairs)
    planted = Split(torch.cat([ds.test.images, ds.train.images[:3]]), torch.cat([ds.test.labels, ds.train.labels[:3]]),
                    "test")
    f = find_duplicates(Dataset("digits+", ds.train, planted, ds.classes))
    exact = {(p.index, p.other_index) for p in f.of("exact")}
    assert {(len(ds.test) + k, k) for k in range(3)} <= exact


def test_hashes_are_kept_beside_the_cache_entry_reused_rebuilt_when_damaged_and_removed_with_it(folder, tmp_path):
    root = Path(shutil.copytree(folder[0], tmp_path / "photos"))       # edited below
    first = find_duplicates(load_dataset(root, image_size=64))
    parts = sorted(_cache().glob("*.hashes.npz"))
    assert first.hashed > 0 and len(parts) == 2                    # one per split folder's entry
    again = find_duplicates(load_dataset(root, image_size=64))
    assert again.hashed == 0 and again.pairs == first.pairs       # read, not computed
    clear_found()                                                  # what was found is kept too: look again
    parts[0].write_bytes(parts[0].read_bytes()[:-200])             # cut short: damaged
    with pytest.warns(UserWarning, match=r"damaged cache entry .*hashes\.npz.*computing it again"):
        rebuilt = find_duplicates(load_dataset(root, image_size=64))
    assert 0 < rebuilt.hashed < first.hashed and rebuilt.pairs == first.pairs
    (root / "train" / "alpha" / "13.jpg").unlink()                  # an edit: a new entry supersedes the old one
    load_dataset(root, image_size=64)
    assert len(list(_cache().glob("*.hashes.npz"))) == 1            # the old entry's part went with it
    orphan = _cache() / ("0" * 24 + ".hashes.npz")
    orphan.write_bytes(b"left by a removal that raced its writer")
    mine = _cache() / "notes.hashes.npz"                             # not a name the cache made
    mine.write_bytes(b"mine")
    assert orphan in [p for c in cachedir.prune(_cache()) for p in c.files]
    assert not orphan.exists() and mine.read_bytes() == b"mine"


def test_check_prints_tables_json_html_csv_and_strict_exits_3(folder, tmp_path, capsys):
    root, truth = folder
    assert main(["check", "--data", str(root), "--image-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "images per class and split" in out and "repeated images" in out and "label conflict" in out
    assert "alpha/06again.jpg" in out or "exact_within" in out
    assert main(["check", "--data", str(root), "--image-size", "64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["train"]["per_class"]["alpha"] == 15 and report["classes"] == list(CLASSES)
    assert report["duplicates"]["counts"]["conflict"] == 3
    assert report["duplicates"]["test_repeating_train"] >= len(truth["exact"]) + len(truth["jpeg"])
    assert report["files"]["modes"] == {"RGB": (14 * 3 + 2) + (3 * (3 + 4 * len(TRANSFORMS)) + 2)}
    assert set(report["duplicates"]["pairs"][0]) >= {"kind", "split", "file", "other_split", "other_file", "distance"}
    html, table = tmp_path / "check.html", tmp_path / "dups.csv"
    assert main(["check", "--data", str(root), "--image-size", "64", "--html", str(html), "--csv", str(table),
                 "--strict"]) == 3
    out, err = capsys.readouterr()
    assert err.startswith("error: --strict: 3 label conflicts") and len(err.strip().splitlines()) == 1
    page = html.read_text()
    assert page.count("<img src=\"data:image/png;base64,") >= 3 and "alpha05.jpg" in page
    rows = table.read_text().splitlines()
    assert rows[0] == ",".join(CSV_COLUMNS) and len(rows) == 1 + len(report["duplicates"]["pairs"])
    assert main(["check", "--data", str(root), "--image-size", "64", "--csv", str(table)]) == 3   # exists: --force
    assert "--force" in capsys.readouterr().err


def test_check_names_unreadable_and_misnamed_files_and_tiny_classes(tmp_path, capsys):
    rng = np.random.default_rng(3)
    for c, n in (("big", 40), ("small", 3)):
        (tmp_path / "f" / c).mkdir(parents=True)
        for i in range(n):
            smooth_image(rng, 40, 40).save(tmp_path / "f" / c / f"{i}.jpg", quality=90)
    smooth_image(rng, 40, 40).save(tmp_path / "f" / "big" / "really.jpg", format="PNG")   # a PNG named .jpg
    (tmp_path / "f" / "big" / "broken.png").write_bytes(b"not a png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # the loader's warnings go into the report, not out
        assert main(["check", "--data", str(tmp_path / "f"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tiny_classes"] == ["small"]
    assert [m["file"] for m in report["files"]["mismatched"]] == ["big/really.jpg"]
    assert any("broken.png" in w for w in report["loader_warnings"])
    assert report["files"]["unreadable"] == 0                 # the loader left the broken file out


@pytest.mark.slow
def test_a_run_leaves_test_images_repeating_training_images_out_and_eval_does_the_same(folder, tmp_path, capsys):
    """The planted copies: the header says how many test images repeat training images, duplicates.csv lists the
    pairs, the test figure leaves them out and says the figure with them, and `imgclf eval` of the checkpoint gives
    the same figure; --test-duplicates keep counts them and says the figure without."""
    root, _ = folder
    base = ["train", "--data", str(root), "--model", "fastcnn-tiny", "--image-size", "32", "--epochs", "1",
            "--no-plots", "--out", str(tmp_path)]
    assert main([*base, "--name", "ex"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "ex" / "summary.json").read_text())
    record, n_test = summary["test_duplicates"], 3 * (3 + 4 * len(TRANSFORMS)) + 2
    repeats = record["repeating_train"]
    assert repeats >= 0.8 * 3 * 4 * len(TRANSFORMS)                 # the copies, most crops included
    assert f"duplicates: {repeats} test images repeat training images" in " ".join(out.split())
    assert record["policy"] == "exclude" and summary["test_split_size"] == record["images"] == n_test - repeats
    assert summary["test_accuracy"] == record["accuracy_without_them"]
    assert f"without the {repeats} that repeat training images" in out
    rows = (tmp_path / "ex" / "duplicates.csv").read_text().splitlines()
    assert rows[0] == ",".join(CSV_COLUMNS)
    assert any(r.startswith("exact,test,alpha/copy0-exact.jpg,train,") for r in rows)
    assert main(["eval", str(tmp_path / "ex" / "best.pt"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["accuracy"] == summary["test_accuracy"] and again["n"] == summary["test_split_size"]
    assert again["test_duplicates"] == record
    assert main(["report", str(tmp_path / "ex")]) == 0
    html = " ".join((tmp_path / "ex" / "report.html").read_text().split())
    assert "<h2>Repeated images</h2>" in html and f"the {repeats} test images repeating training images" in html
    assert main([*base, "--name", "keep", "--test-duplicates", "keep"]) == 0
    kept = json.loads((tmp_path / "keep" / "summary.json").read_text())
    assert kept["test_split_size"] == n_test and kept["test_duplicates"]["policy"] == "keep"
    assert kept["test_accuracy"] == kept["test_duplicates"]["accuracy_with_them"]


def test_findings_are_kept_keyed_on_the_pixels_and_a_damaged_record_is_redone(tmp_path):
    """A second look at the same data reads what the first found (nothing hashed); other pixels or labels are
    another key; a damaged record is removed with a notice and the work done again; `imgclf cache --clear` empties
    the folder."""
    from imgclf.data.dupcache import duplicates_dir

    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 255, (40, 1, 16, 16), dtype=np.uint8))
    images[30] = images[3]                                                  # a test image that is a training image
    labels = torch.arange(40) % 2
    data = Dataset("gen", Split(images[:30], labels[:30], "train"), Split(images[30:], labels[30:], "test"),
                   ["a", "b"])
    first = find_duplicates(data)
    assert first.hashed == 40 and first.test_indices_repeating_train().tolist() == [0]
    again = find_duplicates(data)
    assert again.hashed == 0 and again.pairs == first.pairs
    other = Dataset("gen", data.train, Split(images[30:], 1 - labels[30:], "test"), ["a", "b"])
    assert find_duplicates(other).hashed == 40                              # other labels: another key
    [record] = [p for p in duplicates_dir().glob("*.json") if p.read_text().count('"exact"')][:1]
    record.write_text('{"key": "x", "found": [[1, 2]]}')
    with pytest.warns(UserWarning, match="damaged duplicates cache entry"):
        assert find_duplicates(data).pairs == first.pairs
    assert main(["cache", "--clear"]) == 0
    assert list(duplicates_dir().glob("*.json")) == []


def test_a_flat_folder_keeps_each_repeated_image_on_the_side_of_its_twin(tmp_path):
    """A folder without test/: the path-hash split puts a photo and its copies (byte copies, re-encoded,
    colour-shifted, across classes) on one side, so no copy is trained on while its twin is tested; every other
    photo keeps the side of its own name, and adding a photo moves no other."""
    from imgclf.data.split import stable_holdout

    nrng, rng = np.random.default_rng(1), random.Random(1)
    root = tmp_path / "flat"
    for c in CLASSES:
        (root / c).mkdir(parents=True)
        for i in range(20):
            smooth_image(nrng).save(root / c / f"{i:02d}.jpg", quality=92)
    twins = []
    for c in CLASSES:
        for i, kind in enumerate(("exact", "jpeg", "colour")):
            copy = f"{c}/zz-copy{i}.jpg"
            (root / copy).write_bytes(changed(root / c / f"{i:02d}.jpg", kind, rng))
            twins.append((f"{c}/{i:02d}.jpg", copy))
    (root / "beta" / "from-alpha.jpg").write_bytes((root / "alpha" / "05.jpg").read_bytes())   # under two classes
    twins.append(("alpha/05.jpg", "beta/from-alpha.jpg"))
    ds = load_dataset(root, image_size=32)
    side = {**{k: "train" for k in ds.train.keys}, **{k: "test" for k in ds.test.keys}}
    assert all(side[a] == side[b] for a, b in twins), [(a, b, side[a], side[b]) for a, b in twins]
    grouped = {k for pair in twins for k in pair}
    for k, where in side.items():
        if k not in grouped:
            own = "test" if len(stable_holdout([k], 0.2, 0, "test")[1]) else "train"
            assert where == own, k
    from imgclf.data import together

    def looked_again(split):
        raise AssertionError("the groups were found again, not read from the cache")

    with pytest.MonkeyPatch.context() as mp:      # the same folder again: the groups are read back
        mp.setattr(together, "_groups", looked_again)
        assert load_dataset(root, image_size=32).test.keys == ds.test.keys
    smooth_image(nrng).save(root / "gamma" / "new.jpg", quality=92)
    again = load_dataset(root, image_size=32)
    after = {**{k: "train" for k in again.train.keys}, **{k: "test" for k in again.test.keys}}
    assert all(after[k] == side[k] for k in side)
