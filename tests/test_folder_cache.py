"""The decoded-folder cache (data/foldercache.py): what invalidates it, damage found and rebuilt, decoding straight
into a memory-mapped file (skips, mixed channels and sizes, a full disk), and a first decode killed at any moment."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, make_image_folder
from PIL import Image

from imgclf.cli import main
from imgclf.data import cachedir, foldercache, load_dataset
from imgclf.data import folder as folder_mod
from imgclf.data.images import decode_image
from imgclf.errors import DataError


def _cache() -> Path:
    return Path(os.environ["IMGCLF_CACHE_DIR"])       # this test's own (conftest)


def _temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name) if folder.is_dir() else []


def _no_decoding(monkeypatch) -> None:
    monkeypatch.setattr(folder_mod, "iter_decoded", lambda *a, **k: pytest.fail("decoded again despite the cache"))


def _pixels(ds, key: str):
    split = ds.train if key in ds.train.keys else ds.test
    return split.images[split.keys.index(key)].numpy()


@pytest.mark.parametrize("how", ["rewritten in place", "renamed over"])
def test_a_same_size_replacement_with_its_mtime_restored_is_decoded_again(tmp_path, how):
    """Size and mtime alone would keep the old pixels; the ctime (in place) and the inode (renamed) do not."""
    root = make_image_folder(tmp_path / "imgs", per_class=5, ext=".bmp")   # BMP: the byte size is fixed by h×w
    target = root / "circle" / "000.bmp"
    load_dataset(root)
    before = target.stat()
    new = tmp_path / "new.bmp"
    Image.fromarray(np.full((16, 16, 3), 123, np.uint8)).save(new)
    if how == "rewritten in place":
        target.write_bytes(new.read_bytes())
    else:
        os.replace(new, target)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert (_pixels(load_dataset(root), "circle/000.bmp") == 123).all()


@pytest.mark.parametrize("part", ["images", "labels"])
def test_a_flipped_byte_in_the_cache_is_found_removed_and_rebuilt(tmp_path, monkeypatch, part):
    root = make_image_folder(tmp_path / "imgs", per_class=6)
    first = load_dataset(root)
    [entry] = _cache().glob(f"*.{part}.npy")
    data = bytearray(entry.read_bytes())
    data[-7] ^= 0x10                 # in the data, past the header (labels: the last label's second byte)
    entry.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = load_dataset(root)
    [notice] = [str(w.message) for w in caught if "damaged cache entry" in str(w.message)]
    assert "decoding again" in notice and "\n" not in notice
    assert ("checksum mismatch" if part == "images" else "labels do not match") in notice
    assert np.array_equal(again.train.images.numpy(), first.train.images.numpy())
    _no_decoding(monkeypatch)                                             # rebuilt: the next run trusts it again
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        third = load_dataset(root)
    assert not [w for w in caught if "damaged" in str(w.message)]
    assert np.array_equal(third.train.images.numpy(), first.train.images.numpy())


def test_a_large_cache_checks_its_first_and_last_blocks_and_a_random_sample(monkeypatch):
    """Above FULL_CHECK_BYTES reading every block on each open would stream the whole folder from disk: the
    first and last blocks are always checked (truncation, a torn tail), the others by random sample."""
    monkeypatch.setattr(foldercache, "BLOCK", 1024)
    monkeypatch.setattr(foldercache, "FULL_CHECK_BYTES", 4096)
    monkeypatch.setattr(foldercache, "SAMPLED_BLOCKS", 0)
    images = np.random.default_rng(0).integers(0, 256, (10, 1, 32, 32), dtype=np.uint8)   # 10 blocks
    crcs = foldercache.block_crcs(images)
    foldercache._verify_blocks(images, crcs)
    tail, middle = images.copy(), images.copy()
    tail.reshape(-1)[-1] ^= 1
    middle.reshape(-1)[5 * 1024] ^= 1
    with pytest.raises(ValueError, match="checksum mismatch in bytes 9,216–10,240"):
        foldercache._verify_blocks(tail, crcs)
    foldercache._verify_blocks(middle, crcs)                     # not sampled on this open
    monkeypatch.setattr(foldercache, "SAMPLED_BLOCKS", 10)
    with pytest.raises(ValueError, match="bytes 5,120–6,144"):
        foldercache._verify_blocks(middle, crcs)


def _damage_notices(load) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load()
    return result, [str(w.message) for w in caught if "damaged cache entry" in str(w.message)]


@pytest.mark.parametrize("field, value", [("skipped", 5), ("skipped", [3]), ("kept", [2, 1]), ("kept", [-1]),
                                          ("shape", "big"), ("crc32", None), (None, [1, 2])])
def test_a_meta_json_with_a_field_of_the_wrong_kind_is_a_damaged_entry(tmp_path, monkeypatch, field, value):
    """Valid JSON is not a valid record: a number where the list of skipped files goes is damage like a cut file."""
    root = make_image_folder(tmp_path / "imgs", per_class=6)
    first = load_dataset(root)
    [meta] = _cache().glob("*.meta.json")
    record = json.loads(meta.read_text())
    meta.write_text(json.dumps(value if field is None else {**record, field: value}))
    again, [notice] = _damage_notices(lambda: load_dataset(root))
    assert "decoding again" in notice and "\n" not in notice and (field is None or repr(field) in notice)
    assert np.array_equal(again.train.images.numpy(), first.train.images.numpy())
    assert json.loads(meta.read_text()) == record                          # rebuilt as it was
    _no_decoding(monkeypatch)
    assert not _damage_notices(lambda: load_dataset(root))[1]


@pytest.mark.parametrize("record", ['{"size": "big"}', '{"size": 16}', '{"size": 16, "median": 16, "cap": 64, '
                                    '"widths": [16], "heights": [16, 20]}', "[16]", "\xff\x00garbage"])
def test_a_damaged_size_choice_is_removed_and_measured_again(tmp_path, record):
    root = make_image_folder(tmp_path / "imgs", per_class=6)                # 16×16 images and one 20×20
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "circle" / "big.png")
    first = load_dataset(root)
    [choice] = _cache().glob("*.size.json")
    kept = choice.read_text()
    choice.write_bytes(record.encode("latin-1"))
    again, [notice] = _damage_notices(lambda: load_dataset(root))
    assert "size.json" in notice and "measuring the image sizes again" in notice and "\n" not in notice
    assert again.shape == first.shape and again.notes == first.notes
    assert np.array_equal(again.train.images.numpy(), first.train.images.numpy())
    assert choice.read_text() == kept                                        # written again, as it was


@pytest.mark.parametrize("gray", ["circle", "square"])     # circle: grayscale first (the array is widened to RGB)
def test_grayscale_and_colour_images_are_cached_as_rgb(tmp_path, gray):
    root = make_image_folder(tmp_path / "imgs", per_class=4)
    for f in (root / gray).iterdir():
        Image.open(f).convert("L").save(f)
    fl = folder_mod.scan_split(root)
    split = folder_mod.load_split_cached(fl, "train", None, tmp_path / "c")
    assert tuple(split.images.shape) == (8, 3, 16, 16)
    for image, f in zip(split.images.numpy(), fl.files):
        assert np.array_equal(image, decode_image(f, mode="RGB"))
    assert _temporary_files(tmp_path / "c") == []
    again = folder_mod.load_split_cached(fl, "train", None, tmp_path / "c")    # its checksums hold
    assert np.array_equal(again.images.numpy(), split.images.numpy())


def test_unreadable_files_leave_no_gap_in_the_cache_file(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=5)
    (root / "circle" / "001.png").write_bytes(b"junk")
    (root / "square" / "004.png").write_bytes(b"")
    fl = folder_mod.scan_split(root)
    with pytest.warns(UserWarning, match="skipped"):
        split = folder_mod.load_split_cached(fl, "train", None, tmp_path / "c")
    assert len(split) == 8 and "circle/001.png" not in split.keys and "square/004.png" not in split.keys
    for image, key in zip(split.images.numpy(), split.keys):
        assert np.array_equal(image, decode_image(root / key))
    [cached] = (tmp_path / "c").glob("*.images.npy")
    on_disk = np.load(cached, mmap_mode="r")
    assert on_disk.shape == (8, 3, 16, 16) and cached.stat().st_size == on_disk.offset + on_disk.nbytes
    assert _temporary_files(tmp_path / "c") == []


def test_images_of_two_sizes_and_no_size_are_the_same_clear_error(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=3)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "square" / "big.png")
    with pytest.raises(DataError, match=r"imgs: images differ in size \(16×16 e\.g\. \S+circle/000\.png; 20×20 "
                                        r"e\.g\. \S+square/big\.png\); pass --image-size N to resize them all"):
        folder_mod.load_split_cached(folder_mod.scan_split(root), "train", None, tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []                    # its temporary file removed


def test_a_full_disk_decodes_into_memory_with_one_warning(tmp_path, monkeypatch):
    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    root = make_image_folder(tmp_path / "imgs", per_class=4)
    fl = folder_mod.scan_split(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        split = folder_mod.load_split_cached(fl, "train", None, tmp_path / "c")
    notices = [str(w.message) for w in caught if "cannot write the image cache" in str(w.message)]
    assert len(notices) == 1 and "No space left on device" in notices[0] and "training from memory" in notices[0]
    assert len(split) == 8 and list((tmp_path / "c").iterdir()) == []


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    except OSError:
        return []


def _wait_gone(pids: list[int]) -> list[int]:
    """The pids still running (not zombies) once they stop, or after a minute: a safety net, not a timing window."""
    def running(p):
        try:
            return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    deadline = time.time() + 60
    while any(map(running, pids)) and time.time() < deadline:
        time.sleep(0.05)
    return [p for p in pids if running(p)]


# A first decode that SIGKILLs itself at a chosen point (no wall-clock timing): after the third decoded chunk
# (workers busy, the temporary file half written), or before/after the n-th rename into the cache (1: images,
# 2: labels, 3: meta.json). It first writes its children's pids where the test can read them.
KILLED_CHILD = r"""
import os, signal, sys
from pathlib import Path
root, point, pids = sys.argv[1:4]
from imgclf.data import folder

