"""Image folders: real CIFAR-10 JPEGs, generated images in every mode, the cache, and every bad input."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_folder
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imgclf.data import folder as folder_mod
from imgclf.data import load_dataset
from imgclf.data.images import decode_image
from imgclf.errors import DataError


def test_real_cifar_jpeg_folder(cifar_jpeg_subset):
    ds = load_dataset(cifar_jpeg_subset)
    assert ds.shape == (3, 32, 32) and len(ds.train) == 300 and len(ds.test) == 100
    assert ds.classes[:3] == ["airplane", "automobile", "bird"]
    assert np.bincount(ds.train.labels.numpy()).tolist() == [30] * 10
    first = sorted((cifar_jpeg_subset / "train" / "airplane").iterdir())[0]
    assert np.array_equal(ds.train.images[0].numpy(), np.asarray(Image.open(first)).transpose(2, 0, 1))


def test_second_open_uses_the_cache(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "imgs")
    first = load_dataset(root)
    monkeypatch.setattr(folder_mod, "iter_decoded", lambda *a, **k: pytest.fail("decoded again despite the cache"))
    second = load_dataset(root)
    assert np.array_equal(first.train.images.numpy(), second.train.images.numpy())


def test_cache_is_invalidated_when_a_file_changes(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=5)
    load_dataset(root, test_split=0.2)
    Image.fromarray(np.full((16, 16, 3), 7, np.uint8)).save(root / "square" / "new.png")
    ds = load_dataset(root, test_split=0.2)
    assert len(ds.train) + len(ds.test) == 11 and "square/new.png" in ds.train.keys + ds.test.keys


def test_flat_folder_holds_out_a_fixed_test_split(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=40)
    a, b = load_dataset(root, test_split=0.3, seed=1), load_dataset(root, test_split=0.3, seed=1)
    assert 12 <= len(a.test) <= 36 and set(np.bincount(a.test.labels.numpy()).tolist()) != {0}   # about 30%
    assert np.array_equal(a.test.images.numpy(), b.test.images.numpy()) and a.test.keys == b.test.keys
    assert load_dataset(root, test_split=0.3, seed=2).test.keys != a.test.keys                       # seeded


def test_adding_or_removing_files_never_moves_another_between_splits(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=30)
    before = load_dataset(root, val_split=0.2)
    sides = {k: s for s in ("train", "val", "test") for k in before.split(s).keys}
    make_image_folder(tmp_path / "more", per_class=12, seed=5)
    for c in ("circle", "square"):
        for f in (tmp_path / "more" / c).iterdir():
            f.rename(root / c / f"new-{f.name}")
        sorted((root / c).iterdir())[3].unlink()
    after = load_dataset(root, val_split=0.2)
    for split in ("train", "val", "test"):
        for k in after.split(split).keys:
            assert sides.get(k, split) == split, (k, sides.get(k), split)    # old files keep their side


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "I;16"])
@pytest.mark.parametrize("ext", [".png", ".bmp", ".gif", ".webp", ".jpg"])
def test_every_mode_and_format_decodes(tmp_path, mode, ext):
    if (ext == ".jpg" and mode in ("RGBA", "P", "LA", "I;16")) \
            or (ext in (".bmp", ".gif", ".webp") and mode == "I;16") \
            or (ext == ".bmp" and mode == "LA") or (ext == ".gif" and mode in ("LA", "RGBA")):
        pytest.skip("format cannot store this mode")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (9, 7, 3)).astype(np.uint8)).convert(mode)
    p = tmp_path / f"x{ext}"
    img.save(p)
    arr = decode_image(p)
    assert arr.dtype == np.uint8 and arr.shape[1:] == (9, 7) and arr.shape[0] in (1, 3)
    assert decode_image(p, (4, 5), "RGB").shape == (3, 4, 5)


def test_mixed_gray_and_colour_become_rgb(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=4)
    Image.open(root / "circle" / "000.png").convert("L").save(root / "circle" / "000.png")
    assert load_dataset(root).shape[0] == 3


def test_sizes_differ_without_image_size(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=4)      # 16×16 images
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "circle" / "big.png")
    ds = load_dataset(root)                                       # a size is chosen: the median shorter side
    assert ds.shape == (3, 16, 16) and ds.auto_size == 16 and "differ in size" in ds.notes[0]
    assert load_dataset(root, image_size=12).shape == (3, 12, 12)


@pytest.mark.parametrize("content", [b"", b"this is not an image at all", "truncated"])
def test_bad_image_files_are_skipped_with_a_warning_naming_them(tmp_path, monkeypatch, content):
    root = make_image_folder(tmp_path / "imgs", per_class=6)
    bad = root / "square" / "broken.jpg"
    if content == "truncated":
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(bad, quality=90)
        bad.write_bytes(bad.read_bytes()[:200])
    else:
        bad.write_bytes(content)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(root)
    assert len(ds.train) + len(ds.test) == 12 and "square/broken.jpg" not in ds.train.keys + ds.test.keys
    assert any(str(bad) in str(w.message) for w in caught)
    monkeypatch.setattr(folder_mod, "iter_decoded", lambda *a, **k: pytest.fail("decoded again despite the cache"))
    with warnings.catch_warnings(record=True) as caught:                   # from the cache: said again
        warnings.simplefilter("always")
        again = load_dataset(root)
    assert any(str(bad) in str(w.message) for w in caught) and again.test.keys == ds.test.keys
    with pytest.raises(DataError, match="broken.jpg"):
        load_dataset(root, strict_images=True)                             # cached, and still strict


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("imgclf.data.images.MAX_PIXELS", 100)
    p = tmp_path / "bomb.png"
    Image.new("L", (20, 20)).save(p)
    with pytest.raises(DataError, match="bomb.png.*pixel"):
        decode_image(p)


def test_empty_class_folder(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=3)
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*hold no images"):
        load_dataset(root)


def test_one_class_is_not_a_classifier(tmp_path):
    root = make_image_folder(tmp_path / "imgs", classes=("only",), per_class=3)
    with pytest.raises(DataError, match="only one class"):
        load_dataset(root)


def test_train_and_test_class_names_must_match(tmp_path):
    make_image_folder(tmp_path / "d" / "train", classes=("a", "b"), per_class=3)
    make_image_folder(tmp_path / "d" / "test", classes=("a", "c"), per_class=2)
    with pytest.raises(DataError, match="c do not exist"):
        load_dataset(tmp_path / "d")


def test_no_class_folders_and_missing_path(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(tmp_path / "flat")
    with pytest.raises(DataError, match="neither a dataset name"):
        load_dataset(tmp_path / "nowhere")


def test_cache_is_memory_mapped_and_never_written(tmp_path, monkeypatch):
    """The cached images open memory-mapped copy-on-write: no up-front copy, a dataset bigger than RAM streams,
    and writing into the tensor (nothing in imgclf does) leaves the cache file as it was."""
    root = make_image_folder(tmp_path / "imgs", per_class=4)
    fl = folder_mod.scan_split(root)
    first = folder_mod.load_split_cached(fl, "train", None, tmp_path / "c")     # decodes and writes the cache
    modes = []
    real_load = np.load
    monkeypatch.setattr(folder_mod.np, "load", lambda p, mmap_mode=None: modes.append(mmap_mode) or
                        real_load(p, mmap_mode=mmap_mode))
    split = folder_mod.load_split_cached(fl, "train", None, tmp_path / "c")
    assert modes == ["c", None]                                # images mapped copy-on-write, labels read
    assert torch.equal(first.images, split.images)
    before = split.images[1].clone()
    split.images[1] = 0
    again = folder_mod.load_split_cached(fl, "train", None, tmp_path / "c")
    assert torch.equal(again.images[1], before) and before.any()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60, unique=True),
       st.lists(st.text(min_size=1, max_size=12), max_size=30, unique=True),
       st.floats(0.05, 0.95), st.integers(0, 2**31))
def test_a_files_split_depends_on_its_own_name_alone(old, added, fraction, seed):
    """Property: whatever is added or removed, every file present before and after stays on its side."""
    from imgclf.data.split import stable_holdout

    def sides(keys):
        _, held = stable_holdout(keys, fraction, seed, "test")
        return {keys[i]: i in set(held.tolist()) for i in range(len(keys))}

    before = sides(old)
    after = sides([k for k in old[::2]] + [k for k in added if k not in old])   # half removed, some added
    assert all(after[k] == before[k] for k in after if k in before)


def test_a_file_name_that_is_not_utf8_trains_and_is_cached(tmp_path, monkeypatch):
    """Linux allows any bytes in a name; Python holds them with surrogate escapes, which .encode() refuses."""
    root = make_image_folder(tmp_path / "imgs", per_class=6)
    odd = os.fsencode(root / "circle") + b"/\xff\xfe.png"
    try:
        with open(odd, "wb") as f:
            f.write((root / "circle" / "000.png").read_bytes())
    except OSError:
        pytest.skip("this file system refuses a file name that is not UTF-8")
    first = load_dataset(root)
    key = os.fsdecode(b"circle/\xff\xfe.png")
    assert key in first.train.keys + first.test.keys and first.identity()["test_fingerprint"]
    monkeypatch.setattr(folder_mod, "iter_decoded", lambda *a, **k: pytest.fail("decoded again despite the cache"))
    again = load_dataset(root)
    assert again.test.keys == first.test.keys and np.array_equal(again.train.images.numpy(), first.train.images.numpy())


@pytest.mark.parametrize("damage", ["empty", "truncated", "other shape"])
def test_a_damaged_cache_is_removed_and_rebuilt(tmp_path, damage):
    root = make_image_folder(tmp_path / "imgs", per_class=6)
    first = load_dataset(root)
    [entry] = Path(os.environ["IMGCLF_CACHE_DIR"]).glob("*.images.npy")      # this test's own cache
    if damage == "empty":
        entry.write_bytes(b"")
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:300])
    else:
        np.save(entry, np.zeros((3, 3, 16, 16), np.uint8))
    with pytest.warns(UserWarning, match="damaged cache entry.*decoding again"):
        again = load_dataset(root)
    assert np.array_equal(again.train.images.numpy(), first.train.images.numpy())
    assert np.array_equal(load_dataset(root).train.images.numpy(), first.train.images.numpy())   # rebuilt


def test_an_unwritable_cache_folder_trains_from_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("IMGCLF_CACHE_DIR", str(blocker / "cache"))     # cannot be created: a file is in the way
    root = make_image_folder(tmp_path / "imgs", per_class=6)
    with pytest.warns(UserWarning, match="cannot write the image cache.*training from memory"):
        ds = load_dataset(root, image_size=12)
    assert ds.shape == (3, 12, 12) and len(ds.train) + len(ds.test) == 12


def test_one_image_per_class_is_an_error_before_decoding(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "imgs", per_class=[1, 4])
    monkeypatch.setattr(folder_mod, "iter_decoded", lambda *a, **k: pytest.fail("decoded before the error"))
    with pytest.raises(DataError, match=r"imgs: class\(es\) circle have a single image; each class needs at least 2 "
                                        r".*add images, or give the test images their own folders"):
        load_dataset(root)


def _split_names(cls: str, held: bool, count: int) -> list[str]:
    """`count` file names of class `cls` that the default path-hash test split (20%, seed 0) holds out, or keeps."""
    from imgclf.data.split import stable_holdout

    names = (f"{cls}/{i:03d}.png" for i in range(10_000))
    return [k for k in names if (len(stable_holdout([k], 0.2, 0, "test")[1]) == 1) == held][:count]


def _folder_of(root: Path, names: list[str]) -> Path:
    for k in names:
        (root / k).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), len(k) * 9 % 255, np.uint8)).save(root / k)
    return root


def test_a_class_left_without_test_images_is_named_in_one_warning(tmp_path):
    root = _folder_of(tmp_path / "imgs", _split_names("circle", True, 2) + _split_names("circle", False, 6)
                      + _split_names("square", False, 3))
    with pytest.warns(UserWarning, match=r"imgs: no test images for class\(es\) square \(.*\): their accuracy is "
                                         r"not measured; add images"):
        ds = load_dataset(root)
    assert len(ds.test) == 2 and np.bincount(ds.train.labels.numpy()).tolist() == [6, 3]


def test_a_class_whose_every_image_is_held_out_is_an_error(tmp_path):
    root = _folder_of(tmp_path / "imgs", _split_names("circle", True, 2) + _split_names("circle", False, 6)
                      + _split_names("square", True, 2))
    with pytest.raises(DataError, match=r"imgs: class\(es\) square have no training images: the path-hash split "
                                        r"put all of their images in the test split .*add images to them"):
        load_dataset(root)


def test_self_referencing_symlinks_are_skipped_with_a_warning(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=5)
    os.symlink("self.png", root / "circle" / "self.png")                   # ELOOP as a file
    os.symlink("selfdir", root / "square" / "selfdir")                     # ELOOP as a folder
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(root)
    said = " | ".join(str(w.message) for w in caught)
    assert f"skipped {root / 'circle' / 'self.png'}: a symbolic link that loops (ELOOP)" in said
    assert f"skipped {root / 'square' / 'selfdir'}: a symbolic link that loops" in said
    assert len(ds.train) + len(ds.test) == 10


def test_a_directory_loop_is_walked_once_with_a_warning(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=5)
    os.symlink("..", root / "circle" / "up")            # back to the root: would list square's images as circle's
    (root / "square" / "deeper").mkdir()
    os.symlink("../..", root / "square" / "deeper" / "top")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(root)
    said = " | ".join(str(w.message) for w in caught)
    assert f"skipped {root / 'circle' / 'up'}: a symbolic link back to itself or a folder above it" in said
    assert f"skipped {root / 'square' / 'deeper' / 'top'}: a symbolic link back" in said
    keys = ds.train.keys + ds.test.keys
    assert len(keys) == 10 and not any("up/" in k or "top/" in k for k in keys)
    os.symlink(".", root / "loop")                                          # a class folder that is the root
    with pytest.warns(UserWarning, match="loop: a symbolic link back"), \
            pytest.raises(DataError, match=r"class folder\(s\) loop hold no images"):
        load_dataset(root)
    os.symlink("itself", tmp_path / "itself")
    with pytest.raises(DataError, match="itself"):
        load_dataset(tmp_path / "itself")


def test_a_fifo_named_like_an_image_is_named_and_skipped_never_read(tmp_path):
    """Opening a FIFO blocks until a writer comes: the walker lists regular files only and says which it skipped;
    predict names such an argument for what it is."""
    import os
    import warnings

    from imgclf.api import expand_image_paths
    from imgclf.data.images import walk_images
    from imgclf.errors import DataError

    root = make_image_folder(tmp_path / "f", per_class=2, size=8)
    os.mkfifo(root / "circle" / "pipe.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listed = [os.path.basename(p) for p, _ in walk_images(root)]
    assert "pipe.png" not in listed and len(listed) == 4
    assert any("pipe.png: not a regular file" in str(w.message) for w in caught)
    with pytest.raises(DataError, match="pipe.png: not a regular file"):
        expand_image_paths([root / "circle" / "pipe.png"])


@pytest.mark.parametrize("target", [None, "RGB"])
def test_high_bit_depth_images_decode_by_their_declared_depth(tmp_path, target):
    """A 16-bit grey ramp becomes the same 8-bit ramp (it came out 99.6% white in RGB, and one pixel above 255 used
    to darken the rest of a dim image); a float TIFF in [0, 1] becomes 0..255 (it decoded black)."""
    ramp16 = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(16, 16)
    Image.fromarray(ramp16).save(tmp_path / "r16.png")
    dim = np.full((4, 4), 200, dtype=np.uint16)
    Image.fromarray(dim).save(tmp_path / "dim.png")
    Image.fromarray(np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)).save(tmp_path / "f.tiff")
    expected = np.linspace(0, 255, 256).round().reshape(16, 16)
    for name in ("r16.png", "f.tiff"):
        got = decode_image(tmp_path / name, mode=target)
        assert got.shape[0] == (3 if target else 1)
        assert np.abs(got[0].astype(int) - expected).max() <= 1, name
    dim[0, 0] = 256
    Image.fromarray(dim).save(tmp_path / "dim2.png")
    a, b = decode_image(tmp_path / "dim.png", mode=target), decode_image(tmp_path / "dim2.png", mode=target)
    assert a.max() == 1 and b[0, 1, 1] == a[0, 1, 1] == 1   # 200/65535 of full scale; the bright pixel changes no other


def test_one_file_under_two_classes_is_left_out_and_under_two_names_used_once(tmp_path):
    """A symbolic link puts a square under 'circle' too: that file's label cannot be trusted (it trained twice with
    both labels); a second name for a file in its own class is one image, not two."""
    import os

    from imgclf.data.folder import scan_split

    root = make_image_folder(tmp_path / "f", per_class=5, size=8)
    os.symlink(root / "square" / "001.png", root / "circle" / "sq.png")
    os.link(root / "circle" / "002.png", root / "circle" / "002-again.png")
    with pytest.warns(UserWarning) as caught:
        fl = scan_split(root)
    names = [os.path.relpath(f, root) for f in fl.files]
    assert "circle/sq.png" not in names and "square/001.png" not in names
    assert ("circle/002.png" in names) != ("circle/002-again.png" in names) and len(names) == 9
    said = " ".join(str(w.message) for w in caught)
    assert "under 2 classes (circle, square" in said and "left out" in said and "used once" in said


def test_a_class_named_train_is_a_class(tmp_path):
    """bus/, car/, train/ of images is a flat folder of three classes, not a train/test layout missing its test/."""
    root = make_image_folder(tmp_path / "vehicles", classes=("bus", "car", "train"), per_class=6, size=8)
    ds = load_dataset(root)
    assert ds.classes == ["bus", "car", "train"] and len(ds.train) + len(ds.test) == 18
    split = make_image_folder(tmp_path / "split" / "train", classes=("bus", "car"), per_class=4, size=8).parent
    with pytest.raises(DataError, match="has train/ but no test/"):    # train/<class>/ without test/: still said
        load_dataset(split)
