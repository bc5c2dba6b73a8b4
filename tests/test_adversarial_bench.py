"""benchmarks/adversarial_cli.py, the harness of issue 12's adversarial cases: its classifier (each outcome, on fake
results: a case that must fail is classified as failing) and a few fast real cases run through it end to end."""

import importlib.util
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("adversarial_cli", ROOT / "benchmarks" / "adversarial_cli.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["adversarial_cli"] = module      # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def fake(bench, rc, out="", err="", **kw):
    return bench.Result(["train"], rc, out, err, 1.0, **kw)


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
    ("error", dict(rc=3, err="error: refused\n", changed=["runs/b/last.pt"]), "run overwritten"),
    ("error", dict(rc=3, err="error: one\nerror: two\n"), "unclear error"),
    ("error", dict(rc=3, err="error: something went wrong\n"), "unclear error"),     # does not name 'lr'
    ("ok", dict(rc=3, err="error: broken.png: not a readable image\n"), "refused"),
    ("either", dict(rc=3, err="error: lr must be finite\n"), "clear error"),
    ("either", dict(rc=0, out="fine\n"), "ok"),
    ("ok", dict(rc=0, out="fine\n"), "ok"),
])
def test_the_classifier_names_each_outcome(bench, expect, result, outcome):
    case = bench.Case("fake", "test", expect, lambda ctx: None, names="lr" if expect == "error" else None)
    got, reason = bench.classify(case, fake(bench, **result))
    assert got == outcome, reason
    assert got in bench.OUTCOMES and reason


def test_a_failed_setup_command_is_never_ok(bench):
    case = bench.Case("fake", "test", "error", lambda ctx: None)
    assert bench.classify(case, fake(bench, 3, err="error: no data\n", setup=True))[0] == "refused"
    assert bench.classify(case, fake(bench, 1, err="internal error: KeyError\n", setup=True))[0] == "traceback"


def test_cases_are_many_unique_and_grouped_by_the_issues_headings(bench):
    ids = [c.id for c in bench.CASES]
    assert len(ids) == len(set(ids))
    default = bench.select()
    assert len(default) >= 110
    groups = {c.group for c in default}
    assert {"split", "identity", "cache", "idx", "cifar", "checkpoint", "settings", "resume", "folder",
            "predict"} <= groups
    assert all(c.expect in ("ok", "error", "either") and c.what for c in bench.CASES)
    assert [c.id for c in bench.select("^settings/config-billion")] == ["settings/config-billion-laughs"]


def test_the_run_folder_watch_sees_a_changed_file(bench, tmp_path):
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("run_id: x\n")
    (run / "summary.json").write_text("{}")
    before = bench.snapshot(bench.run_folders(tmp_path), tmp_path)
    (run / "summary.json").write_text('{"changed": 1}')
    after = bench.snapshot(bench.run_folders(tmp_path), tmp_path)
    assert [k for k in before if before[k] != after[k]] == [str(Path("runs", "a", "summary.json"))]


FAST = ["settings/config-billion-laughs", "find-lr/find-lr-steps=0", "show/show-n=-1", "idx/label-out-of-range",
        "cifar/pickle-with-code"]


def test_fast_real_cases_run_end_to_end(bench):
    """Five cases that need no shared training run, through the real CLI: each must come out a clear error."""
    cases = [c for c in bench.CASES if c.id in FAST]
    assert len(cases) == len(FAST)
    out = io.StringIO()
    counts = bench.run_cases(cases, jobs=2, out=out)
    lines = out.getvalue().splitlines()
    assert lines[-1] == f"tries 5, clear errors {counts['clear error']}, tracebacks 0, silent wrong 0, " \
                        f"runs overwritten 0, ok 0, unclear errors 0, refused 0", out.getvalue()
    assert counts["clear error"] == 5, out.getvalue()
    assert all(any(line.startswith(c) for line in lines) for c in FAST)
