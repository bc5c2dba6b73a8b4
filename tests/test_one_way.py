"""One way to do each thing: the seed mixer is stable, the atomic writer never leaves half a file, train and
predict agree on which files are images, and every source of images resizes to the same pixels."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

import imgclf
from imgclf import rng
from imgclf.api import expand_image_paths
from imgclf.cli import main
from imgclf.data import load_dataset
from imgclf.data.folder import scan_split
from imgclf.data.images import decode_image, resize_images
from imgclf.fileio import atomic_write


def test_seed_mixer_is_a_fixed_function_of_its_integers():
    # golden values: a change here changes every shuffle and augmentation of every run
    assert rng.mix(0) == 6229623725594924965
    assert rng.mix(7, 3, rng.SHUFFLE) == rng.mix(7, 3, 1) != rng.mix(7, 3, 2)
    a, b = (torch.randperm(10, generator=rng.generator(1, 2)) for _ in range(2))
    assert torch.equal(a, b)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("disk went away")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]
    with atomic_write(target, text=True) as f:
        f.write("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["f.bin"]


def test_train_and_predict_walk_the_same_image_files(tmp_path):
    root = tmp_path / "photos"
    for rel in ["a/1.png", "a/sub/2.PNG", "a/.hidden.png", "a/.thumbs/3.png", "a/notes.txt", "b/4.jpg"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(root / rel, format="PNG")
    os.symlink(root / "a", root / "a" / "sub" / "loop")        # a folder loop: walked once
    listed = scan_split(root).files
    assert [os.path.relpath(f, root) for f in listed] == ["a/1.png", "a/sub/2.PNG", "b/4.jpg"]
    assert expand_image_paths([root]) == listed


def test_every_source_resizes_to_the_same_pixels(tmp_path):
    digits = load_dataset("digits")
    image = digits.test.images[0]                              # 1×8×8 uint8
    Image.fromarray(image[0].numpy()).save(tmp_path / "d.png")  # lossless
    named = load_dataset("digits", image_size=20).test.images[0]
    decoded = torch.from_numpy(decode_image(tmp_path / "d.png", (20, 20)))
    direct = resize_images(image[None], (20, 20))[0]
    assert torch.equal(named, decoded) and torch.equal(named, direct)
    folder = tmp_path / "folder"
    for c in ("x", "y"):
        (folder / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(image[0].numpy()).save(folder / c / f"{i}.png")
    from_folder = load_dataset(str(folder), image_size=20, test_split=0.34)
    assert all(torch.equal(img, named) for img in from_folder.train.images)


def test_predict_resizes_like_training(tmp_path):
    s = imgclf.train(data="digits", epochs=1, image_size=12, out=str(tmp_path), plots=False, quiet=True)
    digits = load_dataset("digits")
    for i in range(4):
        Image.fromarray(digits.test.images[i, 0].numpy()).save(tmp_path / f"{i}.png")
    clf = imgclf.load(s["checkpoint"])
    from_files = clf.predict(sorted(str(p) for p in tmp_path.glob("*.png")))
    from_tensor = clf.predict(load_dataset("digits", image_size=12).test.images[:4])
    assert [r["probability"] for r in from_files] == [r["probability"] for r in from_tensor]
    assert np.isclose(sum(t["probability"] for t in from_files[0]["topk"]), from_files[0]["probability"])


def test_checkpoints_record_the_data_and_eval_refuses_a_changed_test_split(tmp_path):
    from conftest import make_image_folder

    from imgclf.checkpoint import load_checkpoint
    from imgclf.errors import DataError, ImgclfError

    root = make_image_folder(tmp_path / "shapes", per_class=30, size=16)
    s = imgclf.train(data=str(root), epochs=2, out=str(tmp_path / "r"), name="a", plots=False, quiet=True,
                     save_every_steps=1)
    data = load_checkpoint(s["checkpoint"])["data"]
    assert data["classes"] == ["circle", "square"] and data["source"] == str(root.resolve())
    assert data["sizes"]["test"] == s["test_split_size"] and len(data["test_fingerprint"]) == 16
    assert imgclf.evaluate(s["checkpoint"])["test_accuracy"] == s["test_accuracy"]
    test_file = next(f for f in sorted((root / "circle").iterdir())
                     if f"circle/{f.name}" in imgclf.data.load_dataset(str(root)).test.keys)
    test_file.unlink()                                         # one test image gone: not the run's test split
    with pytest.raises(DataError, match="test split of shapes has changed.*allow_changed_data=True"):
        imgclf.evaluate(s["checkpoint"])
    result = imgclf.evaluate(s["checkpoint"], allow_changed_data=True)
    assert "has changed" in result["data_changed"]
    with pytest.raises(ImgclfError, match="the data has changed since this run was saved"):
        imgclf.train(resume=tmp_path / "r" / "a" / "last.pt", quiet=True)


def test_eval_finds_a_test_image_given_other_pixels_and_another_folder_of_the_same_name(tmp_path, monkeypatch):
    """The file list alone misses a test file rewritten under its name, and a ./shapes that is another folder; the
    pixels do not. New mtimes alone change nothing; a checkpoint of the format before, which could lack
    `test_pixels`, is refused rather than checked on less."""
    import shutil

    from conftest import make_image_folder

    from imgclf.checkpoint import load_checkpoint, save_checkpoint
    from imgclf.errors import CheckpointError, DataError, ImgclfError

    root = make_image_folder(tmp_path / "a" / "shapes", per_class=12, size=12)
    s = imgclf.train(data=str(root), model="fastcnn-tiny", epochs=1, out=str(tmp_path / "r"), name="a", plots=False,
                     quiet=True)
    ckpt = s["checkpoint"]
    assert len(load_checkpoint(ckpt)["data"]["test_pixels"]) == 16
    for f in root.rglob("*.png"):
        os.utime(f, (1e9, 1e9))                                 # touched: the same pixels
    assert "data_changed" not in imgclf.evaluate(ckpt)
    shutil.copytree(root, tmp_path / "b" / "shapes")            # an exact copy elsewhere: evaluates, with a note
    monkeypatch.chdir(tmp_path / "b")
    with pytest.warns(UserWarning, match=f"evaluating the folder {tmp_path / 'b' / 'shapes'}; the model was tested on "
                                         f"{root.resolve()} \\(the same test files and pixels\\)"):
        assert "data_changed" not in imgclf.evaluate(ckpt, data="shapes")
    test_file = next(f for f in sorted((root / "circle").iterdir())
                     if f"circle/{f.name}" in load_dataset(str(root)).test.keys)
    old = test_file.stat()
    Image.fromarray(np.full((12, 12, 3), 9, np.uint8)).save(test_file)
    os.utime(test_file, ns=(old.st_atime_ns, old.st_mtime_ns))
    with pytest.raises(DataError, match="test split of shapes has changed.*the same file names with other pixels"):
        imgclf.evaluate(ckpt)
    assert "other pixels" in imgclf.evaluate(ckpt, allow_changed_data=True)["data_changed"]
    with pytest.raises(ImgclfError, match=r"the test split \(the same file names with other pixels\)"):
        imgclf.train(resume=tmp_path / "r" / "a" / "last.pt", quiet=True)
    make_image_folder(tmp_path / "c" / "shapes", per_class=12, size=12, seed=1)   # same names, other images
    monkeypatch.chdir(tmp_path / "c")
    with pytest.raises(DataError, match=f"other pixels; in {root.resolve()} then, {tmp_path / 'c' / 'shapes'} now"):
        imgclf.evaluate(ckpt, data="shapes")
    old_format = {**load_checkpoint(ckpt), "format_version": 1}
    del old_format["data"]["test_pixels"]
    save_checkpoint(old_format, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="old.pt: checkpoint format 1, written by an earlier imgclf"):
        imgclf.evaluate(tmp_path / "old.pt", data=str(root))


def test_resume_refuses_a_training_image_given_other_pixels_under_its_name(tmp_path):
    """A training file rewritten under its own name (its mtime put back) leaves the file list as it was; the
    pixels recorded from the folder cache's checksums differ, and resume says so. A mere touch resumes."""
    from conftest import make_image_folder

    from imgclf.errors import ImgclfError

    root = make_image_folder(tmp_path / "shapes", per_class=12, size=12)
    s = imgclf.train(data=str(root), model="fastcnn-tiny", epochs=1, out=str(tmp_path / "r"), name="a", plots=False,
                     quiet=True)
    last = tmp_path / "r" / "a" / "last.pt"
    assert len(torch.load(last, weights_only=True)["data"]["train_pixels"]) == 16
    train_file = next(f for f in sorted((root / "circle").iterdir())
                      if f"circle/{f.name}" in load_dataset(str(root)).train.keys)
    for f in root.rglob("*.png"):
        os.utime(f, (1e9, 1e9))                                 # touched: the same pixels, a new cache entry
    assert imgclf.train(resume=last, quiet=True)["test_accuracy"] == s["test_accuracy"]
    old = train_file.stat()
    Image.fromarray(np.full((12, 12, 3), 9, np.uint8)).save(train_file)
    os.utime(train_file, ns=(old.st_atime_ns, old.st_mtime_ns))
    with pytest.raises(ImgclfError, match="the training images' pixels, under the same file names"):
        imgclf.train(resume=last, quiet=True)


