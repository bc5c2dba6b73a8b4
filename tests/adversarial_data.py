"""Adversarial cases on data (tests/test_adversarial.py runs them): the test split of a folder as files come and
go, a run's data identity (eval, predict and --resume onto other data), the folder cache (stale, damaged,
unwritable), MNIST-format IDX files, CIFAR python-version files, and image folders (bad files, empty folders, one
class, odd splits, symlinks)."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from adversarial import (
    TINY,
    Case,
    Cases,
    Ctx,
    Result,
    _Evil,
    cifar_batch,
    cifar_dir,
    forbid_text,
    holdout_side,
    idx_bytes,
    json_out,
    make_folder,
    mnist_dir,
    names_on_side,
    png_claiming,
    require_text,
    run_config,
    save_image,
)
from PIL import Image

CASES = Cases()
case = CASES.case


# ----- the test split of a flat folder: adding or removing files never moves another between splits --------------


@case("split", "ok", what="eval of the old run passes after files that fall in train were added (test split unchanged)")
def add_train_files_then_eval(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    for ci, cls in enumerate(("circle", "square")):
        for j, name in enumerate(names_on_side(cls, test=False, n=3)):
            save_image(data / cls / name, seed=100 + j, kind=ci)
    return forbid_text(ctx.run("eval", run / "best.pt", cwd=ctx.p("a")), "changed")


@case("split", "error", names="changed", what="eval refuses once a new file fell into the test split")
def add_test_file_then_eval(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    save_image(data / "circle" / names_on_side("circle", test=True, n=1)[0], seed=7)
    return ctx.run("eval", run / "best.pt", cwd=ctx.p("a"))


@case("split", "ok", what="--allow-changed-data evaluates the old test files + the new one, and says it changed")
def add_test_file_allow_changed(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    save_image(data / "circle" / names_on_side("circle", test=True, n=1)[0], seed=7)
    r = ctx.run("eval", run / "best.pt", "--allow-changed-data", "--json", cwd=ctx.p("a"))
    res, before = json_out(r), run_config(run)["data_identity"]["sizes"]["test"]
    if r.rc == 0 and (not isinstance(res, dict) or res.get("n") != before + 1 or not res.get("data_changed")):
        r.wrong = f"expected {before + 1} test images and data_changed; got n={res and res.get('n')}"
    return r


@case("split", "ok", what="eval passes after a training file was deleted (test split unchanged)")
def remove_train_file_then_eval(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    next(p for p in sorted((data / "square").iterdir()) if not holdout_side(f"square/{p.name}")).unlink()
    return forbid_text(ctx.run("eval", run / "best.pt", cwd=ctx.p("a")), "changed")


@case("split", "ok", what="40 files added: a new run's test split = the old one + the new files that fall in it")
def many_added_files_test_size(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    before, new_test = run_config(run)["data_identity"]["sizes"]["test"], 0
    for ci, cls in enumerate(("circle", "square")):
        for i in range(20):
            save_image(data / cls / f"{600 + i:03d}.png", seed=600 + i, kind=ci)
            new_test += holdout_side(f"{cls}/{600 + i:03d}.png")
    r = ctx.run("train", "--data", "shapes", *TINY, "--out", "runs", "--name", "r2", cwd=ctx.p("a"))
    if r.rc == 0:
        after = run_config(ctx.p("a", "runs", "r2"))["data_identity"]["sizes"]["test"]
        if after != before + new_test:
            r.wrong = f"test split {after} images, expected {before} + {new_test} new"
    return r


@case("split", "ok", what="new modification times on every file move nothing: eval passes")
def touch_every_file_then_eval(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    for p in data.rglob("*.png"):
        os.utime(p, (time.time() + 1000, time.time() + 1000))
    return forbid_text(ctx.run("eval", run / "best.pt", cwd=ctx.p("a")), "changed")


# ----- data identity: eval / predict / --resume onto other data ----------------------------------------------------

THREE = {"classes": ("circle", "square", "ring")}


@case("identity", "error", names="class", what="eval refuses a class folder renamed since training")
def eval_renamed_class(ctx: Ctx) -> Result:
    data, run = ctx.folder_run(**THREE)
    (data / "square").rename(data / "box")
    return ctx.run("eval", run / "best.pt", cwd=ctx.p("a"))


@case("identity", "error", names="class", what="eval refuses a class list with a new class")
def eval_added_class(ctx: Ctx) -> Result:
    data, run = ctx.folder_run(**THREE)
    make_folder(data, classes=("triangle",), seed=5)
    return ctx.run("eval", run / "best.pt", cwd=ctx.p("a"))


@case("identity", "error", names="class", what="eval refuses a class list with a class removed")
def eval_removed_class(ctx: Ctx) -> Result:
    data, run = ctx.folder_run(**THREE)
    shutil.rmtree(data / "ring")
    return ctx.run("eval", run / "best.pt", cwd=ctx.p("a"))


@case("identity", "error", names="changed", what="eval refuses a test split with a test file deleted")
def eval_test_file_deleted(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    next(p for p in sorted((data / "circle").iterdir()) if holdout_side(f"circle/{p.name}")).unlink()
    return ctx.run("eval", run / "best.pt", cwd=ctx.p("a"))


@case("identity", "error", names="changed|content|differ",
      what="eval refuses a test split whose file has other pixels under the same name")
def eval_test_file_content_replaced(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    f = next(p for p in sorted((data / "circle").iterdir()) if holdout_side(f"circle/{p.name}"))
    save_image(f, seed=999, kind=1)
    return ctx.run("eval", run / "best.pt", cwd=ctx.p("a"))


@case("identity", "error", names="changed|folder|differ",
      what="eval from another cwd whose ./shapes is a different folder (same relative name, same file names)")
def eval_other_folder_same_name(ctx: Ctx) -> Result:
    _, run = ctx.folder_run()
    make_folder(ctx.p("b", "shapes"), seed=1)
    return ctx.run("eval", run / "best.pt", cwd=ctx.p("b"))


@case("identity", "ok", what="... the same with --allow-changed-data: evaluates and says the data differs")
def eval_other_folder_same_name_allowed(ctx: Ctx) -> Result:
    _, run = ctx.folder_run()
    make_folder(ctx.p("b", "shapes"), seed=1)
    return require_text(ctx.run("eval", run / "best.pt", "--allow-changed-data", cwd=ctx.p("b")), "differ")


@case("identity", "either", names="shapes",
      what="eval from a cwd without ./shapes: the run's recorded folder, or an error naming the folder")
def eval_from_other_cwd(ctx: Ctx) -> Result:
    _, run = ctx.folder_run()
    ctx.p("c").mkdir()
    return ctx.run("eval", run / "best.pt", cwd=ctx.p("c"))


@case("identity", "ok", what="predict after a class folder was renamed still names the run's classes")
def predict_after_class_renamed(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    (data / "square").rename(data / "box")
    r = ctx.run("predict", run / "best.pt", data / "box", "--topk", "2", cwd=ctx.p("a"))
    return forbid_text(require_text(r, "square"), ": box")


@case("identity", "error", names="class|changed", what="--resume refuses a class folder renamed since the save")
def resume_renamed_class(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    (data / "square").rename(data / "box")
    return ctx.run("train", "--resume", run / "last.pt", cwd=ctx.p("a"))


@case("identity", "error", names="changed|size", what="--resume refuses a training split with files added")
def resume_added_train_files(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    for i, name in enumerate(names_on_side("circle", test=False, n=2)):
        save_image(data / "circle" / name, seed=50 + i)
    return ctx.run("train", "--resume", run / "last.pt", cwd=ctx.p("a"))


@case("identity", "error", names="changed", what="--resume refuses a test split with a file deleted")
def resume_changed_test_split(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    next(p for p in sorted((data / "square").iterdir()) if holdout_side(f"square/{p.name}")).unlink()
    return ctx.run("train", "--resume", run / "last.pt", cwd=ctx.p("a"))


@case("identity", "error", names="changed|folder",
      what="--resume from a cwd whose ./shapes is another folder with the same name: refused, run untouched")
def resume_other_folder_same_name(ctx: Ctx) -> Result:
    _, run = ctx.folder_run()
    make_folder(ctx.p("b", "shapes"), seed=1)
    return ctx.run("train", "--resume", run / "last.pt", cwd=ctx.p("b"))


@case("identity", "ok", what="--resume from a cwd without ./shapes uses the run's recorded folder")
def resume_from_other_cwd(ctx: Ctx) -> Result:
    _, run = ctx.folder_run()
    ctx.p("c").mkdir()
    return ctx.run("train", "--resume", run / "last.pt", "--threads", "1", cwd=ctx.p("c"), writes=(run,))


@case("identity", "error", names="shapes|folder", what="--resume after the data folder moved away: an error naming it")
def resume_data_moved_away(ctx: Ctx) -> Result:
    data, run = ctx.folder_run()
    data.rename(data.with_name("elsewhere"))
    return ctx.run("train", "--resume", run / "last.pt", cwd=ctx.p("a"))


@case("identity", "error", names="class", what="eval of the digits model on a folder of other classes")
def eval_on_other_classes(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    make_folder(ctx.p("shapes"), size=8, channels=1)
    return ctx.run("eval", run / "best.pt", "--data", "shapes")


# ----- the folder cache: stale, damaged, unwritable ----------------------------------------------------------------

SHOW = ("show", "--data", "shapes", "--split", "train", "--n", "1000")


def cache_entry(ctx: Ctx, part: str) -> Path:
    found = sorted(ctx.cache.glob(f"*.{part}"))
    if len(found) != 1:
        raise RuntimeError(f"expected one cache file *.{part}, found {[p.name for p in found]}")
    return found[0]


def cache_case(ctx: Ctx, mutate: Callable[[Path], Any], data_changes: bool = False, ext: str = ".png",
               env: dict[str, str] | None = None, folder: dict[str, Any] | None = None,
               before: Callable[[Path], Any] | None = None) -> Result:
    """Decode a folder through `show` (filling the cache), `mutate(data folder)`, show it again: a success must draw
    exactly what a fresh decode draws (the first grid, or, when the data changed, one drawn with an empty cache)."""
    data = make_folder(ctx.p("shapes"), ext=ext, **(folder or {}))
    if before is not None:
        before(data)
    ctx.prep(*SHOW, "--out", "g0.png")
    mutate(data)
    r = ctx.run(*SHOW, "--out", "g1.png", env=env)
    if r.rc == 0:
        ref = "g0.png"
        if data_changes:
            ref = "g2.png"
            ctx.prep(*SHOW, "--out", ref, env={"IMGCLF_CACHE_DIR": str(ctx.p("fresh-cache"))})
        if ctx.p("g1.png").read_bytes() != ctx.p(ref).read_bytes():
            r.wrong = "drew other pixels than a fresh decode of the folder: a stale or damaged cache entry was used"
    return r


def in_train(data: Path, cls: str = "circle", k: int = 0) -> Path:
    return [p for p in sorted((data / cls).iterdir()) if not holdout_side(f"{cls}/{p.name}")][k]


@case("cache", "ok", what="control: a second show from the cache draws the same grid")
def unchanged(ctx: Ctx) -> Result:
    return cache_case(ctx, lambda d: None)


@case("cache", "ok", what="an image replaced by another of the same byte size, mtime restored: the new pixels are used")
def same_size_replacement_mtime_restored(ctx: Ctx) -> Result:
    def mutate(data: Path) -> None:
        f = in_train(data)
        st = f.stat()
        save_image(f, seed=999, kind=1)          # BMP: the same size in bytes for the same dimensions
        assert f.stat().st_size == st.st_size
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    return cache_case(ctx, mutate, data_changes=True, ext=".bmp")


@case("cache", "ok", what="two same-size images swapped, every file of one mtime (an archive's): pixels follow files")
def swapped_files_equal_mtimes(ctx: Ctx) -> Result:
    def mutate(data: Path) -> None:
        a, b = in_train(data, k=0), in_train(data, k=1)
        a.rename(data / "tmp.bmp")
        b.rename(a)
        (data / "tmp.bmp").rename(b)

    def one_mtime(data: Path) -> None:     # as an extracted archive or a fresh checkout leaves them
        for p in data.rglob("*.bmp"):
            os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    return cache_case(ctx, mutate, data_changes=True, ext=".bmp", before=one_mtime)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data), 7):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@case("cache", "ok", what="flipped bytes in the cache's images.npy: detected and decoded again")
def flipped_bytes_in_images_npy(ctx: Ctx) -> Result:
    return cache_case(ctx, lambda d: _flip(cache_entry(ctx, "images.npy")))


def _cut(part: str, keep: float) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        def mutate(_: Path) -> None:
            p = cache_entry(ctx, part)
            p.write_bytes(p.read_bytes()[:int(p.stat().st_size * keep)])
        return require_text(cache_case(ctx, mutate), "damaged cache")
    return build


for _part in ("images.npy", "labels.npy", "meta.json"):
    for _keep, _how in ((0.0, "0-byte"), (0.5, "truncated")):
        CASES.append(Case(f"{_how}-{_part.replace('.', '-')}", "cache", "ok", _cut(_part, _keep),
                          what=f"a {_how} {_part}: warned as damaged, removed and decoded again"))


def _write_cache_part(part: str, make: Callable[[Any], Any]) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        def mutate(_: Path) -> None:
            p = cache_entry(ctx, part)
            if part == "meta.json":
                p.write_text(json.dumps(make(json.loads(p.read_text()))))
            else:
                array = make(np.load(p))
                with open(p, "wb") as f:
                    np.save(f, array)
        return cache_case(ctx, mutate)
    return build


CASES += [
    Case("meta-skipped-not-a-list", "cache", "ok", _write_cache_part("meta.json", lambda m: {**m, "skipped": 5}),
         what="meta.json's list of skipped files is a number: treated as damaged"),
    Case("meta-kept-index-out-of-range", "cache", "ok",
         _write_cache_part("meta.json", lambda m: {"kept": [10**6] * 1 + list(range(15)), "skipped": []}),
         what="meta.json keeps file 1000000 of 20: treated as damaged"),
    Case("labels-out-of-range", "cache", "ok", _write_cache_part("labels.npy", lambda a: a + 99),
         what="labels.npy holds class 99 of 2: treated as damaged"),
    Case("images-wrong-shape", "cache", "ok",
         _write_cache_part("images.npy", lambda a: np.zeros((len(a), 3, 5, 5), np.uint8)),
         what="images.npy holds 5×5 images for a 12×12 folder: treated as damaged"),
]


@case("cache", "ok", what="images.npy replaced by a folder: decoded again (from memory if it cannot be replaced)")
def images_npy_is_a_folder(ctx: Ctx) -> Result:
    def mutate(_: Path) -> None:
        p = cache_entry(ctx, "images.npy")
        p.unlink()
        p.mkdir()
    return cache_case(ctx, mutate)


@case("cache", "ok", what="the cache folder made read-only (files 444, folder 555): nothing breaks")
def read_only_cache_folder(ctx: Ctx) -> Result:
    return cache_case(ctx, lambda _: make_read_only(ctx.cache))


@case("cache", "ok", what="a read-only cache folder holding a truncated entry: decoded again, from memory")
def read_only_cache_folder_damaged_entry(ctx: Ctx) -> Result:
    def mutate(_: Path) -> None:
        p = cache_entry(ctx, "images.npy")
        p.write_bytes(p.read_bytes()[:100])
        make_read_only(ctx.cache)
    return cache_case(ctx, mutate)


def make_read_only(folder: Path) -> None:
    """Files 444, the folder 555."""
    for p in folder.iterdir():
        p.chmod(0o444)
    folder.chmod(0o555)


@case("cache", "ok", what="IMGCLF_CACHE_DIR below a regular file (cannot be created): works from memory, warns")
def cache_dir_under_a_file(ctx: Ctx) -> Result:
    ctx.p("afile").write_text("x")
    return require_text(cache_case(ctx, lambda d: None, env={"IMGCLF_CACHE_DIR": str(ctx.p("afile", "cache"))}),
                        "cache")


def _mixed_sizes(data: Path) -> None:
    for i, p in enumerate(sorted(data.rglob("*.png"))):
        save_image(p, 12 if i % 2 else 20, seed=i, kind=int(p.parent.name == "square"))


def _size_json(edit: Callable[[Path], Any]) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        data = make_folder(ctx.p("shapes"), per_class=6)
        _mixed_sizes(data)
        ctx.prep(*SHOW, "--out", "g0.png")
        edit(cache_entry(ctx, "size.json"))
        r = ctx.run(*SHOW, "--out", "g1.png")
        if r.rc == 0 and ctx.p("g1.png").read_bytes() != ctx.p("g0.png").read_bytes():
            r.wrong = "drew other pixels than the first decode: the damaged size choice was used"
        return r
    return build


CASES += [
    Case("size-json-garbage", "cache", "ok", _size_json(lambda p: p.write_bytes(b"\xff\x00garbage")),
         what="the cached size choice of a mixed-size folder is garbage: chosen again"),
    Case("size-json-bad-value", "cache", "ok", _size_json(lambda p: p.write_text('{"size": "big"}')),
         what="the cached size choice says size 'big': treated as damaged, chosen again"),
]


@case("cache", "ok", what="an image deleted after caching: the grid matches a fresh decode")
def image_deleted_after_caching(ctx: Ctx) -> Result:
    return cache_case(ctx, lambda d: in_train(d).unlink(), data_changes=True)


@case("cache", "error", names="broken.png|unreadable",
      what="--strict-images on a run whose cache recorded a skipped file")
def strict_images_on_cached_folder(ctx: Ctx) -> Result:
    data = make_folder(ctx.p("shapes"))
    (data / "circle" / "broken.png").write_bytes(b"not a png")
    ctx.prep(*SHOW, "--out", "g0.png")
    return ctx.run("train", "--data", "shapes", *TINY, "--out", "runs", "--strict-images")


@case("cache", "ok", what="a skipped file is named again when the folder opens from the cache")
def skipped_file_warned_again_from_cache(ctx: Ctx) -> Result:
    data = make_folder(ctx.p("shapes"))
    (data / "circle" / "broken.png").write_bytes(b"not a png")
    ctx.prep(*SHOW, "--out", "g0.png")
    return require_text(ctx.run(*SHOW, "--out", "g1.png"), "broken.png")


USERS_FILES = ("foo.labels.npy", "bar.images.npy", "baz.meta.json", "qux.size.json", "notes.txt", ".draft.txt.tmp99")


def _users_cache_dir(command: str) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        mine = ctx.p("mine")
        mine.mkdir()
        for name in USERS_FILES:
            (mine / name).write_text(f"the user's own {name}\n")
            os.utime(mine / name, (1, 1))       # old: --prune removes a killed decode's leftovers after an hour
        env = {"IMGCLF_CACHE_DIR": str(mine)}
        make_folder(ctx.p("shapes"))
        ctx.prep(*FOLDER_TRAIN, env=env)
        shutil.rmtree(ctx.p("shapes"))                  # the cached folder is gone: --prune has an entry to remove
        r = ctx.run("cache", command, env=env)
        lost = [n for n in USERS_FILES if not (mine / n).is_file()
                or (mine / n).read_text() != f"the user's own {n}\n"]
        kept = [p.name for p in mine.glob("*.images.npy") if p.name != "bar.images.npy"]
        if lost:
            r.wrong = f"the user's file(s) {', '.join(lost)} in IMGCLF_CACHE_DIR removed or changed"
        elif r.rc == 0 and kept:
            r.wrong = f"the gone folder's entry {kept[0]} was kept: the case proves nothing"
        return r
    return build


CASES += [
    Case("cache-dir-holds-users-files-prune", "cache", "ok", _users_cache_dir("--prune"),
         what="IMGCLF_CACHE_DIR at a folder of the user's old files (foo.labels.npy, bar.images.npy, baz.meta.json, "
              "...): train, then cache --prune, removes its own entry only"),
    Case("cache-dir-holds-users-files-clear", "cache", "ok", _users_cache_dir("--clear"),
         what="... and cache --clear removes its own entries only"),
]


# ----- MNIST-format IDX files ---------------------------------------------------------------------------------------

IDX_TRAIN = ("train", "--data", "mnist", "--data-dir", "mn", "--no-download", *TINY, "--out", "runs")
_rng = np.random.default_rng(1)


def _idx(**replace: bytes | None) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        mnist_dir(ctx, **replace)
        return ctx.run(*IDX_TRAIN)
    return build


def _idx_file(stem: str, edit: Callable[[bytes], bytes]) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        p = mnist_dir(ctx) / stem
        p.write_bytes(edit(p.read_bytes()))
        return ctx.run(*IDX_TRAIN)
    return build


CASES += [
    Case("valid-control", "idx", "ok", _idx(), what="control: a valid 40/20-image MNIST trains"),
    Case("train-test-image-sizes-differ", "idx", "error",
         _idx(test_images=idx_bytes(_rng.integers(0, 256, (20, 20, 20)))),
         names="28|20|size", what="test images 20×20, train 28×28: an error naming both sizes"),
    Case("train-labels-fewer-than-images", "idx", "error", _idx(train_labels=idx_bytes(np.arange(39) % 10)),
         names="label", what="39 train labels for 40 images"),
    Case("test-labels-more-than-images", "idx", "error", _idx(test_labels=idx_bytes(np.arange(25) % 10)),
         names="label", what="25 test labels for 20 images"),
    Case("dimension-overflow-wraps-to-zero", "idx", "error",
         _idx(train_images=idx_bytes(dims=[2**21, 2**21, 2**22], data=b"")),
         names="dimension|idx", what="dims 2^21×2^21×2^22 (product 2^64 wraps to 0) and no data"),
    Case("dimension-overflow-huge", "idx", "error", _idx(train_images=idx_bytes(dims=[2**31, 2**31, 2**31],
                                                                                 data=b"\0" * 64)),
         names="dimension|idx", what="dims 2^31 cubed with 64 bytes of data"),
    Case("bad-magic", "idx", "error", _idx(train_images=idx_bytes(np.zeros((40, 28, 28)), magic=b"\x01\x02")),
         names="idx|magic", what="a file that does not start with the IDX magic"),
    Case("float-data-type", "idx", "error",
         _idx(train_images=idx_bytes(dims=[40, 28, 28], dtype_code=0x0D, data=np.zeros(40 * 784, ">f4").tobytes())),
         names="type|0x0d", what="IDX type 0x0D (float32) images"),
    Case("images-with-2-dimensions", "idx", "error", _idx(train_images=idx_bytes(np.zeros((40, 784)))),
         names="dimension|2", what="train images as a 2-D (40×784) IDX file"),
    Case("files-swapped", "idx", "error", _idx(train_images=idx_bytes(np.arange(40) % 10),
                                               train_labels=idx_bytes(np.zeros((40, 28, 28)))),
         names="swapped|dimension|label|image", what="the images and labels files swapped"),
    Case("label-out-of-range", "idx", "error", _idx(train_labels=idx_bytes(np.full(40, 10))),
         names="label", what="label 10 for the 10 MNIST classes"),
    Case("truncated-gzip", "idx", "error", _idx_file("train-images-idx3-ubyte.gz", lambda b: b[:len(b) // 2]),
         names="train-images", what="a gzip cut in half"),
    Case("empty-file", "idx", "error", _idx_file("t10k-images-idx3-ubyte.gz", lambda b: b""),
         names="t10k-images", what="a 0-byte images file"),
    Case("zero-images", "idx", "error", _idx(test_images=idx_bytes(dims=[0, 28, 28], data=b""),
                                            test_labels=idx_bytes(dims=[0], data=b"")),
         names="t10k|empty|0|dimension", what="a test split of 0 images"),
    Case("file-missing", "idx", "error", _idx(test_labels=None), names="t10k-labels",
         what="the test labels file absent (--no-download): an error naming it"),
    Case("padded-data", "idx", "error", _idx(train_labels=idx_bytes(dims=[40], data=bytes(range(10)) * 4 + b"\0" * 9)),
         names="train-labels|padded|truncated", what="9 bytes past what the header says"),
    Case("one-pixel-images", "idx", "either", _idx(train_images=idx_bytes(np.zeros((40, 1, 1))),
                                                   test_images=idx_bytes(np.zeros((20, 1, 1)))),
         names="size|small|pixel|side", what="1×1 images: train, or an error saying they are too small"),
]


@case("idx", "either", names="size|small|pixel", what="1×1 images with --crop-pad 0: train, or an error on their size")
def one_pixel_images_no_crop_pad(ctx: Ctx) -> Result:
    mnist_dir(ctx, train_images=idx_bytes(np.zeros((40, 1, 1))), test_images=idx_bytes(np.zeros((20, 1, 1))))
    return ctx.run(*IDX_TRAIN, "--crop-pad", "0")


@case("idx", "ok", what="torchvision's layout (MNIST/raw/, uncompressed) is found")
def torchvision_layout(ctx: Ctx) -> Result:
    raw = mnist_dir(ctx, "mn/MNIST/raw")
    for p in raw.glob("*.gz"):
        p.with_suffix("").write_bytes(gzip.decompress(p.read_bytes()))
        p.unlink()
    return ctx.run(*IDX_TRAIN)


# ----- CIFAR python-version files -----------------------------------------------------------------------------------

CIFAR_TRAIN = ("train", "--data", "cifar10", "--data-dir", "cf", "--no-download", *TINY, "--out", "runs")


def _cifar(**replace: bytes | None) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        cifar_dir(ctx, **replace)
        r = ctx.run(*CIFAR_TRAIN)
        if ctx.p("PWNED").exists():
            r.wrong = "the file's pickled code RAN (PWNED was created)"
        return r
    return build


CASES += [
    Case("valid-control", "cifar", "ok", _cifar(), what="control: a valid tiny CIFAR-10 folder trains"),
    Case("float-labels", "cifar", "error", _cifar(data_batch_2=cifar_batch(6, labels=[0.5, 1.5, 2.5, 3.5, 4.5, 5.5])),
         names="label", what="labels 0.5, 1.5, …: an error, not truncation to 0, 1, …"),
    Case("nan-labels", "cifar", "error", _cifar(test_batch=cifar_batch(10, labels=[float("nan")] * 10)),
         names="label", what="NaN labels"),
    Case("string-labels", "cifar", "error", _cifar(data_batch_1=cifar_batch(6, labels=["cat"] * 6)),
         names="label", what="labels that are strings"),
    Case("negative-label", "cifar", "error", _cifar(data_batch_3=cifar_batch(6, labels=[0, 1, 2, 3, 4, -1])),
         names="label", what="label -1"),
    Case("label-beyond-int64", "cifar", "error", _cifar(data_batch_4=cifar_batch(6, labels=[2**70] * 6)),
         names="label", what="label 2^70"),
    Case("label-count-mismatch", "cifar", "error", _cifar(test_batch=cifar_batch(10, labels=[1] * 9)),
         names="label", what="9 labels for 10 images"),
    Case("data-int64", "cifar", "error", _cifar(data_batch_5=cifar_batch(6, data=np.zeros((6, 3072), np.int64))),
         names="data|uint8", what="'data' of int64"),
    Case("data-wrong-width", "cifar", "error", _cifar(data_batch_1=cifar_batch(6, data=np.zeros((6, 3000), np.uint8))),
         names="data|3072", what="rows of 3000 values, not 3072"),
    Case("meta-without-names", "cifar", "error", _cifar(**{"batches.meta": pickle.dumps({b"num_vis": 3072})}),
         names="batches.meta|names", what="batches.meta without label_names"),
    Case("pickle-with-code", "cifar", "error", _cifar(data_batch_1=pickle.dumps(_Evil(), protocol=2)),
         names="refus|global|code", what="a batch whose pickle calls os.system: refused, nothing runs"),
    Case("batch-is-a-list", "cifar", "error", _cifar(test_batch=pickle.dumps([1, 2, 3], protocol=2)),
         names="test_batch|dict", what="a batch holding a list"),
    Case("batch-missing", "cifar", "error", _cifar(data_batch_4=None), names="data_batch_4",
         what="data_batch_4 absent: an error naming it"),
]


@case("cifar", "ok", what="the official .tar.gz archive (no extracted folder) loads")
def archive_control(ctx: Ctx) -> Result:
    folder = cifar_dir(ctx)
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    shutil.rmtree(folder / "cifar-10-batches-py")
    return ctx.run(*CIFAR_TRAIN)


@case("cifar", "error", names="archive|cifar-10-python", what="an archive cut in half")
def truncated_archive(ctx: Ctx) -> Result:
    folder = cifar_dir(ctx)
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    shutil.rmtree(folder / "cifar-10-batches-py")
    archive.write_bytes(archive.read_bytes()[:archive.stat().st_size // 2])
    return ctx.run(*CIFAR_TRAIN)


# ----- image folders: bad files, empty folders, one class, odd splits, symlinks -------------------------------------

FOLDER_TRAIN = ("train", "--data", "shapes", *TINY, "--out", "runs")


def _folder(prepare: Callable[[Path], Any], *extra: str, folder: dict[str, Any] | None = None,
            require: tuple[str, ...] = ()) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        data = make_folder(ctx.p("shapes"), **(folder or {}))
        prepare(data)
        return require_text(ctx.run(*FOLDER_TRAIN, *extra), *require)
    return build


def _bad_files(data: Path) -> None:
    (data / "circle" / "broken.png").write_bytes(b"not a png at all")
    good = (data / "circle" / "000.png").read_bytes()
    (data / "square" / "truncated.png").write_bytes(good[:len(good) // 2])
    (data / "square" / "empty.jpg").write_bytes(b"")
    (data / "circle" / "notes.txt").write_text("not an image, not an image name")


def _unreadable_class(data: Path) -> None:
    for p in (data / "square").iterdir():
        p.write_bytes(b"garbage")


def _val_folder(size: int = 12, channels: int = 3, split: str = "val") -> Callable[[Path], Any]:
    def prepare(data: Path) -> None:
        for s in ("train", "test", "val"):
            (data / s).mkdir()
        for c in ("circle", "square"):
            (data / c).rename(data / "train" / c)
        make_folder(data / "test", per_class=4, seed=2)
        make_folder(data / "val", per_class=4, seed=3)
        make_folder(data / split, per_class=4, seed=4, size=size, channels=channels)
    return prepare


def _one_per_class(n: int) -> Callable[[Path], Any]:
    def prepare(data: Path) -> None:
        for c in ("circle", "square"):
            for p in sorted((data / c).iterdir())[n:]:
                p.unlink()
    return prepare


def _symlink(link: str, target: str) -> Callable[[Path], Any]:
    def prepare(data: Path) -> None:
        os.symlink(target, data / link)
    return prepare


def _absent_from_test(data: Path) -> None:
    (data / "ring").mkdir()
    for i, name in enumerate(names_on_side("ring", test=False, n=3)):
        save_image(data / "ring" / name, seed=i, kind=2)


CASES += [
    Case("bad-files-skipped", "folder", "ok", _folder(_bad_files, require=("broken.png", "truncated.png", "empty.jpg")),
         what="a non-image .png, a truncated .png and a 0-byte .jpg are skipped with a warning naming each"),
    Case("bad-files-strict", "folder", "error", _folder(_bad_files, "--strict-images"),
         names="broken.png|truncated.png|empty.jpg", what="... with --strict-images: an error naming one"),
    Case("class-all-unreadable", "folder", "error", _folder(_unreadable_class), names="square",
         what="every image of class 'square' unreadable: an error naming the class, not a 1-class model"),
    Case("all-unreadable", "folder", "error",
         _folder(lambda d: [p.write_bytes(b"x") for p in d.rglob("*.png")]), names="shapes|read",
         what="no readable image at all"),
    Case("empty-root", "folder", "error", _folder(lambda d: [shutil.rmtree(d / c) for c in ("circle", "square")]),
         names="class|shapes", what="a folder with no class folders"),
    Case("empty-class-folder", "folder", "error", _folder(lambda d: (d / "triangle").mkdir()), names="triangle",
         what="an empty class folder"),
    Case("hidden-files-only-class", "folder", "error",
         _folder(lambda d: save_image(d / "ghost" / ".hidden.png")), names="ghost",
         what="a class folder holding only hidden files"),
    Case("one-class", "folder", "error", _folder(lambda d: shutil.rmtree(d / "square")), names="one class|two",
         what="one class folder only"),
    Case("one-image-per-class", "folder", "either", _folder(_one_per_class(1)), names="few|test|image",
         what="one image per class: trains, or an error saying there are too few"),
    Case("two-images-per-class", "folder", "either", _folder(_one_per_class(2)), names="few|test|image",
         what="two images per class: trains, or an error saying there are too few"),
    Case("class-absent-from-test-split", "folder", "ok", _folder(_absent_from_test, require=("ring",)),
         what="a class none of whose 3 files falls in the test split: trains, and says so"),
    Case("val-of-another-size", "folder", "either", _folder(_val_folder(size=16)), names="val",
         what="val/ images 16×16, train 12×12: resized, or an error naming val"),
    Case("val-of-other-channels", "folder", "either", _folder(_val_folder(channels=1)), names="val",
         what="val/ grayscale, train colour: converted, or an error naming val"),
    Case("test-of-another-size", "folder", "either", _folder(_val_folder(size=16, split="test")), names="test",
         what="test/ images 16×16, train 12×12: resized, or an error naming test"),
    Case("test-extra-class", "folder", "error",
         _folder(lambda d: (_val_folder()(d), make_folder(d / "test", classes=("triangle",), per_class=2))),
         names="triangle", what="test/ has a class train/ lacks"),
    Case("test-missing-class", "folder", "ok",
         _folder(lambda d: (_val_folder()(d), shutil.rmtree(d / "test" / "square")), require=("square",)),
         what="test/ lacks a class: trains, with a warning naming it"),
    Case("train-without-test", "folder", "error",
         _folder(lambda d: ((d / "train").mkdir(), [(d / c).rename(d / "train" / c) for c in ("circle", "square")])),
         names="test", what="train/ but no test/"),
    Case("mixed-sizes-chosen", "folder", "ok", _folder(_mixed_sizes, require=("chose",)),
         what="images of two sizes: a size is chosen and said"),
    Case("symlink-loop", "folder", "ok", _folder(_symlink("circle/loop", "..")),
         what="circle/loop -> .. (a loop): walked once"),
    Case("eloop-folder-symlink", "folder", "either", _folder(_symlink("circle/self", "self")), names="self|loop",
         what="circle/self -> self (ELOOP): skipped, or an error naming it"),
    Case("eloop-image-symlink", "folder", "either", _folder(_symlink("circle/x.png", "x.png")), names="x.png|loop",
         what="circle/x.png -> x.png (ELOOP): skipped, or an error naming it"),
    Case("dangling-symlink", "folder", "ok", _folder(_symlink("circle/gone.png", "nowhere.png")),
         what="a symlink to nothing: ignored"),
    Case("non-utf8-file-name", "folder", "either",
         _folder(lambda d: shutil.copy(d / "circle" / "000.png", os.fsencode(d / "circle") + b"/\xff\xfe.png")),
         what="a file name that is not UTF-8: trains, or a clear error"),
    Case("newline-in-file-name", "folder", "ok",
         _folder(lambda d: shutil.copy(d / "circle" / "000.png", d / "circle" / "new\nline.png")),
         what="a file name with a newline"),
    Case("extreme-aspect-image", "folder", "ok",
         _folder(lambda d: save_image(d / "circle" / "wide.png", (3000, 1)), "--image-size", "8"),
         what="a 3000×1 image among 12×12 ones, --image-size 8"),
    Case("sixteen-bit-png", "folder", "ok",
         _folder(lambda d: Image.fromarray(np.full((12, 12), 40000, np.uint16)).save(d / "circle" / "deep.png")),
         what="a 16-bit grayscale PNG among colour ones"),
    Case("cmyk-jpeg", "folder", "ok",
         _folder(lambda d: Image.new("CMYK", (12, 12), (0, 50, 100, 0)).save(d / "square" / "cmyk.jpg")),
         what="a CMYK JPEG"),
    Case("animated-gif", "folder", "ok",
         _folder(lambda d: Image.new("P", (12, 12)).save(d / "square" / "anim.gif", save_all=True,
                                                           append_images=[Image.new("P", (12, 12), 3)])),
         what="an animated GIF (its first frame)"),
    Case("decompression-bomb-header", "folder", "ok",
         _folder(lambda d: png_claiming(d / "circle" / "bomb.png", 50000, 50000), require=("bomb.png",)),
         what="a PNG claiming 50000×50000 pixels: skipped with a warning naming it"),
    Case("unicode-class-names", "folder", "ok",
         _folder(lambda d: ((d / "circle").rename(d / "猫 cat"), (d / "square").rename(d / "Ünïcode")), "--name", "u"),
         what="class folders named '猫 cat' and 'Ünïcode'"),
    Case("test-split-0.99", "folder", "error", _folder(lambda d: None, "--test-split", "0.99"),
         names="test|train|few|empty", what="--test-split 0.99 leaves no training images"),
]


@case("folder", "error", names="shapes|folder", what="--data naming a file")
def data_is_a_file(ctx: Ctx) -> Result:
    ctx.p("shapes").write_text("x")
    return ctx.run(*FOLDER_TRAIN)


def _trained(ctx: Ctx) -> dict[str, Any]:
    """The config.yaml of the one run FOLDER_TRAIN made."""
    runs = sorted(ctx.p("runs").glob("*/config.yaml"))
    assert len(runs) == 1, f"expected one run folder, found {[str(p.parent) for p in runs]}"
    return run_config(runs[0].parent)


@case("folder", "ok", what="a flat folder whose classes are bus/, car/, train/: three classes (not a train/ split)")
def classes_bus_car_train(ctx: Ctx) -> Result:
    make_folder(ctx.p("shapes"), classes=("bus", "car", "train"))
    r = ctx.run(*FOLDER_TRAIN)
    if r.rc == 0:
        ident = _trained(ctx)["data_identity"]
        if ident["classes"] != ["bus", "car", "train"] or sum(ident["sizes"].values()) != 30:
            r.wrong = f"trained on classes {ident['classes']} with {ident['sizes']}, not bus/car/train's 30 images"
    return r


def ramp16(k: int = 0, top: int = 65535, size: int = 12) -> np.ndarray:
    """A size×size 16-bit grayscale gradient 0 … `top` (65535: full range), its columns rolled by k // 2 and odd k
    transposed (distinct images of one brightness)."""
    ramp = np.roll(np.tile(np.linspace(0, top, size).round().astype(np.uint16), (size, 1)), k // 2, axis=1)
    return ramp.T.copy() if k % 2 else ramp


@case("folder", "ok", what="16-bit grayscale PNGs among colour ones: a full-range gradient decodes to mean ~128 of "
                           "255 (not clipped white), one spanning 0-255 of 65535 to ~0 (not scaled by its own maximum)")
def sixteen_bit_ramp_brightness(ctx: Ctx) -> Result:
    data = make_folder(ctx.p("shapes"))
    for cls, top in (("ramp", 65535), ("dim", 255)):
        (data / cls).mkdir()
        for k in range(10):
            Image.fromarray(ramp16(k, top)).save(data / cls / f"{k:03d}.png")
    assert Image.open(data / "dim" / "000.png").mode == "I;16"
    r = ctx.run(*FOLDER_TRAIN)
    if r.rc == 0:
        images, labels = np.load(cache_entry(ctx, "images.npy")), np.load(cache_entry(ctx, "labels.npy"))
        classes = _trained(ctx)["data_identity"]["classes"]
        for cls, want in (("ramp", 127.5), ("dim", 0.5)):
            decoded = images[labels == classes.index(cls)]
            means = decoded.reshape(len(decoded), -1).mean(axis=1)
            if len(decoded) != 10 or not np.all(np.abs(means - want) < 12):
                r.wrong = (f"{cls}/: {len(decoded)} images decoded with mean pixels "
                           f"{np.round(means).astype(int).tolist()}, where ~{want:.0f} of 255 is right")
                break
    return r


def _fifo(data: Path) -> None:
    os.mkfifo(data / "circle" / "pipe.png")


CASES += [
    Case("fifo-in-class-folder", "folder", "ok", _folder(_fifo, require=("pipe.png",)),
         what="a FIFO named circle/pipe.png: named in a warning and skipped, never opened (a read would block)"),
    Case("fifo-in-class-folder-strict", "folder", "error", _folder(_fifo, "--strict-images"), names="pipe.png",
         what="... with --strict-images: an error naming it"),
]


@case("folder", "ok", what="a symlink square/dup.png -> ../circle/003.png (one image, two classes): left out with a "
                           "warning naming both, never trained under both labels")
def symlink_image_under_two_classes(ctx: Ctx) -> Result:
    data = make_folder(ctx.p("shapes"))
    os.symlink(os.path.join("..", "circle", "003.png"), data / "square" / "dup.png")
    r = require_text(ctx.run(*FOLDER_TRAIN), "circle/003.png", "square/dup.png")
    if r.rc == 0 and not r.wrong and sum(_trained(ctx)["data_identity"]["sizes"].values()) != 19:
        r.wrong = f"trained on {_trained(ctx)['data_identity']['sizes']}: 19 images (20 less the linked one) expected"
    return r


@case("folder", "ok", what="one camera's JPEGs (all stored 16×12), half EXIF-rotated (orientation 6 or 8): trains, "
                           "never stops with 'images differ in size'")
def exif_rotated_half(ctx: Ctx) -> Result:
    rng = np.random.default_rng(0)
    for ci, cls in enumerate(("circle", "square")):
        (ctx.p("shapes", cls)).mkdir(parents=True)
        for i in range(10):
            img = rng.integers(0, 60, (12, 16, 3)).astype(np.uint8)
            img[3:9, 4:12] = [200, 180, 60 * ci]
            exif = Image.Exif()
            if i % 2:
                exif[0x0112] = 6 if i % 4 == 1 else 8          # Orientation: rotate 90° on display, either way
            Image.fromarray(img).save(ctx.p("shapes", cls, f"{i:03d}.jpg"), exif=exif.tobytes(), quality=95)
    return ctx.run(*FOLDER_TRAIN)


# Variants of the default cases (another bad value, the same defect in another file): run with ADVERSARIAL_ALL=1.
VARIANTS = set("""
split/remove-train-file-then-eval split/touch-every-file-then-eval identity/eval-added-class
identity/eval-removed-class identity/eval-from-other-cwd identity/resume-added-train-files
identity/resume-changed-test-split identity/resume-data-moved-away identity/eval-on-other-classes
cache/0-byte-labels-npy cache/truncated-labels-npy cache/truncated-meta-json cache/0-byte-meta-json
cache/truncated-images-npy cache/meta-kept-index-out-of-range cache/images-npy-is-a-folder
cache/read-only-cache-folder cache/size-json-garbage cache/image-deleted-after-caching
cache/skipped-file-warned-again-from-cache idx/test-labels-more-than-images idx/images-with-2-dimensions
idx/empty-file idx/padded-data idx/torchvision-layout idx/bad-magic idx/float-data-type idx/truncated-gzip
idx/one-pixel-images-no-crop-pad cifar/string-labels cifar/label-count-mismatch cifar/data-int64
cifar/meta-without-names cifar/batch-is-a-list cifar/archive-control folder/all-unreadable
folder/hidden-files-only-class folder/two-images-per-class folder/test-of-another-size folder/test-extra-class
folder/train-without-test folder/mixed-sizes-chosen folder/dangling-symlink folder/newline-in-file-name
folder/sixteen-bit-png folder/cmyk-jpeg folder/animated-gif folder/unicode-class-names folder/test-split-0.99
folder/data-is-a-file folder/empty-class-folder folder/extreme-aspect-image folder/symlink-loop
cache/cache-dir-holds-users-files-clear
""".split())  # noqa: SIM905 (54 names: a list of quoted strings reads worse)
