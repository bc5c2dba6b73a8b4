"""`--data labels.csv` and `data=DataFrame`: a CSV of generated images and labels read through the folder cache and
splits, its columns found or named, every bad row a one-line error; trained and evaluated through the CLI, and
resume/eval refusing a CSV whose labels changed."""

import csv
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image_folder

import imgclf
from imgclf.data import folder as folder_mod
from imgclf.data import load_dataset
from imgclf.data.images import decode_image
from imgclf.errors import ConfigError, DataError, ImgclfError


def make_csv_data(base: Path, per_class: int = 15, header=("file", "label"), split: dict | None = None,
                  ext: str = ".png", keep_ext: bool = True) -> tuple[Path, list[list[str]]]:
    """Generated images (circle / square) flat in base/imgs/ under neutral names, listed in base/labels.csv as
    `header`; `split` maps a row's index to its split value (a third column). Returns (csv path, rows)."""
    src = make_image_folder(base / "generated", per_class=per_class, ext=ext)
    imgs = base / "imgs"
    imgs.mkdir(parents=True)
    rows = []
    for c in ("circle", "square"):
        for f in sorted((src / c).iterdir()):
            name = f"img{len(rows):04d}{ext}"
            shutil.copy(f, imgs / name)
            row = [name if keep_ext else name[:-len(ext)], c]
            if split is not None:
                row.append(split.get(len(rows), "train"))
            rows.append(row)
    return write_csv(base / "labels.csv", header, rows), rows