def test_resume_refuses_a_checkpoint_copied_into_another_runs_folder(tmp_path):
    import shutil

    from imgclf.errors import ImgclfError

    a = imgclf.train(data="digits", epochs=1, out=str(tmp_path), name="a", plots=False, quiet=True)
    imgclf.train(data="digits", epochs=1, out=str(tmp_path), name="b", plots=False, quiet=True)
    before = (tmp_path / "b" / "summary.json").read_text()
    shutil.copy(tmp_path / "a" / "last.pt", tmp_path / "b" / "copied.pt")
    with pytest.raises(ImgclfError, match="belongs to run .* holds run .*Copy the whole run folder"):
        imgclf.train(resume=tmp_path / "b" / "copied.pt", quiet=True)
    assert (tmp_path / "b" / "summary.json").read_text() == before       # nothing of run b was touched
    shutil.copytree(tmp_path / "a", tmp_path / "a-copy")                  # a whole copied folder resumes fine
    again = imgclf.train(resume=tmp_path / "a-copy" / "last.pt", quiet=True, plots=False)
    assert again["test_accuracy"] == a["test_accuracy"]


def test_resume_from_best_pt_is_refused_when_last_pt_is_further_on(tmp_path):
    from imgclf.errors import ImgclfError
    from imgclf.models import MODELS, register_model

    steps = {"n": 0}

    def worse_later(**kw):   # fastcnn-tiny whose val predictions turn useless after epoch 1: best.pt stays epoch 1
        model = MODELS["fastcnn-tiny"].builder(**kw)

        def hook(module, _inputs, out):
            if module.training:
                steps["n"] += 1
            elif steps["n"] > 20:
                return out * 0
            return out

        model.register_forward_hook(hook)
        return model

    register_model("tiny-worse-later", worse_later)
    s = imgclf.train(data="digits", model="tiny-worse-later", epochs=3, out=str(tmp_path), name="r", plots=False,
                     quiet=True)
    assert s["best_epoch"] == 1
    with pytest.raises(ImgclfError, match="last.pt is further on.*init_weights="):
        imgclf.train(resume=tmp_path / "r" / "best.pt", quiet=True)


