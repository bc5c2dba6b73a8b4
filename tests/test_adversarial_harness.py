"""The adversarial cases' harness (tests/adversarial.py), fast: the classifier names each outcome on fake results
(a case that must fail is classified as failing), the run-folder watch sees a change, the cases are many, unique
and cover every group."""

from pathlib import Path

import pytest
from adversarial import OUTCOMES, Case, Result, classify, run_folders, select, snapshot


def fake(rc, out="", err="", **kw):
    return Result(["train"], rc, out, err, 1.0, **kw)


@pytest.mark.parametrize("expect, result, outcome", [
    ("error", dict(rc=3, err="error: setting 'lr' must be positive, at most 10000, got inf\n"), "clear error"),
    ("error", dict(rc=2, err="usage: imgclf train [-h]\nimgclf train: error: argument --lr: invalid float value\n"),
     "clear error"),
    ("error", dict(rc=3, err="warning: skipped x.png\nerror: --lr inf is not finite\n"), "clear error"),
    ("error", dict(rc=1, err="Traceback (most recent call last):\n  File \"x.py\"\nKeyError: 'model_name'\n"),
     "traceback"),
    ("error", dict(rc=3, err="Traceback (most recent call last):\n  File \"x.py\"\nValueError: bad\n"), "traceback"),
    ("ok", dict(rc=1, err="internal error: KeyError: 'x'\nthis is a bug in imgclf: please report it\n"), "traceback"),
    ("ok", dict(rc=-9), "traceback"),
    ("ok", dict(rc=None), "traceback"),
    ("error", dict(rc=0, out="test accuracy 10.00%\n"), "silent wrong"),
    ("ok", dict(rc=0, out="test accuracy nan%\n", wrong="accuracy is nan"), "silent wrong"),
    ("ok", dict(rc=0, out="done\n", changed=["runs/b/summary.json"]), "run overwritten"),
    ("error", dict(rc=3, err="error: refused to load\n", wrong="its pickled code RAN"), "silent wrong"),  # side effect
    ("error", dict(rc=3, err="error: lr\n", wrong="left a run folder behind: runs/x"), "silent wrong"),
    ("error", dict(rc=3, err="error: refused\n", changed=["runs/b/last.pt"]), "run overwritten"),
    ("error", dict(rc=3, err="error: one\nerror: two\n"), "unclear error"),
    ("error", dict(rc=3, err="error: something went wrong\n"), "unclear error"),     # does not name 'lr'
    ("ok", dict(rc=3, err="error: broken.png: not a readable image\n"), "refused"),
    ("either", dict(rc=3, err="error: lr must be finite\n"), "clear error"),
    ("either", dict(rc=0, out="fine\n"), "ok"),
    ("ok", dict(rc=0, out="fine\n"), "ok"),
])
def test_the_classifier_names_each_outcome(expect, result, outcome):
    case = Case("fake", "test", expect, lambda ctx: None, names="lr" if expect == "error" else None)
    got, reason = classify(case, fake(**result))
    assert got == outcome, reason
    assert got in OUTCOMES and reason


def test_a_failed_setup_command_is_never_ok():
    case = Case("fake", "test", "error", lambda ctx: None)
    assert classify(case, fake(3, err="error: no data\n", setup=True))[0] == "refused"
    assert classify(case, fake(1, err="internal error: KeyError\n", setup=True))[0] == "traceback"


def test_cases_are_many_unique_and_cover_every_group():
    everything = select(everything=True)
    ids = [c.id for c in everything]
    assert len(ids) == len(set(ids))
    default = select()
    assert len(default) >= 110
    groups = {c.group for c in default}
    assert {"split", "identity", "cache", "idx", "cifar", "checkpoint", "settings", "resume", "folder",
            "predict", "find-lr", "show", "report", "export"} <= groups
    assert all(c.expect in ("ok", "error", "either") and c.what for c in everything)
    assert [c.id for c in select("^settings/config-billion")] == ["settings/config-billion-laughs"]


def test_the_run_folder_watch_sees_a_changed_file(tmp_path):
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("run_id: x\n")
    (run / "summary.json").write_text("{}")
    before = snapshot(run_folders(tmp_path), tmp_path)
    (run / "summary.json").write_text('{"changed": 1}')
    after = snapshot(run_folders(tmp_path), tmp_path)
    assert [k for k in before if before[k] != after[k]] == [str(Path("runs", "a", "summary.json"))]
