"""`--data hf:PATH`: small local Hugging Face datasets built here with `datasets` from generated PNGs (an image folder,
save_to_disk's folder, parquet files) read through the folder cache and splits, their columns found by type or named,
their own splits kept; trained and evaluated through the CLI. No network: a Hub id fails with a clear message."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_image_folder

from imgclf.data import folder as folder_mod
from imgclf.data import load_dataset
from imgclf.data.images import decode_image
from imgclf.errors import DataError


@pytest.fixture(autouse=True)
def datasets():
    """The library, imported in a test, not at collection: it reads HF_HOME and HF_HUB_OFFLINE (conftest) when first
    imported, so the tests' cache and offline mode must be set by then."""
    return pytest.importorskip("datasets")


def image_folder(base, train=12, test=4):
    """base/shapes/{train,test}/{circle,square}/*.png: the layout the library's imagefolder reads."""
    make_image_folder(base / "shapes" / "train", per_class=train)
    make_image_folder(base / "shapes" / "test", per_class=test, seed=1)
    return base / "shapes"


def saved(base, **kw):
    """The image folder loaded with the library and written with save_to_disk (its images embedded as bytes)."""
    import datasets

    datasets.disable_progress_bars()
    d = datasets.load_dataset("imagefolder", data_dir=str(image_folder(base, **kw)))
    d.save_to_disk(str(base / "saved"))
    return base / "saved"


def test_a_local_image_folder_keeps_its_splits_and_class_names(tmp_path):
    root = image_folder(tmp_path)
    ds = load_dataset(f"hf:{root}")
    assert ds.name == "shapes" and ds.source == f"hf:{root.resolve()}" and ds.classes == ["circle", "square"]
    assert (len(ds.train), len(ds.test)) == (24, 8) and ds.train.keys[0] == "train/circle/000.png"
    assert np.array_equal(ds.test.images[0].numpy(), decode_image(root / ds.test.keys[0]))
    assert ds.identity()["source"] == f"hf:{root.resolve()}"


def test_save_to_disk_folder_decodes_the_embedded_bytes_and_opens_from_the_cache(tmp_path, monkeypatch):
    folder = saved(tmp_path)
    ds = load_dataset(f"hf:{folder}", val_split=0.25)
    plain = load_dataset(tmp_path / "shapes")              # the same images read as an image folder
    assert ds.classes == plain.classes and (len(ds.train) + len(ds.val), len(ds.test)) == (24, 8)
    assert sorted(map(bytes, ds.test.images.numpy())) == sorted(map(bytes, plain.test.images.numpy()))
    with monkeypatch.context() as m:
        m.setattr(folder_mod, "iter_decoded", lambda *a, **k: pytest.fail("decoded again despite the cache"))
        again = load_dataset(f"hf:{folder}", val_split=0.25)
    assert again.val.keys == ds.val.keys and np.array_equal(again.train.images.numpy(), ds.train.images.numpy())
    from imgclf.data.health import check_data

    report = check_data(f"hf:{folder}")       # rows, not files: no file survey (never 32 "unreadable" files)
    assert report.files is None and report.loader_warnings == [] and report.findings.counts["exact"] == 0


def test_a_train_split_alone_gets_a_test_split_held_out(tmp_path, datasets):
    folder = saved(tmp_path)
    only = datasets.load_from_disk(str(folder))["train"]
    only.to_parquet(str(tmp_path / "train.parquet"))
    ds = load_dataset(f"hf:{tmp_path / 'train.parquet'}", test_split=0.25)
    assert ds.name == "train" and len(ds.train) + len(ds.test) == 24 and 0 < len(ds.test) < 24
    assert any("test split" in n and "held out" in n for n in ds.notes)


def test_string_labels_other_columns_and_an_unlabelled_test_split(tmp_path, datasets):
    folder = saved(tmp_path)
    d = datasets.load_from_disk(str(folder))
    names = d["train"].features["label"].names
    relabel = {"train": lambda r: {"kind": names[r["label"]]}, "test": lambda r: {"kind": None}}
    d = datasets.DatasetDict({k: v.map(relabel[k]).rename_column("image", "pic").remove_columns("label")
                              for k, v in d.items()})
    d.save_to_disk(str(tmp_path / "strings"))
    with pytest.raises(DataError, match=r"cannot tell which column holds the labels .*--columns IMAGE,LABEL"):
        load_dataset(f"hf:{tmp_path / 'strings'}")
    ds = load_dataset(f"hf:{tmp_path / 'strings'}", columns="pic,kind")
    assert ds.classes == ["circle", "square"] and len(ds.train) + len(ds.test) == 24   # test held out of train
    assert any("the test split has no labels" in n for n in ds.notes)
    with pytest.raises(DataError, match=r"no column 'nope' \(its columns: pic \(Image\), kind \(Value\)\)"):
        load_dataset(f"hf:{tmp_path / 'strings'}", columns="pic,nope")
    with pytest.raises(DataError, match="column 'kind' holds Value, not images"):
        load_dataset(f"hf:{tmp_path / 'strings'}", columns="kind,kind")


def test_errors_name_the_dataset_and_the_fix(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="hf:nobody/nothing: no such local path, and the Hugging Face Hub could not "
                                        "give it .*save_to_disk"):
        load_dataset("hf:nobody/nothing")                 # HF_HUB_OFFLINE (conftest): never the network
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"hf:.*empty: the datasets library cannot read it"):
        load_dataset(f"hf:{tmp_path / 'empty'}")
    monkeypatch.setitem(sys.modules, "datasets", None)   # not installed
    with pytest.raises(DataError, match=r"needs the `datasets` library; pip install 'imgclf\[hf\]'"):
        load_dataset(f"hf:{tmp_path}")


@pytest.mark.slow
def test_cli_trains_and_evals_a_saved_dataset(tmp_path):
    folder = saved(tmp_path, train=20, test=6)
    run = [sys.executable, "-m", "imgclf"]
    r = subprocess.run([*run, "train", "--data", f"hf:{folder}", "--model", "fastcnn-tiny", "--epochs", "2",
                        "--no-plots", "--out", str(tmp_path / "runs"), "--name", "hf", "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "runs" / "hf" / "summary.json").read_text())
    assert summary["dataset"] == "saved" and summary["test_split_size"] == 12
    r = subprocess.run([*run, "eval", str(tmp_path / "runs" / "hf" / "best.pt"), "--json"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["test_accuracy"] == summary["test_accuracy"]