def test_a_tiny_folder_gets_no_empty_val_split(tmp_path):
    from conftest import make_image_folder

    root = make_image_folder(tmp_path / "shapes", per_class=3, size=16)
    ds = imgclf.data.load_dataset(str(root), test_split=0.3, val_split=0.1)
    assert ds.val is None or len(ds.val) > 0
    assert len(ds.train) > 0


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two finished 1-epoch digits runs, a and b (each test copies them before touching anything)."""
    out = tmp_path_factory.mktemp("two-runs")
    for name in ("a", "b"):
        imgclf.train(data="digits", model="fastcnn-tiny", epochs=1, out=str(out), name=name, plots=False, quiet=True)
    return out


def files_of(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("damage", ["deleted", "garbage", "no run_id"])
def test_resume_refuses_another_runs_folder_whose_config_yaml_cannot_say_whose_it_is(two_runs, tmp_path, damage):
    """The folder's own checkpoints say whose it is when its config.yaml is gone, damaged or has no run id."""
    import re
    import shutil

    from imgclf.errors import ImgclfError

    shutil.copytree(two_runs, tmp_path / "runs")
    a, b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    config = b / "config.yaml"
    if damage == "deleted":
        config.unlink()
    elif damage == "garbage":
        config.write_text("{{{ not yaml")
    else:
        config.write_text(re.sub(r"(?m)^run_id: .*\n", "", config.read_text()))
    shutil.copy(a / "last.pt", b / "copied.pt")
    before = files_of(b)
    with pytest.raises(ImgclfError, match=r"belongs to run \w+, but .* holds run \w+ \(its (last|best)\.pt\)"):
        imgclf.train(resume=b / "copied.pt", quiet=True)
    assert files_of(b) == before                                         # nothing of run b was touched
    (a / "config.yaml").unlink()                                          # its own folder, config.yaml gone: resumes
    imgclf.train(resume=a / "last.pt", quiet=True)


@pytest.mark.parametrize("name", ["../escape", "a/b", "/tmp/elsewhere", "", ".", ".."])
def test_a_run_name_that_is_not_one_folder_name_is_refused(tmp_path, name):
    from imgclf.errors import ImgclfError
    from imgclf.report.run_dir import new_run_dir

    with pytest.raises(ImgclfError, match="must be one folder name"):
        new_run_dir(tmp_path / "runs", name)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "runs").exists()
    assert new_run_dir(tmp_path / "runs", "a..b-2").name == "a..b-2"      # dots inside a name are fine


