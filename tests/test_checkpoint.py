"""Checkpoints: atomic under failure, safe to load, clear about incompatibility, fuzzed."""

import contextlib
import errno
import os
import pickle
import zipfile

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import imgclf
from imgclf.checkpoint import format as ck
from imgclf.errors import CheckpointError, ImgclfError


def _good(tmp_path):
    path = tmp_path / "last.pt"
    ck.save_checkpoint({"format_version": ck.FORMAT_VERSION, "model": {"w": torch.ones(3)}, "epoch": 1}, path)
    return path


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = _good(tmp_path)

    def dies_halfway(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", dies_halfway)
    with pytest.raises(CheckpointError, match="disk full.*previous last.pt is untouched"):
        ck.save_checkpoint({"format_version": ck.FORMAT_VERSION, "model": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(ck.load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]          # no temporary file left behind


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(CheckpointError, match="not writable"):
        ck.save_checkpoint({"format_version": ck.FORMAT_VERSION, "model": {}}, ro / "last.pt")


def test_read_only_folder_via_errno(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(CheckpointError, match="not writable.*--out"):
        ck.save_checkpoint({"format_version": ck.FORMAT_VERSION, "model": {}}, tmp_path / "x.pt")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch CKPT_PWNED",))


def test_checkpoint_that_runs_code_is_refused_without_side_effects(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format_version": ck.FORMAT_VERSION, "model": {"w": torch.ones(1)}, "payload": _Evil()},
               tmp_path / "evil.pt", _use_new_zipfile_serialization=True)
    assert not (tmp_path / "CKPT_PWNED").exists()
    with pytest.raises(CheckpointError, match="refused to load"):
        ck.load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused to load"):
        imgclf.load(tmp_path / "evil.pt")
    (tmp_path / "legacy.pt").write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError):
        ck.load_checkpoint(tmp_path / "legacy.pt")
    assert not (tmp_path / "CKPT_PWNED").exists()


def test_another_format_and_foreign_content(tmp_path):
    torch.save({"format_version": 99, "model": {}}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="newer than this imgclf"):
        ck.load_checkpoint(tmp_path / "new.pt")
    torch.save({"format_version": ck.FORMAT_VERSION - 1, "model": {"w": torch.ones(1)}}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="old.pt: checkpoint format 1, written by an earlier imgclf .*; "
                                              "train it again, or re-save it with the imgclf that wrote it$"):
        imgclf.load(tmp_path / "old.pt", model="mlp")          # not taken for a bare state_dict either
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="neither an imgclf checkpoint"):
        ck.load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not found"):
        ck.load_checkpoint(tmp_path / "missing.pt")


def test_truncated_checkpoint(tmp_path):
    path = _good(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        ck.load_checkpoint(path)


def test_incompatible_class_list_on_eval(tmp_path):
    s = imgclf.train(data="digits", epochs=1, model="mlp", out=str(tmp_path), quiet=True, plots=False)
    from conftest import make_image_folder

    other = make_image_folder(tmp_path / "shapes", size=8, per_class=5)
    with pytest.raises(ImgclfError, match="images are|classes"):
        imgclf.evaluate(s["checkpoint"], str(other))
    with pytest.raises(CheckpointError, match="do not fit model 'tutorial-classifier'"):
        imgclf.load(s["checkpoint"], model="tutorial-classifier")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600), cut=st.integers(0, 2000))
def test_fuzz_checkpoint_loader_raises_only_our_error(tmp_path, data, cut):
    """Random bytes, and real checkpoints cut or overwritten at random places: only CheckpointError escapes."""
    path = tmp_path / "fuzz.pt"
    good = tmp_path / "good.pt"
    if not good.exists():
        ck.save_checkpoint({"format_version": ck.FORMAT_VERSION, "model": {"w": torch.ones(4)}, "config": {"a": 1}},
                           good)
    base = good.read_bytes()
    variants = [data, base[:cut], base[:cut] + data + base[cut + len(data):]]
    for blob in variants:
        path.write_bytes(blob)
        with contextlib.suppress(CheckpointError):
            ck.load_checkpoint(path)


def test_zip_with_wrong_members(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.pt", "w") as z:
        z.writestr("archive/data.pkl", b"not a pickle")
    with pytest.raises(CheckpointError):
        ck.load_checkpoint(tmp_path / "z.pt")


def test_a_file_that_is_no_pytorch_file_says_what_it_looks_like(tmp_path):
    """An ONNX export renamed .pt, or a text file, is no pickle at all: it is named for what it is, not as a file
    that 'could run code'."""
    (tmp_path / "model.pt").write_bytes(b"\x08\x09\x12\x07pytorch\x1a\x05" + bytes(64))   # ONNX: ir_version first
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint.*must be named .onnx"):
        ck.load_checkpoint(tmp_path / "model.pt")
    (tmp_path / "notes.pt").write_text("epochs: 3\n")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint.*a text file"):
        ck.load_checkpoint(tmp_path / "notes.pt")


def test_resume_repairs_what_an_epoch_end_wrote_after_last_pt_and_refuses_what_it_cannot(tmp_path):
    """last.pt is an epoch end's commit point: a best.pt or metrics.csv left behind it is rewritten from it; a best.pt
    that holds another epoch than the best one recorded (and cannot be rebuilt) stops the run with the file named."""
    import shutil

    from imgclf.engine.resume import repair_epoch_end

    imgclf.train(data="digits", model="fastcnn-tiny", epochs=2, threads=1, out=str(tmp_path), name="r", plots=False,
                 quiet=True)
    run = tmp_path / "r"
    last = ck.load_checkpoint(run / "last.pt")
    shutil.copy(run / "last.pt", tmp_path / "epoch2.pt")
    assert repair_epoch_end(run, last) == []                          # an intact run: nothing written
    (run / "best.pt").unlink()
    (run / "metrics.csv").write_text((run / "metrics.csv").read_text().splitlines()[0] + "\n")   # rows lost
    assert repair_epoch_end(run, last) == ["best.pt", "metrics.csv"]
    assert (run / "best.pt").read_bytes() == (tmp_path / "epoch2.pt").read_bytes()
    assert len((run / "metrics.csv").read_text().splitlines()) == 3
    later = {**last, "epoch": 3, "global_step": last["global_step"] + 1}   # best epoch 2, but best.pt is gone
    (run / "best.pt").unlink()
    with pytest.raises(CheckpointError, match="best.pt: should hold epoch 2 of run .* but does not"):
        repair_epoch_end(run, later)
