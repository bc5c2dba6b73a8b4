"""An epoch's end is one transaction: a SIGKILL right after any file commit of a short run (every rename the
atomic writer makes: last.pt, best.pt, metrics.csv, steps.csv, summary.json) and a resume leave exactly the files
and figures of the uninterrupted run. The child counts the renames itself (os.replace wrapped in the process),
so the kill lands at the same write on every machine, however fast."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from kill_chain import CPU_ONLY

pytestmark = pytest.mark.slow   # the slow tier: see pyproject.toml

ARGS = ["train", "--data", "digits", "--model", "fastcnn-tiny", "--epochs", "3", "--threads", "1", "--no-plots",
        "--ema", "0.9", "--out", "out", "--name", "r"]
# SIGKILL this process right after its N-th rename: the file just committed is whole, nothing after it happened
KILL_AFTER = """
import os, signal, sys
from imgclf.cli import main
after, renames, real_replace = int(sys.argv[1]), [0], os.replace
def replace(src, dst, **kw):
    real_replace(src, dst, **kw)
    renames[0] += 1
    if renames[0] == after:
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
sys.exit(main(sys.argv[2:]))
"""
TIMING = {"seconds", "train_seconds", "test_seconds", "total_seconds", "images_per_second", "epoch_seconds",
          "matmul_gflops"}   # measured rates: the machine's pace, like the seconds
RANDOM = {"run_id", "resumed"}   # one per run, and whether the last command resumed: the killed run is two commands


def _imgclf(cwd: Path, *args: str, kill_after: int = 0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", KILL_AFTER, str(kill_after), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=CPU_ONLY, timeout=600)


def _untimed(value):
    """`value` without wall-clock figures (they differ between any two runs)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in TIMING | RANDOM}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _differences(a, b, where: str = "") -> list[str]:
    """Where `a` and `b` differ (tensors bitwise, with their dtypes), as paths into them."""
    if isinstance(a, torch.Tensor):
        same = isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
        return [] if same else [where]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where} keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {str(a)[:200]} != {str(b)[:200]}"]


def _csv_untimed(path: Path) -> list[list[str]]:
    rows = [line.split(",") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name not in TIMING]
    return [[r[i] for i in keep] for r in rows]


def _outputs(run: Path) -> dict:
    """Every file of a run folder, as what must match: checkpoints whole, tables and summary without timings."""
    files = {p.name for p in run.iterdir()}
    return {
        "files": files,
        **{name: _untimed(torch.load(run / name, weights_only=True)) for name in ("last.pt", "best.pt")},
        "metrics.csv": _csv_untimed(run / "metrics.csv"),
        "steps.csv": (run / "steps.csv").read_text(),
        "summary.json": _untimed(json.loads((run / "summary.json").read_text())),
        "config.yaml": _untimed(yaml.safe_load((run / "config.yaml").read_text())),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, int]:
    """The uninterrupted run's outputs, and how many renames it made."""
    cwd = tmp_path_factory.mktemp("reference")
    counting = KILL_AFTER.replace("sys.exit(main(sys.argv[2:]))",
                                  "code = main(sys.argv[2:]); print('RENAMES', renames[0]); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", counting, "0", *ARGS], cwd=cwd, capture_output=True, text=True,
                          env=CPU_ONLY, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    renames = int(done.stdout.rsplit("RENAMES", 1)[1])
    return _outputs(cwd / "out" / "r"), renames


def test_a_kill_after_any_write_then_resume_gives_the_uninterrupted_run(reference, tmp_path):
    ref, renames = reference
    assert renames >= 10   # config, steps, 3 × (last, best, metrics), summary: this is the run meant
    checked = []
    for n in range(1, renames + 1):
        cwd = tmp_path / f"kill{n}"
        cwd.mkdir()
        killed = _imgclf(cwd, *ARGS, kill_after=n)
        assert killed.returncode == -9, (n, killed.stderr[-1000:])
        last = cwd / "out" / "r" / "last.pt"
        if not last.exists():
            continue   # killed before the first checkpoint: there is nothing to resume, a new run starts over
        resumed = _imgclf(cwd, "train", "--resume", "out/r/last.pt")
        assert resumed.returncode == 0, (n, resumed.stderr[-2000:])
        got = _outputs(cwd / "out" / "r")
        differ = _differences(got, ref)
        assert not differ, f"killed after rename {n}, then resumed: differs from the uninterrupted run: {differ[:5]}"
        checked.append(n)
    assert len(checked) >= renames - 2, checked