def die():
    me = os.getpid()
    Path(pids).write_text(" ".join((t / "children").read_text() for t in Path(f"/proc/{me}/task").iterdir()))
    os.kill(me, signal.SIGKILL)

if point == "chunk-3":
    decode = folder.iter_decoded
    def iter_decoded(*a, **k):
        for n, item in enumerate(decode(*a, **k), 1):
            if n == 3:
                die()
            yield item
    folder.iter_decoded = iter_decoded
else:
    when, nth, calls, rename = point.split("-")[0], int(point.split("-")[1]), [0], os.replace
    def replace(src, dst, *a, **k):
        calls[0] += 1
        if when == "before" and calls[0] == nth:
            die()
        rename(src, dst, *a, **k)
        if when == "after" and calls[0] == nth:
            die()
    os.replace = replace
from imgclf.data import load_dataset
load_dataset(root, image_size=20)
"""


@pytest.fixture(scope="module")
def kill_folder(tmp_path_factory):
    """1,000 small images (4 decode chunks: the pool is used) and their pixels from an undisturbed decode."""
    base = tmp_path_factory.mktemp("kill")
    root = make_image_folder(base / "imgs", per_class=500, size=20)
    ds = folder_mod.load_folder(root, base / "reference-cache", (20, 20))
    return root, ds


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the decode workers")
@pytest.mark.parametrize("point", ["chunk-3", "before-1", "after-1", "before-2", "before-3", "after-3"])
@pytest.mark.slow
def test_a_first_decode_killed_at_any_point_is_rebuilt_or_reused(tmp_path, monkeypatch, kill_folder, point):
    root, reference = kill_folder
    cache, pids = tmp_path / "c", tmp_path / "pids"
    monkeypatch.setenv("IMGCLF_CACHE_DIR", str(cache))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", KILLED_CHILD, str(root), point, str(pids)], env=env)
    assert proc.returncode == -signal.SIGKILL
    workers = [int(p) for p in pids.read_text().split()]
    if point == "chunk-3" and (os.cpu_count() or 1) > 1:
        assert workers, "the decode pool was not running when killed"
    assert _wait_gone(workers) == [], "decode workers outlived their parent"
    if point == "after-3":                    # meta.json was renamed into place: the entry is complete
        _no_decoding(monkeypatch)
    ds = load_dataset(root, image_size=20)
    for name in ("train", "test"):
        assert np.array_equal(ds.split(name).images.numpy(), reference.split(name).images.numpy())
        assert ds.split(name).keys == reference.split(name).keys
    assert _temporary_files(cache) == [] and len(list(cache.glob("*.meta.json"))) == 1
    _no_decoding(monkeypatch)
    assert np.array_equal(load_dataset(root, image_size=20).train.images.numpy(), reference.train.images.numpy())


def _complete(cache: Path) -> dict[str, tuple]:
    return {c.key: (c.folder, json.dumps(c.variant)) for c in cachedir.entries(cache) if c.complete}


def test_an_edited_folder_s_new_cache_entry_removes_its_older_versions_and_nothing_else(tmp_path):
    """Every edit gives a folder a new key: the entry written for the folder as it is now supersedes the older
    versions at the same size; another folder's entry and the same folder's entry at another size stay."""
    root = make_image_folder(tmp_path / "imgs", per_class=5)
    other = make_image_folder(tmp_path / "other", per_class=5)
    for folder, size in ((root, None), (other, None), (root, 8)):
        load_dataset(folder, image_size=size)
    first = _complete(_cache())
    assert sorted(first.values()) == sorted([(str(root.resolve()), "null"), (str(other.resolve()), "null"),
                                             (str(root.resolve()), json.dumps([[8, 8], "crop"]))])
    (root / "circle" / "000.png").unlink()
    ds = load_dataset(root)
    assert len(ds.train) + len(ds.test) == 9
    now = _complete(_cache())
    old = next(k for k, v in first.items() if v == (str(root.resolve()), "null"))
    assert old not in now and len(now) == 3
    assert {k: v for k, v in first.items() if k != old}.items() <= now.items()
    assert not [p for p in _cache().iterdir() if p.name.startswith(old)]
    choices = [c for c in cachedir.entries(_cache())
               if c.folder == str(root.resolve()) and (c.variant or [None])[0] == "auto"]
    assert len(choices) == 1                       # the size choice of the older version went too


def test_prune_removes_killed_decodes_after_an_hour_old_formats_and_with_the_flag_gone_folders(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "imgs", per_class=5)
    gone = make_image_folder(tmp_path / "gone", per_class=5)
    load_dataset(root)
    load_dataset(gone)
    cache = _cache()
    np.save(cache / "dead00000000000000000000.images.npy", np.zeros((4, 3, 8, 8), np.uint8))  # no meta.json
    np.save(cache / "0d0f0000000000000000000f.images.npy", np.zeros((4, 3, 8, 8), np.uint8))
    np.save(cache / "0d0f0000000000000000000f.labels.npy", np.zeros(4, np.int64))
    (cache / "0d0f0000000000000000000f.meta.json").write_text(json.dumps({"kept": None, "skipped": [],
                                                                          "shape": [4, 3, 8, 8]}))   # v3: no crc32
    shutil.rmtree(gone)
    assert [c.key for c in cachedir.prune(cache)] == ["0d0f0000000000000000000f"]   # the killed one is too young
    removed = cachedir.prune(cache, now=time.time() + cachedir.STALE_SECONDS + 60, missing_folders=True)
    assert sorted(c.folder or c.key for c in removed) == [str(gone.resolve())] * 2 + ["dead00000000000000000000"]
    assert list(_complete(cache).values()) == [(str(root.resolve()), "null")]
    _no_decoding(monkeypatch)   # the folder that is still there opens from its entry
    load_dataset(root)


def test_the_cache_command_lists_prunes_and_clears(tmp_path, capsys):
    root = make_image_folder(tmp_path / "imgs", per_class=5)
    gone = make_image_folder(tmp_path / "gone", per_class=6)
    load_dataset(root)
    load_dataset(gone)
    shutil.rmtree(gone)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(root.resolve()) in out and "10 × 3×16×16" in out and "size choice" in out
    assert out.count("folder gone") == 2 and "4 entries" in out        # gone's images and its size choice
    assert main(["cache", "--prune"]) == 0
    assert capsys.readouterr().out.startswith("removed 2 cache entries")
    assert list(_complete(_cache()).values()) == [(str(root.resolve()), "null")]
    assert main(["cache", "--clear"]) == 0 and list(_cache().iterdir()) == []
    with pytest.raises(SystemExit) as e:
        main(["cache", "--prune", "--clear"])
    assert e.value.code == 2


@pytest.mark.slow
def test_a_reader_that_goes_away_ends_the_output_quietly_and_a_training_run_still_finishes(tmp_path):
    """`imgclf cache | head`, `imgclf train | head`: a closed pipe is no internal error; a plain print stops the
    command with exit 141 (its work is done by then), rich's tables and a training run go on silently to the end."""
    def run(*args: str) -> subprocess.CompletedProcess:
        read, write = os.pipe()
        os.close(read)
        try:
            return subprocess.run([sys.executable, "-m", "imgclf", *args], stdout=write, stderr=subprocess.PIPE,
                                  text=True, cwd=ROOT, timeout=300)
        finally:
            os.close(write)

    assert (run("cache").returncode, run("cache").stderr) == (141, "")
    assert (run("models").returncode, run("models").stderr) == (0, "")
    p = run("train", "--epochs", "2", "--no-plots", "--out", str(tmp_path), "--name", "piped")
    assert (p.returncode, p.stderr) == (0, "")
    summary = json.loads((tmp_path / "piped" / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and (tmp_path / "piped" / "best.pt").is_file()


def test_the_cache_touches_only_files_it_named(tmp_path, monkeypatch):
    """$IMGCLF_CACHE_DIR pointed at a folder that holds the user's own files named like cache parts, and an old
    hidden temporary file: decoding, --prune and --clear leave every one of them as it was."""
    import os

    from imgclf.cli import main

    cache = tmp_path / "shared-folder"
    cache.mkdir()
    monkeypatch.setenv("IMGCLF_CACHE_DIR", str(cache))
    mine = {"scan.labels.npy": b"labels", "scan.images.npy": b"images", "notes.meta.json": b"{}",
            ".draft.txt.tmp999999": b"draft"}
    for name, data in mine.items():
        (cache / name).write_bytes(data)
        os.utime(cache / name, (1, 1))                        # old: a stale entry's age
    root = make_image_folder(tmp_path / "imgs", per_class=6)
    load_dataset(root)
    assert main(["cache", "--prune"]) == 0 and main(["cache", "--clear"]) == 0
    assert {n: (cache / n).read_bytes() for n in mine} == mine


def test_a_broken_npy_header_in_the_cache_is_damage_not_an_internal_error(tmp_path):
    """A header numpy cannot parse raised TokenError through the cache reader (exit 1 on every run)."""
    root = make_image_folder(tmp_path / "imgs", per_class=6)
    first = load_dataset(root)
    images = next(_cache().glob("*.images.npy"))
    data = images.read_bytes()
    images.write_bytes(data.replace(b"), }", b" }  ", 1))
    with pytest.warns(UserWarning, match="damaged cache entry"):
        again = load_dataset(root)
    assert np.array_equal(again.train.images.numpy(), first.train.images.numpy())