def write_csv(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_csv_lists_images_with_their_labels(tmp_path):
    path, rows = make_csv_data(tmp_path)
    ds = load_dataset(path, images_root=tmp_path / "imgs")
    assert ds.name == "labels" and ds.classes == ["circle", "square"] and len(ds.train) + len(ds.test) == 30
    label = {r[0]: r[1] for r in rows}
    for split in (ds.train, ds.test):
        for key, y, image in zip(split.keys, split.labels.tolist(), split.images):
            assert ds.classes[y] == label[key]
            assert np.array_equal(image.numpy(), decode_image(tmp_path / "imgs" / key))
    identity = ds.identity()
    assert identity["source"] == str(path.resolve())
    assert identity["sizes"] == {"train": len(ds.train), "test": len(ds.test)} and len(ds.test) > 0


def test_check_surveys_the_listed_files(tmp_path):
    from imgclf.data.health import check_data

    path, _ = make_csv_data(tmp_path, per_class=6)
    report = check_data(path, images_root=tmp_path / "imgs")
    assert report.files.modes == {"RGB": 12} and report.files.unreadable == 0
    assert report.dataset.source == str(path) and report.findings.counts["conflict"] == 0


def test_paths_are_relative_to_the_csv_folder_by_default(tmp_path):
    path, rows = make_csv_data(tmp_path)
    write_csv(path, ("file", "label"), [[f"imgs/{name}", c] for name, c in rows])
    ds = load_dataset(path)
    assert sorted(ds.train.keys + ds.test.keys) == sorted(f"imgs/{r[0]}" for r in rows)


def test_kaggle_ids_without_extension_and_other_column_names(tmp_path):
    """image_id/target found by name; an id names its file without the extension (.jpg tried as well as .png)."""
    path, _ = make_csv_data(tmp_path, header=("image_id", "target"), keep_ext=False, ext=".jpg")
    ds = load_dataset(path, images_root=tmp_path / "imgs")
    assert len(ds.train) + len(ds.test) == 30 and ds.train.keys[0].endswith(".jpg")
    assert any("column" in n and "'image_id'" in n and "'target'" in n for n in ds.notes)


def test_two_unnamed_columns_are_file_then_label_and_columns_names_others(tmp_path):
    path, rows = make_csv_data(tmp_path, header=("picture", "breed"))
    assert load_dataset(path, images_root=tmp_path / "imgs").classes == ["circle", "square"]
    write_csv(path, ("picture", "breed", "notes"), [[*r, "x"] for r in rows])
    with pytest.raises(DataError, match=r"labels\.csv: cannot tell which column holds the files .*--columns"):
        load_dataset(path, images_root=tmp_path / "imgs")
    ds = load_dataset(path, images_root=tmp_path / "imgs", columns="picture,breed")
    assert ds.classes == ["circle", "square"]


def test_numeric_labels_are_ordered_by_value(tmp_path):
    path, rows = make_csv_data(tmp_path, per_class=6)
    write_csv(path, ("file", "label"), [[r[0], "10" if r[1] == "circle" else "2"] for r in rows])
    assert load_dataset(path, images_root=tmp_path / "imgs").classes == ["2", "10"]


def test_split_column_gives_train_val_and_test(tmp_path):
    split = {i: "test" for i in (0, 1, 2, 15, 16, 17)} | {i: "valid" for i in (3, 4, 18, 19)}
    path, rows = make_csv_data(tmp_path, header=("file", "label", "split"), split=split)
    ds = load_dataset(path, images_root=tmp_path / "imgs", val_split=0.3)   # its own val: no hold-out
    assert (len(ds.train), len(ds.val), len(ds.test)) == (20, 4, 6)
    assert sorted(ds.test.keys) == sorted(rows[i][0] for i in split if split[i] == "test")
    assert sorted(ds.val.keys) == sorted(rows[i][0] for i in split if split[i] == "valid")


def test_second_load_opens_the_cache_and_a_label_change_decodes_again_without_a_damage_notice(tmp_path, monkeypatch):
    path, rows = make_csv_data(tmp_path, per_class=8)
    first = load_dataset(path, images_root=tmp_path / "imgs")
    with monkeypatch.context() as m:
        m.setattr(folder_mod, "iter_decoded", lambda *a, **k: pytest.fail("decoded again despite the cache"))
        again = load_dataset(path, images_root=tmp_path / "imgs")
    assert np.array_equal(first.train.images.numpy(), again.train.images.numpy())
    rows[0][1] = "square"
    write_csv(path, ("file", "label"), rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a relabelled CSV is a new entry, not a damaged one
        relabelled = load_dataset(path, images_root=tmp_path / "imgs")
    split = relabelled.train if rows[0][0] in relabelled.train.keys else relabelled.test
    assert split.labels[split.keys.index(rows[0][0])] == 1


def test_a_file_listed_twice_with_one_label_is_used_once(tmp_path):
    path, rows = make_csv_data(tmp_path, per_class=6)
    write_csv(path, ("file", "label"), [*rows, rows[0], ["./" + rows[1][0], rows[1][1]]])
    with pytest.warns(UserWarning, match="2 row"):
        ds = load_dataset(path, images_root=tmp_path / "imgs")
    assert len(ds.train) + len(ds.test) == 12


def _bad(tmp_path, rows_edit=None, header=("file", "label"), text=None):
    path, rows = make_csv_data(tmp_path, per_class=4)
    if text is not None:
        path.write_text(text)
    else:
        write_csv(path, header, rows_edit(rows) if rows_edit else rows)
    return path


BAD = {
    "missing file": (lambda r: [*r, ["nothere.png", "circle"]],
                     r"labels\.csv line 10: file 'nothere\.png' \(column 'file'\) not found in .*imgs; fix the path, "
                     r"or pass --images-root DIR"),
    "empty label": (lambda r: [r[0], [r[1][0], ""], *r[2:]],
                    r"labels\.csv line 3: column 'label' \(the label\) is empty for 'img0001\.png'; give every row "
                    "a label, or remove the row"),
    "empty file": (lambda r: [*r[:3], ["", "circle"], *r[3:]],
                   r"labels\.csv line 5: column 'file' \(the file\) is empty"),
    "conflicting labels": (lambda r: [*r, [r[0][0], "square"]],
                           r"labels\.csv lines 2 and 10: file 'img0000\.png' has labels 'circle' and 'square' in "
                           "column 'label'; keep one row per file"),
    "one class": (lambda r: [[f, "circle"] for f, _ in r], r"labels\.csv: 1 class \(circle\); a classifier needs"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_rows_are_one_line_errors_naming_file_line_column_and_fix(tmp_path, case):
    edit, message = BAD[case]
    path = _bad(tmp_path, edit)
    with pytest.raises(DataError, match=message) as e:
        load_dataset(path, images_root=tmp_path / "imgs")
    assert "\n" not in str(e.value)


def test_bad_columns_split_values_and_files(tmp_path):
    path = _bad(tmp_path, header=("file", "label"))
    with pytest.raises(DataError, match=r"labels\.csv: no column 'kind' \(its columns: file, label\); --columns "):
        load_dataset(path, images_root=tmp_path / "imgs", columns="file,kind")
    path = _bad(tmp_path / "b", lambda r: [[*x, "train"] for x in r[:-1]] + [[*r[-1], "holdout"]],
                header=("file", "label", "split"))
    with pytest.raises(DataError, match=r"line 9: column 'split' says 'holdout'; a split is train, val"):
        load_dataset(path, images_root=tmp_path / "b" / "imgs")
    path = _bad(tmp_path / "c", lambda r: [[*x, "train"] for x in r] + [[r[0][0], r[0][1], "test"]],
                header=("file", "label", "split"))
    with pytest.raises(DataError, match=r"lines 2 and 10: file 'img0000\.png' has splits 'train' and 'test'"):
        load_dataset(path, images_root=tmp_path / "c" / "imgs")
    import os

    os.mkfifo(tmp_path / "c" / "imgs" / "pipe.png")
    write_csv(path, ("file", "label"), [["pipe.png", "circle"], ["img0001.png", "square"]])
    with pytest.raises(DataError, match=r"line 2: 'pipe\.png' \(column 'file'\) is not a regular file"):
        load_dataset(path, images_root=tmp_path / "c" / "imgs")
    with pytest.raises(DataError, match=r"labels\.csv: a header \(file, label\) but no rows"):
        load_dataset(_bad(tmp_path / "d", text="file,label\n"), images_root=tmp_path / "d" / "imgs")
    with pytest.raises(DataError, match=r"--images-root .*nowhere: no such folder"):
        load_dataset(path, images_root=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="--columns file,label: names a CSV's or a Hugging Face dataset's columns"):
        load_dataset(make_image_folder(tmp_path / "folder"), columns="file,label")


def test_unreadable_listed_image_is_skipped_with_a_warning_as_in_a_folder(tmp_path):
    path, rows = make_csv_data(tmp_path, per_class=6)
    (tmp_path / "imgs" / rows[0][0]).write_bytes(b"not an image")
    with pytest.warns(UserWarning, match=f"skipped .*{rows[0][0]}"):
        ds = load_dataset(path, images_root=tmp_path / "imgs")
    assert len(ds.train) + len(ds.test) == 11
    with pytest.raises(DataError, match="1 unreadable image"):
        load_dataset(path, images_root=tmp_path / "imgs", strict_images=True)


def test_a_dataframe_is_the_same_data_as_its_csv(tmp_path, monkeypatch):
    pd = pytest.importorskip("pandas")
    path, rows = make_csv_data(tmp_path, per_class=8)
    from_csv = load_dataset(path, images_root=tmp_path / "imgs")
    df = pd.DataFrame(rows, columns=["file", "label"])
    monkeypatch.chdir(tmp_path / "imgs")        # a DataFrame's paths are relative to the working folder by default
    from_df = load_dataset(df)
    assert from_df.name == "dataframe" and from_df.test.keys == from_csv.test.keys
    assert np.array_equal(from_df.train.images.numpy(), from_csv.train.images.numpy())


def test_train_on_a_dataframe_then_evaluate_from_the_checkpoint(tmp_path):
    pd = pytest.importorskip("pandas")
    _, rows = make_csv_data(tmp_path, per_class=20)
    df = pd.DataFrame(rows, columns=["filename", "class"])
    s = imgclf.train(data=df, images_root=str(tmp_path / "imgs"), model="fastcnn-tiny", epochs=2, plots=False,
                     out=str(tmp_path / "runs"), quiet=True)
    assert s["dataset"] == "dataframe" and s["test_accuracy"] > 0.5
    clf = imgclf.load(s["checkpoint"])
    assert clf.config["data"].endswith("dataframe.csv") and clf.config["images_root"] == str(tmp_path / "imgs")
    assert clf.evaluate()["test_accuracy"] == s["test_accuracy"]
    assert clf.evaluate(df, images_root=str(tmp_path / "imgs"))["test_accuracy"] == s["test_accuracy"]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "imgclf", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.mark.slow
def test_cli_trains_and_evals_a_csv_then_refuses_it_relabelled(tmp_path):
    path, rows = make_csv_data(tmp_path, per_class=20)
    r = run_cli("train", "--data", path, "--images-root", tmp_path / "imgs", "--model", "fastcnn-tiny", "--epochs",
                "2", "--no-plots", "--out", tmp_path / "runs", "--name", "csv", "-q")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "runs" / "csv" / "summary.json").read_text())
    config = (tmp_path / "runs" / "csv" / "config.yaml").read_text()
    assert summary["dataset"] == "labels" and f"images_root: {tmp_path / 'imgs'}" in config
    r = run_cli("eval", tmp_path / "runs" / "csv" / "best.pt", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["test_accuracy"] == summary["test_accuracy"]
    test_key = load_dataset(path, images_root=tmp_path / "imgs").test.keys[0]
    write_csv(path, ("file", "label"), [[f, ("square" if c == "circle" else "circle") if f == test_key else c]
                                        for f, c in rows])            # one test image relabelled
    r = run_cli("eval", tmp_path / "runs" / "csv" / "best.pt")
    assert r.returncode == 3 and "test split of labels has changed" in r.stderr and "--allow-changed-data" in r.stderr
    r = run_cli("train", "--resume", tmp_path / "runs" / "csv" / "last.pt")
    assert r.returncode == 3 and "the data has changed since this run was saved" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_resume_refuses_a_csv_whose_training_labels_changed(tmp_path):
    path, rows = make_csv_data(tmp_path, per_class=16)
    s = imgclf.train(data=str(path), images_root=str(tmp_path / "imgs"), model="fastcnn-tiny", epochs=2,
                     plots=False, out=str(tmp_path / "runs"), name="a", quiet=True)
    train_key = load_dataset(path, images_root=tmp_path / "imgs").train.keys[0]
    write_csv(path, ("file", "label"), [[f, "square" if f == train_key else c] for f, c in rows])
    with pytest.raises(ImgclfError, match="the data has changed since this run was saved.*the training files or "
                                          "their labels"):
        imgclf.train(resume=Path(s["run_dir"]) / "last.pt", quiet=True)