def test_resume_refuses_a_training_file_moved_to_another_class_and_eval_of_an_export_a_changed_test_split(
        tmp_path):
    """The train split's files and labels are part of the data a run records (a relabelled training image changed
    nothing that was checked before), and an exported file carries the run's data record, so `eval` of the
    export refuses a changed test split as `eval` of its checkpoint does."""
    from conftest import make_image_folder

    from imgclf.errors import DataError, ImgclfError

    root = make_image_folder(tmp_path / "shapes", per_class=30, size=16)
    s = imgclf.train(data=str(root), epochs=1, out=str(tmp_path / "r"), name="a", plots=False, quiet=True)
    exported = tmp_path / "a.torchscript.pt"
    assert main(["export", s["checkpoint"], "--format", "torchscript", "--out", str(exported)]) == 0
    assert imgclf.evaluate(str(exported), trust_exported=True)["test_accuracy"] == pytest.approx(s["test_accuracy"])
    train_keys = imgclf.data.load_dataset(str(root)).train.keys
    moved = next(k for k in train_keys if k.startswith("circle/"))
    (root / moved).rename(root / "square" / ("x" + moved.split("/")[1]))   # same size split, another label
    with pytest.raises(ImgclfError, match="the training files or their labels"):
        imgclf.train(resume=tmp_path / "r" / "a" / "last.pt", quiet=True)
    for f in sorted((root / "circle").iterdir())[:3]:
        f.unlink()                                            # some of them test images: another test split
    for path in (s["checkpoint"], str(exported)):
        with pytest.raises(DataError, match="test split of shapes has changed"):
            imgclf.evaluate(path, trust_exported=True)


def test_eval_on_other_data_with_numbered_class_names_is_refused_for_a_checkpoint(tmp_path):
    """Only a bare state_dict's placeholder names ('0', '1', …) take the data's names; a run's classes '0', '1',
    '2' are not the classes '1', '2', '3' of another folder."""
    from conftest import make_image_folder

    from imgclf.errors import CheckpointError

    a = make_image_folder(tmp_path / "a", classes=("0", "1", "2"), per_class=10, size=16)
    b = make_image_folder(tmp_path / "b", classes=("1", "2", "3"), per_class=10, size=16)
    s = imgclf.train(data=str(a), epochs=1, out=str(tmp_path / "r"), plots=False, quiet=True)
    with pytest.raises(CheckpointError, match="trained on classes"):
        imgclf.evaluate(s["checkpoint"], data=str(b))


@pytest.mark.parametrize("own", ["config.yaml", "summary.json"])
def test_resume_never_replaces_a_users_own_files_in_the_folder(tmp_path, own):
    """A last.pt copied into a folder of the user's own: a config.yaml without a run id, or a summary.json where
    no run's config.yaml is, belongs to no run, and resuming would replace it."""
    import shutil

    from imgclf.errors import ImgclfError

    imgclf.train(data="digits", epochs=1, out=str(tmp_path), name="a", plots=False, quiet=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / own).write_text("my notes: epochs 3, lr 0.1\n")
    shutil.copy(tmp_path / "a" / "last.pt", mine / "last.pt")
    with pytest.raises(ImgclfError, match=f"holds files of none .*its {own}"):
        imgclf.train(resume=mine / "last.pt", quiet=True)
    assert (mine / own).read_text() == "my notes: epochs 3, lr 0.1\n"


def imgclf_imports(path, package):
    """The first names below imgclf of every module `path` imports (relative or absolute, at any depth: lazy
    imports inside functions too)."""
    import ast

    here = path.relative_to(package).parts[:-1]        # ("models",) for models/pretrained.py
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = [*here[:len(here) - node.level + 1], *(node.module or "").split(".")]
            parts = [p for p in parts if p]
            found |= {parts[0]} if parts else {a.name for a in node.names}   # `from .. import rng`
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("imgclf."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("imgclf.")}
    return found


# The direction README's Layout states: data and models below checkpoint (which rebuilds networks from the models
# registry), checkpoint below engine, engine below the API, export and the command.
TOP = {"engine", "report", "cli", "api", "export", "exported"}
BELOW = {"data": TOP | {"checkpoint", "models"}, "models": TOP | {"checkpoint", "data"}, "checkpoint": TOP | {"data"},
         "engine": {"cli", "api", "export", "exported"}}


def test_dependencies_point_one_way(tmp_path):
    """Each layer imports nothing from the layers above it, lazily or not (models read weights files through
    safeload.py, below both them and checkpoint); the check itself sees every form of import."""
    from pathlib import Path

    package = Path(imgclf.__file__).parent
    for layer, above in BELOW.items():
        for path in sorted((package / layer).rglob("*.py")):
            wrong = imgclf_imports(path, package) & above
            assert not wrong, f"{path.relative_to(package)} imports {', '.join(sorted(wrong))}"
    probe = tmp_path / "imgclf" / "models" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from . import fastcnn\nfrom .. import rng\nimport imgclf.data.images\n\n\ndef f():\n"
                     "    from ..engine.setup import Run\n    from imgclf.checkpoint import format\n")
    assert imgclf_imports(probe, tmp_path / "imgclf") == {"models", "rng", "data", "engine", "checkpoint"}
