"""Adversarial inputs run end to end through the `imgclf` command (issue 12): each case builds its input in a fresh
temporary folder (generated images, crafted IDX/CIFAR files, checkpoints edited from one shared tiny training run),
runs `python -m imgclf ...` as a subprocess (no GPU, its own cwd, cache and data folders) and classifies the outcome:

    ok               the expected success, and the output checked right (split unchanged, warning present, ...)
    clear error      an expected failure: exit 2 or 3, one error line naming the problem, no traceback
    traceback        a Python traceback, an internal error (exit 1), a crash or a hang
    silent wrong     exit 0 where an error, or another figure, was required (each case says what it requires)
    run overwritten  a file of a run folder that existed before the command changed, vanished or appeared
    unclear error    an expected failure whose message is not one line naming the problem
    refused          an error where success was required

    python benchmarks/adversarial_cli.py --jobs 2         # the 132 default cases: 2-7 minutes on 2 CPU cores
    python benchmarks/adversarial_cli.py --all --jobs 2   # and their variants: 284 cases, 5-12 minutes
    python benchmarks/adversarial_cli.py --only 'cache|resume' --list

Prints one line per case (group/name, outcome, a short reason), then
`tries N, clear errors N, tracebacks N, silent wrong N, runs overwritten N, ok N, unclear errors N, refused N`;
exits 1 when any case is a traceback, silent wrong, run overwritten, unclear error or refused.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TIMEOUT = 120                 # seconds per command; a command still running then is a hang
MEMORY_LIMIT = 8 << 30        # address space per command (prlimit): an absurd size fails, never swaps the machine
OUTCOMES = ("ok", "clear error", "traceback", "silent wrong", "run overwritten", "unclear error", "refused")
FAILING = ("traceback", "silent wrong", "run overwritten", "unclear error", "refused")
RUN_MARKERS = ("config.yaml", "summary.json", "last.pt", "best.pt", "lr_find.png")
TINY = ("--model", "fastcnn-tiny", "--epochs", "1", "--no-plots")


# ---------------------------------------------------------------------------------------------------------------------
# results and their classification


@dataclass
class Result:
    """What one command did. `wrong`: why a successful run's output is wrong (set by the case's own check);
    `changed`: files of pre-existing run folders that changed, vanished or appeared."""

    argv: list[str]
    rc: int | None                      # None: killed after the timeout
    out: str = ""
    err: str = ""
    seconds: float = 0.0
    wrong: str | None = None
    changed: list[str] = field(default_factory=list)
    note: str = ""
    setup: bool = False                 # a preparatory command of the case failed


@dataclass
class Case:
    name: str
    group: str
    expect: str                         # "ok", "error" or "either" (success checked, or a clear error)
    build: Callable[[Ctx], Result]
    names: str | None = None            # regex (case-insensitive) an expected error's message must match
    what: str = ""                      # what is required, one line

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}"


def error_lines(err: str) -> list[str]:
    """The lines of stderr that say what failed: warnings and argparse's usage text left out."""
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    usage = [ln for ln in lines if re.match(r"^imgclf( [\w-]+)?: error: ", ln)]
    return usage or lines


def _short(text: str, n: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"


def classify(case: Case, r: Result) -> tuple[str, str]:
    """(outcome, reason) of one case's final command (see the module docstring)."""
    text = r.out + "\n" + r.err
    if r.changed:
        return "run overwritten", f"{len(r.changed)} file(s) of an existing run changed: {', '.join(r.changed[:3])}"
    if r.rc is None:
        return "traceback", f"hung: still running after {r.seconds:.0f}s, killed"
    if "Traceback (most recent call last)" in text:
        last = [ln for ln in text.splitlines() if re.match(r"^\w[\w.]*(Error|Exception|Interrupt)\b", ln)]
        return "traceback", _short(last[-1] if last else text.strip().splitlines()[-1])
    if r.rc == 1 or "internal error" in r.err:
        return "traceback", _short(next((ln for ln in r.err.splitlines() if "internal error" in ln), f"exit {r.rc}"))
    if r.rc not in (0, 2, 3, 130):
        return "traceback", f"crashed: exit {r.rc}" + (f" ({signal.Signals(-r.rc).name})" if r.rc < 0 and
                                                       -r.rc in signal.valid_signals() else "")
    prefix = "setup: " if r.setup else ""
    if r.rc == 0:
        if case.expect == "error" and not r.setup:
            first = next((ln for ln in r.out.splitlines() if ln.strip()), "")
            return "silent wrong", _short(f"exit 0, but required: {case.what or 'an error'}"
                                          + (f"; printed: {first}" if first else ""))
        if r.wrong:
            return "silent wrong", _short(r.wrong)
        return "ok", _short(r.note or case.what or "as required")
    lines = error_lines(r.err)
    message = lines[-1] if lines else f"exit {r.rc} with nothing on stderr"
    if case.expect == "ok" or r.setup:
        return "refused", _short(f"{prefix}exit {r.rc} where success was required: {message}")
    if len(lines) != 1:
        return "unclear error", _short(f"{len(lines)} error lines: {' | '.join(lines[:3])}")
    if case.names and not re.search(case.names, message, re.IGNORECASE):
        return "unclear error", _short(f"message does not name /{case.names}/: {message}")
    return "clear error", _short(message)


# ---------------------------------------------------------------------------------------------------------------------
# running commands, watching run folders


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCLF_")}
    env.update({"PYTHONPATH": str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
                "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8", "COLUMNS": "200"})
    env.update(extra)
    return env


def run_command(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Result:
    """`python -m imgclf ARGS` in `cwd`, in its own process group (killed whole on a timeout), address space capped."""
    argv = [sys.executable, "-m", "imgclf", *map(str, args)]
    limit = [shutil.which("prlimit"), f"--as={MEMORY_LIMIT}"] if shutil.which("prlimit") else []
    t = time.perf_counter()
    proc = subprocess.Popen(limit + argv, cwd=cwd, env=_env(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    dec = lambda b: b.decode("utf-8", "replace")  # noqa: E731
    return Result([str(a) for a in args], rc, dec(out), dec(err), time.perf_counter() - t)


def run_folders(base: Path) -> list[Path]:
    """Folders under `base` that hold a run's files (config.yaml, summary.json, a checkpoint, an lr plot)."""
    found = []
    for top, _dirs, files in os.walk(base):
        if any(m in files for m in RUN_MARKERS):
            found.append(Path(top))
    return found


def snapshot(folders: list[Path], base: Path) -> dict[str, str]:
    """sha256 of every file under `folders`, by path relative to `base`."""
    out = {}
    for folder in folders:
        for top, _dirs, files in os.walk(folder):
            for f in files:
                p = Path(top) / f
                with contextlib.suppress(OSError):
                    out[str(p.relative_to(base))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class SetupFailed(Exception):
    def __init__(self, result: Result) -> None:
        super().__init__(result.err)
        self.result = result


class Ctx:
    """One case's world: a fresh folder (its cwd, cache and data dirs) and the shared fixtures."""

    def __init__(self, base: Path, fx: Fixtures, timeout: float) -> None:
        self.dir, self.fx, self.timeout = base, fx, timeout
        self.env = {"IMGCLF_CACHE_DIR": str(base / "cache"), "IMGCLF_DATA_DIR": str(base / "data-dir"),
                    "TORCH_HOME": str(base / "torch-home"), "MPLCONFIGDIR": str(base / "mpl"), "HOME": str(base)}

    def p(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def cli(self, *args: Any, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
        return run_command([str(a) for a in args], cwd or self.dir, {**self.env, **(env or {})}, self.timeout)

    def prep(self, *args: Any, **kw: Any) -> Result:
        """A preparatory command that must succeed (else the case reports the failure as its outcome)."""
        r = self.cli(*args, **kw)
        if r.rc != 0:
            r.setup = True
            raise SetupFailed(r)
        return r

    def run(self, *args: Any, writes: tuple[Path, ...] = (), protect: tuple[Path, ...] = (), **kw: Any) -> Result:
        """The case's command: every run folder under the case's folder (and `protect`) is hashed before and after;
        `writes` (folders or files) may change."""
        allowed = [str(Path(w).relative_to(self.dir)) for w in writes]
        folders = [f for f in run_folders(self.dir) + [Path(x) for x in protect]]
        before = snapshot(folders, self.dir)
        r = self.cli(*args, **kw)
        after = snapshot(folders, self.dir)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        r.changed = [k for k in changed if not any(k == a or k.startswith(a + os.sep) for a in allowed)]
        return r

    # shared runs, copied into the case's folder (a case never touches a fixture)

    def digits_run(self, name: str = "digits") -> Path:
        dst = self.p("runs", name)
        shutil.copytree(self.fx.digits_run(), dst)
        return dst

    def other_run(self, name: str) -> Path:
        """A copy of the digits run given its own run id, as a second, unrelated run."""
        dst = self.digits_run(name)
        new_id = hashlib.sha256(name.encode()).hexdigest()[:12]
        cfg = (dst / "config.yaml").read_text()
        (dst / "config.yaml").write_text(re.sub(r"(?m)^run_id: .*$", f"run_id: {new_id}", cfg))
        for pt in dst.glob("*.pt"):
            edit_checkpoint(pt, pt, lambda c: c.update(run_id=new_id))
        return dst

    def craft(self, name: str, edit: Callable[[dict], Any]) -> Path:
        """The digits run's best.pt edited by `edit` (the dict in place), saved as NAME in the case's folder."""
        dst = self.p(name)
        edit_checkpoint(self.fx.digits_run() / "best.pt", dst, edit)
        return dst

    def folder_run(self, where: str = "a", data: str = "shapes", *extra: str, **folder: Any) -> tuple[Path, Path]:
        """An image folder WHERE/DATA and a tiny run trained on it from cwd WHERE with a relative --data:
        (the data folder, the run folder WHERE/runs/r)."""
        cwd = self.p(where)
        make_folder(cwd / data, **folder)
        self.prep("train", "--data", data, *TINY, "--out", "runs", "--name", "r", *extra, cwd=cwd)
        return cwd / data, cwd / "runs" / "r"


def edit_checkpoint(src: Path, dst: Path, edit: Callable[[dict], Any]) -> None:
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dst)


class Fixtures:
    """Runs shared by all cases, built once on first use (one tiny digits run: fastcnn-tiny, 1 epoch)."""

    def __init__(self, root: Path, timeout: float) -> None:
        self.root, self.timeout = root, timeout
        self._lock = threading.Lock()
        self._digits: Path | None = None

    def digits_run(self) -> Path:
        with self._lock:
            if self._digits is None:
                cwd = self.root / "digits"
                cwd.mkdir(parents=True)
                r = run_command(["train", "--data", "digits", *TINY, "--out", "runs", "--name", "digits"], cwd,
                                {"IMGCLF_CACHE_DIR": str(cwd / "cache"), "MPLCONFIGDIR": str(cwd / "mpl")},
                                self.timeout)
                if r.rc != 0:
                    raise RuntimeError(f"the shared digits run failed (exit {r.rc}): {r.err[-2000:]}")
                self._digits = cwd / "runs" / "digits"
            return self._digits


# ---------------------------------------------------------------------------------------------------------------------
# crafted inputs


def shape_image(kind: int, size: int, rng: np.random.Generator, channels: int = 3) -> np.ndarray:
    """A noisy image with a bright disc (even kind) or square (odd kind): classes a model can tell apart."""
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.integers(size // 3, max(size // 3 + 1, 2 * size // 3), 2)
    r = max(1, size // 4)
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) if kind % 2 == 0 else ((abs(yy - cy) <= r) & (abs(xx - cx) <= r))
    img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    img[mask] = [200, 180, (60 * kind) % 255]
    return img if channels == 3 else img.mean(axis=2).astype(np.uint8)


def make_folder(root: Path, classes: tuple[str, ...] = ("circle", "square"), per_class: int = 10, size: int = 12,
                ext: str = ".png", seed: int = 0, channels: int = 3, start: int = 0) -> Path:
    """root/<class>/NNN.ext generated images (files numbered from `start`)."""
    rng = np.random.default_rng(seed)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_class):
            Image.fromarray(shape_image(ci, size, rng, channels)).save(root / c / f"{i:03d}{ext}")
    return root


def save_image(path: Path, size: int | tuple[int, int] = 12, seed: int = 0, kind: int = 0, channels: int = 3,
               **save: Any) -> Path:
    w, h = (size, size) if isinstance(size, int) else size
    img = shape_image(kind, max(w, h), np.random.default_rng(seed), channels)[:h, :w]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, **save)
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width×height pixels (a decompression bomb's header; the data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def holdout_side(key: str, purpose: str = "test", seed: int = 0, fraction: float = 0.2) -> bool:
    """Whether imgclf holds `key` (a file's path relative to the folder) out of train for `purpose` (its own rule)."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    from imgclf.data.split import stable_holdout

    return len(stable_holdout([key], fraction, seed, purpose)[1]) == 1


def names_on_side(cls: str, test: bool, n: int, start: int = 500, ext: str = ".png") -> list[str]:
    """`n` file names in class `cls` that land in the test split (test=True) or out of it."""
    out, i = [], start
    while len(out) < n:
        name = f"{i:03d}{ext}"
        if holdout_side(f"{cls}/{name}") == test:
            out.append(name)
        i += 1
    return out


def idx_bytes(array: np.ndarray | None = None, *, dtype_code: int = 0x08, dims: list[int] | None = None,
              data: bytes | None = None, magic: bytes = b"\0\0") -> bytes:
    dims = list(array.shape) if dims is None else dims
    data = np.ascontiguousarray(array, dtype=np.uint8).tobytes() if data is None else data
    return magic + bytes([dtype_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def mnist_dir(ctx: Ctx, folder: str = "mn", n_train: int = 40, n_test: int = 20, size: int = 28,
              **replace: bytes | None) -> Path:
    """A tiny MNIST in the official gzipped IDX files; `replace` maps a key (train_images, train_labels,
    test_images, test_labels) to the raw (uncompressed) bytes to write instead, or None to leave the file out."""
    root = ctx.p(folder)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {"train_images": ("train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, size, size))),
             "train_labels": ("train-labels-idx1-ubyte.gz", np.arange(n_train) % 10),
             "test_images": ("t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, size, size))),
             "test_labels": ("t10k-labels-idx1-ubyte.gz", np.arange(n_test) % 10)}
    for key, (name, array) in files.items():
        if key in replace and replace[key] is None:
            continue
        raw = replace.get(key) or idx_bytes(array)
        (root / name).write_bytes(gzip.compress(raw, compresslevel=1))
    return root


CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def cifar_batch(n: int = 6, seed: int = 0, labels: Any = None, data: Any = None, **extra: Any) -> bytes:
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"b", b"labels": list(range(n)) if labels is None else labels,
         b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8) if data is None else data,
         b"filenames": [f"{i}.png".encode() for i in range(n)]}
    d.update({k.encode(): v for k, v in extra.items()})
    return pickle.dumps(d, protocol=2)


def cifar_dir(ctx: Ctx, **replace: bytes | None) -> Path:
    """A tiny CIFAR-10 python-version folder (5 train batches of 6, a test batch of 10) in data-dir cf/;
    `replace` maps a member name (data_batch_1, test_batch, batches.meta) to its bytes, or None to leave it out."""
    root = ctx.p("cf", "cifar-10-batches-py")
    root.mkdir(parents=True)
    members = {f"data_batch_{i}": cifar_batch(6, seed=i) for i in range(1, 6)}
    members["test_batch"] = cifar_batch(10, seed=9)
    members["batches.meta"] = pickle.dumps({b"label_names": CIFAR_NAMES, b"num_vis": 3072}, protocol=2)
    for name, data in members.items():
        data = replace.get(name, data)
        if data is not None:
            (root / name).write_bytes(data)
    return ctx.p("cf")


class _Evil:
    """Pickles to os.system('touch PWNED'): a file that would run code when unpickled."""

    def __reduce__(self) -> tuple:
        return os.system, ("touch PWNED",)


# ---------------------------------------------------------------------------------------------------------------------
# the cases

CASES: list[Case] = []


def case(group: str, expect: str, names: str | None = None, what: str = "") -> Callable:
    """Register a case built by the decorated function (its name, with _ as -, is the case's name)."""
    def deco(fn: Callable[[Ctx], Result]) -> Callable[[Ctx], Result]:
        CASES.append(Case(fn.__name__.replace("_", "-"), group, expect, fn, names, what or (fn.__doc__ or "")))
        return fn
    return deco


def simple(group: str, name: str, args: Callable[[Ctx], list[Any]] | list[Any], expect: str = "error",
           names: str | None = None, what: str = "") -> None:
    """Register a case that is one command (args, or a function of the case's folder returning them)."""
    CASES.append(Case(name, group, expect, lambda ctx: ctx.run(*(args(ctx) if callable(args) else args)), names,
                      what))


def flag_name(args: list[str]) -> str:
    """A case name from flags: ['--n', '-1'] → 'n=-1', ['--seed', str(2**70)] → 'seed=2^70'."""
    out, i = [], 0
    while i < len(args):
        flag, value = args[i].lstrip("-").partition("=")[::2], None
        if not flag[1] and i + 1 < len(args) and not args[i + 1].startswith("--"):
            value, i = args[i + 1], i + 1
        value = value if value is not None else flag[1]
        value = "2^70" if value == str(2**70) else value.replace("/", "_")
        out.append(f"{flag[0]}={value}" if value else flag[0])
        i += 1
    return "-".join(out)


def require_text(r: Result, *texts: str, where: str = "output") -> Result:
    """A successful result is wrong unless every text appears in its output (stdout or stderr, case-insensitive)."""
    if r.rc == 0:
        missing = [t for t in texts if t.lower() not in (r.out + r.err).lower()]
        if missing:
            r.wrong = f"{where} lacks {', '.join(repr(m) for m in missing)}"
    return r


def forbid_text(r: Result, *texts: str) -> Result:
    """A successful result is wrong if any text appears in its output (case-insensitive)."""
    if r.rc == 0:
        found = [t for t in texts if t.lower() in (r.out + r.err).lower()]
        if found:
            r.wrong = f"output says {found[0]!r}: " + _short(next(ln for ln in (r.out + r.err).splitlines()
                                                                  if found[0].lower() in ln.lower()), 110)
    return r


def run_config(run: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


def json_out(r: Result) -> Any:
    try:
        return json.loads(r.out)
    except ValueError:
        return None


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
    found = sorted(ctx.p("cache").glob(f"*.{part}"))
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
    return cache_case(ctx, lambda _: make_read_only(ctx.p("cache")))


@case("cache", "ok", what="a read-only cache folder holding a truncated entry: decoded again, from memory")
def read_only_cache_folder_damaged_entry(ctx: Ctx) -> Result:
    def mutate(_: Path) -> None:
        p = cache_entry(ctx, "images.npy")
        p.write_bytes(p.read_bytes()[:100])
        make_read_only(ctx.p("cache"))
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


# ----- crafted checkpoints: eval and predict --------------------------------------------------------------------------


def _tensors(edit: Callable[[Any], Any]) -> Callable[[dict], None]:
    def apply(c: dict) -> None:
        c["model"] = {k: edit(v) if v.is_floating_point() else v for k, v in c["model"].items()}
    return apply


def _set(**values: Any) -> Callable[[dict], None]:
    def apply(c: dict) -> None:
        for k, v in values.items():
            if v is _DROP:
                c.pop(k, None)
            else:
                c[k] = v
    return apply


def _args(**values: Any) -> Callable[[dict], None]:
    def apply(c: dict) -> None:
        c["model_args"] = {**c["model_args"], **values}
    return apply


_DROP = object()


def _nan(v: Any) -> Any:
    return v * float("nan")


def _one_nan(c: dict) -> None:
    w = next(k for k in c["model"] if k.endswith("conv1.weight"))
    c["model"][w] = c["model"][w].contiguous().clone()
    c["model"][w].view(-1)[3] = float("nan")


def _drop_key(c: dict) -> None:
    c["model"].pop(next(k for k in c["model"] if k.endswith("conv2.weight")))


def _extra_key(c: dict) -> None:
    import torch

    c["model"]["extra.weight"] = torch.zeros(3)


def _ema_tensor(c: dict) -> None:
    import torch

    c["ema"] = torch.zeros(3)


def _ckpt(edit: Callable[[dict], Any], command: str = "eval", *extra: str) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        path = ctx.craft("crafted.pt", edit)
        if command == "predict":
            return ctx.run("predict", path, save_image(ctx.p("img.png"), 8, channels=1), *extra)
        return ctx.run(command, path, *extra)
    return build


NAN = "nan|finite|infinite"
CASES += [
    Case("nan-weights-eval", "checkpoint", "error", _ckpt(_tensors(_nan)), names=NAN,
         what="eval of a checkpoint whose weights are NaN: an error, not a figure"),
    Case("nan-weights-predict", "checkpoint", "error", _ckpt(_tensors(_nan), "predict"), names=NAN,
         what="predict with NaN weights: an error, not a class"),
    Case("inf-weights-eval", "checkpoint", "error", _ckpt(_tensors(lambda v: v * float("inf"))), names=NAN,
         what="eval with infinite weights"),
    Case("one-nan-weight-eval", "checkpoint", "error", _ckpt(_one_nan), names=NAN,
         what="eval with a single NaN in one conv weight"),
    Case("missing-model-name", "checkpoint", "error", _ckpt(_set(model_name=_DROP)), names="model",
         what="a checkpoint without model_name"),
    Case("model-name-unknown", "checkpoint", "error", _ckpt(_set(model_name="resnet99")), names="resnet99",
         what="model_name resnet99"),
    Case("model-name-not-text", "checkpoint", "error", _ckpt(_set(model_name=5)), names="model",
         what="model_name 5"),
    Case("unknown-act", "checkpoint", "error", _ckpt(_args(act="swish")), names="act|swish",
         what="model_args act 'swish'"),
    Case("act-not-text", "checkpoint", "error", _ckpt(_args(act=5)), names="act", what="model_args act 5"),
    Case("absurd-image-size", "checkpoint", "error", _ckpt(_args(image_size=[100000, 100000])), names="size",
         what="model_args image_size 100000×100000: an error before any allocation"),
    Case("absurd-image-size-predict", "checkpoint", "error", _ckpt(_args(image_size=[100000, 100000]), "predict"),
         names="size", what="predict with image_size 100000×100000"),
    Case("zero-image-size", "checkpoint", "error", _ckpt(_args(image_size=[0, 0])), names="size",
         what="image_size 0×0"),
    Case("negative-image-size", "checkpoint", "error", _ckpt(_args(image_size=[-8, -8])), names="size",
         what="image_size -8×-8"),
    Case("image-size-not-numbers", "checkpoint", "error", _ckpt(_args(image_size=["a", "b"])), names="size",
         what="image_size ['a', 'b']"),
    Case("in-channels-mismatch", "checkpoint", "error", _ckpt(_args(in_channels=3)), names="channel|shape|fit|normali",
         what="model_args in_channels 3 for 1-channel weights"),
    Case("future-format-version", "checkpoint", "error", _ckpt(_set(format_version=99)), names="format",
         what="format_version 99"),
    Case("format-version-text", "checkpoint", "error", _ckpt(_set(format_version="1")), names="format",
         what="format_version '1'"),
    Case("weights-not-a-dict", "checkpoint", "error", _ckpt(_set(model=[1, 2])), names="model|weights",
         what="'model' is a list"),
    Case("class-count-mismatch", "checkpoint", "error", _ckpt(_set(classes=["a", "b", "c", "d", "e"])),
         names="class", what="5 class names for 10 outputs"),
    Case("classes-missing", "checkpoint", "error", _ckpt(_set(classes=_DROP)), names="class",
         what="no class names"),
    Case("classes-none-predict", "checkpoint", "error", _ckpt(_set(classes=None), "predict"), names="class",
         what="class names None"),
    Case("normalization-missing", "checkpoint", "error", _ckpt(_set(normalization=_DROP)), names="normali",
         what="no normalization"),
    Case("zero-std", "checkpoint", "error", _ckpt(_set(normalization={"mean": [0.5], "std": [0.0]})),
         names="std|normali", what="normalization std 0 (every input would become inf/NaN)"),
    Case("nan-mean-predict", "checkpoint", "error",
         _ckpt(_set(normalization={"mean": [float("nan")], "std": [0.5]}), "predict"),
         names="mean|normali|nan", what="normalization mean NaN"),
    Case("config-missing-eval", "checkpoint", "error", _ckpt(_set(config=_DROP)), names="data|config",
         what="eval of a checkpoint without its config: an error asking for --data"),
    Case("model-args-missing", "checkpoint", "error", _ckpt(_set(model_args=_DROP)), names="model_args|args",
         what="no model_args"),
    Case("weight-missing", "checkpoint", "error", _ckpt(_drop_key), names="missing", what="a conv weight left out"),
    Case("weight-unexpected", "checkpoint", "error", _ckpt(_extra_key), names="unexpected|extra",
         what="an extra weight"),
    Case("ema-not-a-dict", "checkpoint", "error", _ckpt(_ema_tensor), names="ema", what="'ema' is a tensor"),
]


@case("checkpoint", "either", what="members re-zipped with deflate: loads with the same accuracy, or a clear error")
def compressed_zip_members(ctx: Ctx) -> Result:
    src = ctx.fx.digits_run() / "best.pt"
    dst = ctx.p("deflated.pt")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename), compress_type=zipfile.ZIP_DEFLATED)
    r = ctx.run("eval", dst, "--json")
    want = json.loads((ctx.fx.digits_run() / "summary.json").read_text())["test_accuracy"]
    res = json_out(r)
    if r.rc == 0 and (not isinstance(res, dict) or res.get("accuracy") != want):
        r.wrong = f"accuracy {res and res.get('accuracy')} where the checkpoint's run measured {want}"
    return r


def _bytes_ckpt(make: Callable[[bytes], bytes], names: str, what: str, name: str) -> None:
    def build(ctx: Ctx) -> Result:
        p = ctx.p("bad.pt")
        p.write_bytes(make((ctx.fx.digits_run() / "best.pt").read_bytes()))
        return ctx.run("eval", p)
    CASES.append(Case(name, "checkpoint", "error", build, names, what))


_bytes_ckpt(lambda b: b[:len(b) // 2], "bad.pt", "a checkpoint cut in half", "truncated")
_bytes_ckpt(lambda b: b"", "bad.pt", "a 0-byte checkpoint", "empty-file")
_bytes_ckpt(lambda b: os.urandom(4096), "bad.pt", "4 KB of random bytes", "random-bytes")


@case("checkpoint", "error", names="refus|code|python objects", what="a .pt whose pickle calls os.system: refused")
def pickled_code(ctx: Ctx) -> Result:
    import torch

    torch.save({"format_version": 1, "model": {}, "payload": _Evil()}, ctx.p("evil.pt"))
    r = ctx.run("eval", ctx.p("evil.pt"))
    if ctx.p("PWNED").exists():
        r.wrong = "the checkpoint's pickled code RAN (PWNED was created)"
    return r


@case("checkpoint", "error", names="best.pt", what="a folder named best.pt")
def checkpoint_is_a_folder(ctx: Ctx) -> Result:
    ctx.p("best.pt").mkdir()
    return ctx.run("eval", ctx.p("best.pt"))


def _bare(ctx: Ctx) -> Path:
    import torch

    state = torch.load(ctx.fx.digits_run() / "best.pt", map_location="cpu", weights_only=True)["model"]
    torch.save(state, ctx.p("bare.pth"))
    return ctx.p("bare.pth")


@case("checkpoint", "error", names="--model", what="predict with a bare state_dict and no --model")
def bare_state_dict_without_model(ctx: Ctx) -> Result:
    return ctx.run("predict", _bare(ctx), save_image(ctx.p("img.png"), 8, channels=1))


@case("checkpoint", "ok", what="control: predict with a bare state_dict and --model fastcnn-tiny")
def bare_state_dict_with_model(ctx: Ctx) -> Result:
    return ctx.run("predict", _bare(ctx), save_image(ctx.p("img.png"), 8, channels=1), "--model", "fastcnn-tiny")


# ----- settings: flags and --config files ---------------------------------------------------------------------------


def train_args(*extra: Any) -> list[Any]:
    return ["train", "--data", "digits", *TINY, "--out", "runs", *extra]


for _flag, _value, _names in [
        ("--lr", "inf", "lr"), ("--lr", "nan", "lr"), ("--lr", "-0.1", "lr"), ("--lr", "0", "lr"),
        ("--momentum", "nan", "momentum"), ("--weight-decay", "nan", "weight.decay"),
        ("--weight-decay", "-1", "weight.decay"), ("--warmup", "inf", "warmup"), ("--warmup", "nan", "warmup"),
        ("--label-smoothing", "nan", "smoothing"), ("--image-size", "0", "image.size"),
        ("--image-size", "1", "image.size"), ("--image-size", "-4", "image.size"),
        ("--image-size", "100000", "image.size"), ("--threads", "-1", "threads"), ("--threads", "100000", "threads"),
        ("--seed", str(2**70), "seed"), ("--seed", "-1", "seed"), ("--epochs", "0", "epochs"),
        ("--batch-size", "0", "batch"), ("--batch-size", "100000", "batch"), ("--eval-every", "0", "eval.every"),
        ("--save-every-steps", "-1", "save.every"), ("--log-every", "-1", "log.every"), ("--cutout", "-1", "cutout"),
        ("--freeze-epochs", "5", "freeze"), ("--val-split", "nan", "val.split"), ("--device", "cuda", "cuda"),
        ("--device", "banana", "banana|device"), ("--device", "cuda:99", "cuda"), ("--model", "resnet99", "resnet99"),
        ("--recipe", "fastest", "recipe"), ("--data", "no/such/folder", "no/such/folder"),
        ("--init-weights", "missing.pt", "missing.pt"), ("--pretrained", None, "pretrained|fastcnn-tiny"),
        ("--out", "afile/runs", "afile|out"), ("--resize", "stretch", "resize")]:
    _args_ = [_flag] if _value is None else [f"{_flag}={_value}"]

    def _build(ctx: Ctx, a: list[str] = _args_) -> Result:
        ctx.p("afile").write_text("not a folder")
        return ctx.run(*train_args(*a))
    CASES.append(Case(flag_name(_args_), "settings", "error", _build,
                      _names, f"train {' '.join(_args_)}: an error naming it, before any work"))

simple("settings", "seed-largest-allowed", train_args("--seed", str(2**63 - 1)), "ok",
       what="the largest seed (2^63-1) trains")
simple("settings", "crop-pad-beyond-image", train_args("--crop-pad", "100"), "either", "crop.pad",
       what="--crop-pad 100 on 8×8 images: trains, or an error naming --crop-pad")
simple("settings", "progressive-on-fixed-size-net",
       train_args("--model", "tutorial-net", "--image-size", "32", "--epochs", "2", "--progressive-size", "8",
                  "--progressive-epochs", "1"),
       names="progressive", what="progressive resizing with a fixed-size network")
simple("settings", "precision-fp16-on-cpu", train_args("--precision", "amp-fp16"), "either", "fp16|precision",
       what="amp-fp16 on a CPU: trains (with a note), or an error naming it")
simple("settings", "data-empty-string", train_args("--data="), names="data|folder|class",
       what="--data '' (the cwd, which holds no class folders)")


@case("settings", "error", names="nan|finite|weights", what="--init-weights from a checkpoint whose weights are NaN")
def init_weights_nan(ctx: Ctx) -> Result:
    ctx.craft("nan.pt", _tensors(_nan))
    return ctx.run(*train_args("--init-weights", "nan.pt"))


@case("settings", "either", what="--name ../escape: a run folder inside --out, or an error naming --name")
def name_escapes_out(ctx: Ctx) -> Result:
    r = ctx.run(*train_args("--name", "../../escape"))
    if r.rc == 0 and not any(ctx.p("runs").rglob("summary.json")):
        r.wrong = "the run folder was made outside --out: " + ", ".join(
            str(p.parent) for p in ctx.dir.parent.rglob("escape*/summary.json"))
    return r


def _config_case(name: str, text: str | bytes, names: str, what: str, expect: str = "error",
                 suffix: str = ".yaml") -> None:
    def build(ctx: Ctx) -> Result:
        p = ctx.p("settings" + suffix)
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        t = time.perf_counter()
        r = ctx.run(*train_args("--config", p))
        if r.rc != 0 and time.perf_counter() - t > 30:
            r.wrong = f"took {time.perf_counter() - t:.0f}s to refuse it"
        return r
    CASES.append(Case(name, "settings", expect, build, names, what))


_LOL = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + "epochs: *i\n"
for _n, _text, _names, _what in [
        ("config-int-key", "1: 2\n", "name|text|1", "a setting named 1"),
        ("config-bool-key", "true: 2\n", "name|text|true", "a setting named true"),
        ("config-null-key", "null: 2\n", "name|text|none", "a setting named null"),
        ("config-billion-laughs", _LOL, "alias", "YAML billion laughs: refused quickly"),
        ("config-list", "- epochs\n- 1\n", "mapping", "a list, not a mapping"),
        ("config-nested-value", "epochs: {a: 1}\n", "epochs", "epochs: {a: 1}"),
        ("config-unknown-key", "epochz: 1\n", "epochz", "an unknown setting"),
        ("config-inf-lr", "lr: .inf\n", "lr", "lr: .inf"),
        ("config-huge-threads", f"threads: {10**30}\n", "threads", "threads: 10^30"),
        ("config-binary", b"\xff\xfe\x00garbage\x00", "settings.yaml|parse", "binary garbage"),
        ("config-long-value", "epochs: " + "x" * 100_000 + "\n", "epochs", "a 100 KB value (message stays short)")]:
    _config_case(_n, _text, _names, _what)
_config_case("config-bad-toml", "epochs = = 1\n", "settings.toml|parse", "malformed TOML", suffix=".toml")
simple("settings", "config-missing-file", train_args("--config", "nope.yaml"), names="nope.yaml",
       what="--config of a missing file")


@case("settings", "error", names="cfgdir", what="--config of a folder")
def config_is_a_folder(ctx: Ctx) -> Result:
    ctx.p("cfgdir.yaml").mkdir()
    return ctx.run(*train_args("--config", "cfgdir.yaml"))


@case("settings", "ok", what="a run's own config.yaml is accepted by --config: a new run NAME-2, the old one untouched")
def config_is_a_runs_own_config_yaml(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    r = ctx.run("train", "--config", run / "config.yaml")
    if r.rc == 0 and not ctx.p("runs", "digits-2", "summary.json").is_file():
        r.wrong = "no new run folder runs/digits-2 with a summary.json"
    return r


@case("settings", "ok", what="... and with flags on top (--epochs 1 --name again)")
def config_own_config_yaml_with_flags(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    r = ctx.run("train", "--config", run / "config.yaml", "--epochs", "1", "--name", "again")
    if r.rc == 0 and not ctx.p("runs", "again", "summary.json").is_file():
        r.wrong = "no new run folder runs/again"
    return r


# ----- find-lr and show ---------------------------------------------------------------------------------------------

for _args_, _names in [(["--steps", "0"], "steps"), (["--steps", "-5"], "steps"), (["--min-lr", "0"], "min.lr"),
                       (["--min-lr=-1"], "min.lr"), (["--min-lr", "nan"], "min.lr"), (["--max-lr", "inf"], "max.lr"),
                       (["--max-lr", "nan"], "max.lr"), (["--min-lr", "1", "--max-lr", "0.1"], "max.lr")]:
    simple("find-lr", "find-lr-" + flag_name(_args_),
           ["find-lr", "--model", "fastcnn-tiny", *_args_, "--out", "lr"], names=_names,
           what=f"find-lr {' '.join(_args_)}: an error naming it, no run folder")


@case("find-lr", "ok", what="find-lr twice with one --name: lr/x and lr/x-2, the first plot untouched")
def find_lr_twice(ctx: Ctx) -> Result:
    cmd = ("find-lr", "--model", "fastcnn-tiny", "--steps", "5", "--batch-size", "32", "--out", "lr", "--name", "x")
    ctx.prep(*cmd)
    r = ctx.run(*cmd)
    if r.rc == 0 and not ctx.p("lr", "x-2", "lr_find.png").is_file():
        r.wrong = "no lr/x-2/lr_find.png"
    return r


for _args_, _names in [(["--n", "-1"], "--n"), (["--n", "0"], "--n"), (["--seed", str(2**70)], "seed"),
                       (["--image-size", "0"], "image.size"), (["--image-size", "100000"], "image.size"),
                       (["--augmented", "--n", "-1"], "--n"), (["--data", "no-such-data"], "no-such-data")]:
    simple("show", "show-" + flag_name(_args_), ["show", "--data", "digits", *_args_],
           names=_names, what=f"show {' '.join(_args_)}: an error naming it")
simple("show", "show-n-more-than-images", ["show", "--data", "digits", "--n", "100000", "--out", "g.png"], "ok",
       what="--n 100000 draws every image, promptly")
simple("show", "show-split-val", ["show", "--data", "digits", "--split", "val", "--out", "g.png"], "ok",
       what="control: the val hold-out")


@case("show", "error", names="adir", what="--out naming an existing folder")
def show_out_is_a_folder(ctx: Ctx) -> Result:
    ctx.p("adir").mkdir()
    return ctx.run("show", "--data", "digits", "--out", "adir")


# ----- --resume and run folders -------------------------------------------------------------------------------------

OTHER_RUN = "belongs to|another run|other run|overwrite"


def _into_other_run(prepare: Callable[[Path], Any], as_name: str = "mine.pt") -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        a, b = ctx.digits_run("a"), ctx.other_run("b")
        prepare(b)
        shutil.copy(a / "last.pt", b / as_name)
        return ctx.run("train", "--resume", b / as_name)
    return build


CASES += [
    Case("last-pt-copied-over-other-runs-last-pt", "resume", "error", _into_other_run(lambda b: None, "last.pt"),
         OTHER_RUN, "run A's last.pt copied over run B's last.pt, resumed: refused, B untouched"),
    Case("last-pt-copied-into-other-run", "resume", "error", _into_other_run(lambda b: None), OTHER_RUN,
         "run A's last.pt copied into B's folder as mine.pt: refused, B untouched"),
    Case("other-run-without-config-yaml", "resume", "error",
         _into_other_run(lambda b: (b / "config.yaml").unlink()), OTHER_RUN,
         "... into a folder of B whose config.yaml is gone (B's checkpoints say whose it is): refused"),
    Case("other-run-with-damaged-config-yaml", "resume", "error",
         _into_other_run(lambda b: (b / "config.yaml").write_text("{{{ not yaml")), OTHER_RUN,
         "... whose config.yaml is damaged: refused"),
    Case("other-run-config-without-run-id", "resume", "error",
         _into_other_run(lambda b: (b / "config.yaml").write_text(
             re.sub(r"(?m)^run_id: .*\n", "", (b / "config.yaml").read_text()))), OTHER_RUN,
         "... whose config.yaml records no run id: refused"),
]


@case("resume", "error", names="last.pt|further", what="resume from a best.pt older than the folder's last.pt")
def best_older_than_last(ctx: Ctx) -> Result:
    a = ctx.digits_run("a")
    edit_checkpoint(a / "best.pt", a / "best.pt", lambda c: c.update(global_step=1))
    return ctx.run("train", "--resume", a / "best.pt")


for _args_, _names in [(["--lr", "0.5"], "--lr"), (["--epochs", "3"], "--epochs"),
                       (["--lr", "0.5", "--batch-size", "7"], "--lr.*--batch-size|--batch-size.*--lr"),
                       (["--model", "mlp"], "--model"), (["--data", "mnist"], "--data"),
                       (["--name", "other"], "--name"),
                       (["--out", "elsewhere"], "--out"), (["--seed", "3"], "--seed"),
                       (["--image-size", "16"], "--image-size")]:
    def _resume_flags(ctx: Ctx, a: list[str] = _args_) -> Result:
        run = ctx.digits_run()
        return ctx.run("train", "--resume", run / "last.pt", *a)
    CASES.append(Case("changed-" + "-".join(a[2:] for a in _args_[::2]), "resume", "error", _resume_flags, _names,
                      f"--resume with {' '.join(_args_)}: an error naming the flag(s), run untouched"))


@case("resume", "error", names="lr", what="--resume with a --config file that changes lr: an error naming lr")
def changed_by_config_file(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    ctx.p("c.yaml").write_text("lr: 0.5\n")
    return ctx.run("train", "--resume", run / "last.pt", "--config", "c.yaml")


@case("resume", "ok", what="--resume with the run's own config.yaml as --config")
def own_config_yaml(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("train", "--resume", run / "last.pt", "--config", run / "config.yaml", writes=(run,))


@case("resume", "ok", what="--resume with the flags that may change (--threads --log-every --save-every-steps "
                           "--no-plots --device cpu)")
def allowed_flags(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("train", "--resume", run / "last.pt", "--threads", "1", "--log-every", "5", "--save-every-steps",
                   "3", "--no-plots", "--device", "cpu", writes=(run,))


@case("resume", "ok", what="--resume repeating a setting at its recorded value (--lr as saved)")
def same_value_flag(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("train", "--resume", run / "last.pt", "--lr", repr(run_config(run)["lr"]), writes=(run,))


@case("resume", "ok", what="resuming a finished run re-tests it: the same test accuracy as recorded")
def finished_run_retested(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    before = json.loads((run / "summary.json").read_text())["test_accuracy"]
    r = ctx.run("train", "--resume", run / "last.pt", writes=(run,))
    after = json.loads((run / "summary.json").read_text())["test_accuracy"]
    if r.rc == 0 and after != before:
        r.wrong = f"test accuracy {after} after resuming, {before} recorded"
    return r


@case("resume", "error", names="state_dict", what="--resume from a bare state_dict")
def bare_state_dict(ctx: Ctx) -> Result:
    return ctx.run("train", "--resume", _bare(ctx))


simple("resume", "missing-file", ["train", "--resume", "runs/nope/last.pt"], names="nope", what="--resume of no file")


@case("resume", "ok", what="a copy of a whole run folder resumes in the copy; the original untouched")
def whole_folder_copy(ctx: Ctx) -> Result:
    a = ctx.digits_run("a")
    shutil.copytree(a, ctx.p("runs", "a-copy"))
    return ctx.run("train", "--resume", ctx.p("runs", "a-copy", "last.pt"), writes=(ctx.p("runs", "a-copy"),))


@case("resume", "ok", what="a renamed run folder resumes in place")
def renamed_run_folder(ctx: Ctx) -> Result:
    a = ctx.digits_run("a")
    a.rename(ctx.p("runs", "renamed"))
    return ctx.run("train", "--resume", ctx.p("runs", "renamed", "last.pt"), writes=(ctx.p("runs", "renamed"),))


@case("resume", "ok", what="a last.pt alone in an empty folder resumes there")
def lone_checkpoint(ctx: Ctx) -> Result:
    ctx.p("lone").mkdir()
    shutil.copy(ctx.fx.digits_run() / "last.pt", ctx.p("lone", "last.pt"))
    return ctx.run("train", "--resume", ctx.p("lone", "last.pt"), writes=(ctx.p("lone"),))


@case("resume", "error", names="last.pt", what="resume from best.pt beside a damaged last.pt: an error naming it")
def damaged_last_beside_best(ctx: Ctx) -> Result:
    a = ctx.digits_run("a")
    (a / "last.pt").write_bytes((a / "last.pt").read_bytes()[:1000])
    return ctx.run("train", "--resume", a / "best.pt")


@case("resume", "error", names=NAN, what="resume from a last.pt with NaN weights: refused; the run's summary kept")
def nan_weights_last(ctx: Ctx) -> Result:
    a = ctx.digits_run("a")
    edit_checkpoint(a / "last.pt", a / "last.pt", _tensors(_nan))
    return ctx.run("train", "--resume", a / "last.pt")


@case("resume", "ok", what="--resume --print-config prints the settings and writes nothing")
def print_config(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return require_text(ctx.run("train", "--resume", run / "last.pt", "--print-config"), "fastcnn-tiny")


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
         _folder(lambda d: ((d / "circle").rename(d / "猫 cat"), (d / "square").rename(d / "Ünïcode")), "--json"
                 if False else "--name", "u"),
         what="class folders named '猫 cat' and 'Ünïcode'"),
    Case("test-split-0.99", "folder", "error", _folder(lambda d: None, "--test-split", "0.99"),
         names="test|train|few|empty", what="--test-split 0.99 leaves no training images"),
]


@case("folder", "error", names="shapes|folder", what="--data naming a file")
def data_is_a_file(ctx: Ctx) -> Result:
    ctx.p("shapes").write_text("x")
    return ctx.run(*FOLDER_TRAIN)


# ----- predict ------------------------------------------------------------------------------------------------------


def _predict(prepare: Callable[[Ctx, Path], list[Any]], *extra: str, require: tuple[str, ...] = ()
             ) -> Callable[[Ctx], Result]:
    def build(ctx: Ctx) -> Result:
        run = ctx.digits_run()
        folder = ctx.p("imgs")
        for i in range(2):
            save_image(folder / f"good{i}.png", 8, seed=i, channels=1)
        targets = prepare(ctx, folder)
        return require_text(ctx.run("predict", run / "best.pt", *targets, *extra), *require)
    return build


def _with_broken(ctx: Ctx, folder: Path) -> list[Any]:
    (folder / "broken.png").write_bytes(b"not a png")
    return [folder]


def _write(name: str, data: bytes) -> Callable[[Ctx, Path], list[Any]]:
    def prepare(ctx: Ctx, folder: Path) -> list[Any]:
        (folder / name).write_bytes(data)
        return [folder / name]
    return prepare


def _truncated_jpeg(ctx: Ctx, folder: Path) -> list[Any]:
    save_image(folder / "t.jpg", 64, quality=90)
    (folder / "t.jpg").write_bytes((folder / "t.jpg").read_bytes()[:300])
    return [folder / "t.jpg"]


def _empty_folder(ctx: Ctx, folder: Path) -> list[Any]:
    ctx.p("empty").mkdir()
    return [ctx.p("empty")]


CASES += [
    Case("unreadable-file-in-folder", "predict", "ok", _predict(_with_broken, require=("broken.png", "good0.png")),
         what="a folder with an unreadable file: the others predicted, the bad one skipped with a warning naming it"),
    Case("unreadable-file-strict", "predict", "error", _predict(_with_broken, "--strict-images"), names="broken.png",
         what="... with --strict-images: an error naming the file"),
    Case("empty-folder", "predict", "error", _predict(_empty_folder), names="empty", what="a folder with no images"),
    Case("missing-path", "predict", "error", _predict(lambda c, f: [f / "nope.png"]), names="nope.png",
         what="a path that does not exist"),
    Case("zero-byte-file", "predict", "error", _predict(_write("zero.png", b"")), names="zero.png",
         what="a 0-byte image named on the command line"),
    Case("text-file", "predict", "error", _predict(_write("notes.txt", b"hello")), names="notes.txt",
         what="a text file named on the command line"),
    Case("decompression-bomb", "predict", "error", _predict(lambda c, f: [png_claiming(f / "bomb.png", 50000, 50000)]),
         names="bomb.png", what="a PNG claiming 50000×50000 pixels"),
    Case("truncated-jpeg", "predict", "error", _predict(_truncated_jpeg), names="t.jpg", what="a JPEG cut short"),
    Case("topk-negative", "predict", "error", _predict(lambda c, f: [f], "--topk", "-1"), names="topk",
         what="--topk -1: an error, not a silent top-1"),
    Case("topk-zero", "predict", "error", _predict(lambda c, f: [f], "--topk", "0"), names="topk",
         what="--topk 0"),
    Case("topk-more-than-classes", "predict", "ok", _predict(lambda c, f: [f], "--topk", "1000"),
         what="--topk 1000 lists the 10 classes"),
    Case("csv-into-missing-folder", "predict", "error", _predict(lambda c, f: [f], "--csv", "no/dir/p.csv"),
         names="p.csv", what="--csv into a folder that does not exist"),
    Case("symlink-loop-folder", "predict", "ok", _predict(lambda c, f: (os.symlink("..", f / "loop"), [f])[1]),
         what="a folder containing a symlink loop"),
    Case("eloop-in-folder", "predict", "either", _predict(lambda c, f: (os.symlink("x.png", f / "x.png"), [f])[1]),
         names="x.png|loop", what="x.png -> x.png in the folder: skipped, or an error naming it"),
    Case("rgba-on-gray-model", "predict", "ok",
         _predict(lambda c, f: [save_image(f / "rgba.png", 20).parent / "rgba.png"]),
         what="a colour image for a grayscale model"),
    Case("device-cuda-without-gpu", "predict", "error", _predict(lambda c, f: [f], "--device", "cuda"),
         names="cuda", what="--device cuda with no GPU"),
    Case("non-utf8-file-name", "predict", "either",
         _predict(lambda c, f: (shutil.copy(f / "good0.png", os.fsencode(f) + b"/\xff.png"), [f])[1]),
         what="a file name that is not UTF-8: predicted, or a clear error"),
]


# ----- report and export: run folders written by other commands ------------------------------------------------------


@case("report", "ok", what="report on a run rewrites its report.html and nothing else")
def report_of_a_run(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("report", run, writes=(run / "report.html",))


@case("report", "ok", what="a comparison of two runs: the page, and each run's report.html only")
def report_compare_two(ctx: Ctx) -> Result:
    a, b = ctx.digits_run("a"), ctx.other_run("b")
    return ctx.run("report", a, b, "--out", "cmp.html", writes=(a / "report.html", b / "report.html"))


simple("report", "report-not-a-run", ["report", "."], names="summary.json", what="report on a folder that is no run")


def _report_damaged(name: str, text: str, names: str, what: str, expect: str = "error") -> None:
    def build(ctx: Ctx) -> Result:
        run = ctx.digits_run()
        (run / name).write_text(text)
        return ctx.run("report", run, writes=(run / "report.html",))
    CASES.append(Case(f"report-{name.replace('.', '-')}-{what.split()[0]}", "report", expect, build, names, what))


_report_damaged("summary.json", "{not json", "summary.json", "garbage summary.json")
_report_damaged("summary.json", "[1, 2]", "summary.json", "list summary.json (not an object)")
_report_damaged("metrics.csv", "\x00\x01garbage\n1,2,3\n", "metrics.csv", "garbage metrics.csv: a report, or an error",
                "either")
_report_damaged("steps.csv", "step,loss\nx,y\n", "steps.csv", "malformed steps.csv: a report, or an error", "either")


@case("export", "ok", what="control: export --format torchscript beside the checkpoint")
def export_torchscript(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("export", run / "best.pt", "--format", "torchscript", "--out", "model.ts")


@case("export", "error", names="exists|--force", what="a second export onto the same file: refused, the file kept")
def export_twice(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    ctx.prep("export", run / "best.pt", "--format", "torchscript", "--out", "out/model.ts")
    (ctx.p("out") / "summary.json").write_text("{}")        # makes out/ a watched folder
    return ctx.run("export", run / "best.pt", "--format", "torchscript", "--out", "out/model.ts")


@case("export", "error", names="exists|--force", what="export --out onto the run's best.pt: refused, run untouched")
def export_over_best_pt(ctx: Ctx) -> Result:
    run = ctx.digits_run()
    return ctx.run("export", run / "best.pt", "--format", "torchscript", "--out", run / "best.pt")


@case("export", "error", names="state_dict|checkpoint|bare", what="export of a bare state_dict")
def export_bare_state_dict(ctx: Ctx) -> Result:
    return ctx.run("export", _bare(ctx), "--format", "torchscript")


@case("export", "error", names="nan|finite", what="export of a checkpoint whose weights are NaN")
def export_nan_weights(ctx: Ctx) -> Result:
    return ctx.run("export", ctx.craft("nan.pt", _tensors(_nan)), "--format", "torchscript")


# Variants of the default cases (another bad value of the same flag, the same defect in another file), run with --all:
# the default set keeps every heading of the issue and each distinct way to fail.
EXTENDED = set("""
split/remove-train-file-then-eval split/touch-every-file-then-eval
identity/eval-added-class identity/eval-removed-class identity/eval-from-other-cwd identity/resume-added-train-files
identity/resume-changed-test-split identity/resume-data-moved-away identity/eval-on-other-classes
cache/0-byte-labels-npy cache/truncated-labels-npy cache/truncated-meta-json cache/0-byte-meta-json
cache/truncated-images-npy cache/meta-kept-index-out-of-range cache/images-npy-is-a-folder cache/read-only-cache-folder
cache/size-json-garbage cache/image-deleted-after-caching cache/skipped-file-warned-again-from-cache
idx/test-labels-more-than-images idx/images-with-2-dimensions idx/empty-file idx/padded-data idx/torchvision-layout
idx/bad-magic idx/float-data-type idx/truncated-gzip idx/one-pixel-images-no-crop-pad
cifar/string-labels cifar/label-count-mismatch cifar/data-int64 cifar/meta-without-names cifar/batch-is-a-list
cifar/archive-control
checkpoint/model-name-unknown checkpoint/model-name-not-text checkpoint/act-not-text
checkpoint/absurd-image-size-predict checkpoint/negative-image-size checkpoint/image-size-not-numbers
checkpoint/in-channels-mismatch checkpoint/format-version-text checkpoint/weights-not-a-dict
checkpoint/classes-none-predict checkpoint/nan-mean-predict checkpoint/weight-missing checkpoint/weight-unexpected
checkpoint/empty-file checkpoint/random-bytes checkpoint/checkpoint-is-a-folder checkpoint/bare-state-dict-with-model
checkpoint/inf-weights-eval checkpoint/classes-missing checkpoint/truncated checkpoint/future-format-version
checkpoint/model-args-missing
settings/lr=-0.1 settings/lr=0 settings/lr=nan settings/weight-decay=nan settings/warmup=nan
settings/label-smoothing=nan settings/image-size=1 settings/threads=100000 settings/seed=-1 settings/batch-size=0
settings/eval-every=0 settings/cutout=-1 settings/freeze-epochs=5 settings/val-split=nan settings/device=banana
settings/device=cuda:99 settings/model=resnet99 settings/recipe=fastest settings/init-weights=missing.pt
settings/pretrained settings/resize=stretch settings/precision-fp16-on-cpu settings/data-empty-string
settings/threads=-1 settings/epochs=0 settings/batch-size=100000 settings/log-every=-1 settings/device=cuda
settings/config-bool-key settings/config-null-key settings/config-nested-value settings/config-inf-lr
settings/config-huge-threads settings/config-missing-file settings/config-is-a-folder settings/config-list
settings/config-binary settings/config-own-config-yaml-with-flags
find-lr/find-lr-steps=-5 find-lr/find-lr-min-lr=-1 find-lr/find-lr-min-lr=nan find-lr/find-lr-max-lr=nan
find-lr/find-lr-min-lr=1-max-lr=0.1
show/show-n=0 show/show-augmented-n=-1 show/show-data=no-such-data show/show-n-more-than-images show/show-split-val
resume/changed-epochs resume/changed-model resume/changed-name resume/changed-out resume/changed-seed
resume/changed-image-size resume/changed-data resume/other-run-config-without-run-id resume/same-value-flag
resume/missing-file resume/renamed-run-folder resume/lone-checkpoint resume/print-config resume/bare-state-dict
folder/all-unreadable folder/hidden-files-only-class folder/two-images-per-class folder/test-of-another-size
folder/test-extra-class folder/train-without-test folder/mixed-sizes-chosen folder/dangling-symlink
folder/newline-in-file-name folder/sixteen-bit-png folder/cmyk-jpeg folder/animated-gif folder/unicode-class-names
folder/test-split-0.99 folder/data-is-a-file folder/empty-class-folder folder/extreme-aspect-image folder/symlink-loop
predict/missing-path predict/text-file predict/truncated-jpeg predict/topk-zero predict/topk-more-than-classes
predict/symlink-loop-folder predict/rgba-on-gray-model predict/device-cuda-without-gpu
report/report-compare-two report/report-not-a-run report/report-summary-json-garbage report/report-steps-csv-malformed
export/export-torchscript export/export-bare-state-dict export/export-nan-weights
""".split())  # noqa: SIM905 (150 names: a list of quoted strings reads worse)


# ---------------------------------------------------------------------------------------------------------------------
# running the cases


def run_case(c: Case, fx: Fixtures, root: Path, timeout: float, keep: bool = False) -> tuple[str, str, float]:
    """(outcome, reason, seconds) of one case, in a fresh folder under `root`."""
    base = Path(tempfile.mkdtemp(prefix=re.sub(r"\W", "_", c.id) + "-", dir=root))
    t = time.perf_counter()
    try:
        try:
            r = c.build(Ctx(base, fx, timeout))
        except SetupFailed as e:
            r = e.result
        for where in (f"{base}{os.sep}", f"{root}{os.sep}"):   # paths in messages, relative to the case's folder
            r.out, r.err = r.out.replace(where, ""), r.err.replace(where, "")
            r.wrong = r.wrong and r.wrong.replace(where, "")
        outcome, reason = classify(c, r)
    except Exception as e:  # a bug in the case itself: report it, do not hide it among the outcomes
        outcome, reason = "traceback", f"HARNESS: {type(e).__name__}: {_short(str(e), 120)}"
    finally:
        if not keep:
            for top, dirs, _ in os.walk(base):    # read-only folders made by a case
                for d in dirs:
                    with contextlib.suppress(OSError):
                        os.chmod(os.path.join(top, d), 0o755)
            shutil.rmtree(base, ignore_errors=True)
    return outcome, reason, time.perf_counter() - t


def select(pattern: str | None = None, everything: bool = False) -> list[Case]:
    """The default cases (all of them with `everything`) whose GROUP/NAME matches `pattern`."""
    unknown = EXTENDED - {c.id for c in CASES}
    assert not unknown, f"EXTENDED names no such case: {sorted(unknown)}"
    return [c for c in CASES if (everything or c.id not in EXTENDED) and (pattern is None or re.search(pattern, c.id))]


def run_cases(cases: list[Case], jobs: int = 1, timeout: float = TIMEOUT, keep: bool = False,
              out: Any = sys.stdout) -> dict[str, int]:
    """Run `cases` (`jobs` at a time), print a line each in order and the totals line; returns the counts."""
    counts = dict.fromkeys(OUTCOMES, 0)
    root = Path(tempfile.mkdtemp(prefix="imgclf-adversarial-"))
    fx = Fixtures(root / "fixtures", timeout)
    width = max((len(c.id) for c in cases), default=10)
    try:
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            for c, (outcome, reason, seconds) in zip(cases, pool.map(
                    lambda c: run_case(c, fx, root, timeout, keep), cases)):
                counts[outcome] += 1
                print(f"{c.id:<{width}}  {outcome:<15}  {seconds:5.1f}s  {reason}", file=out, flush=True)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}", file=out)
    print(f"tries {len(cases)}, clear errors {counts['clear error']}, tracebacks {counts['traceback']}, "
          f"silent wrong {counts['silent wrong']}, runs overwritten {counts['run overwritten']}, ok {counts['ok']}, "
          f"unclear errors {counts['unclear error']}, refused {counts['refused']}", file=out, flush=True)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=1, help="cases run at a time (default 1)")
    p.add_argument("--only", metavar="PATTERN", help="run the cases whose GROUP/NAME matches this regular expression")
    p.add_argument("--all", action="store_true", help="also the variants (EXTENDED): 284 cases, 5-12 min with --jobs 2")
    p.add_argument("--list", action="store_true", help="list the cases and what each requires, run nothing")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help=f"seconds per command (default {TIMEOUT})")
    p.add_argument("--keep", action="store_true", help="keep the temporary folders (their path is printed)")
    args = p.parse_args(argv)
    cases = select(args.only, args.all)
    if not cases:
        p.error(f"no case matches {args.only!r}")
    if args.list:
        for c in cases:
            print(f"{c.id:<55} {c.expect:<6} {c.what}")
        print(f"{len(cases)} cases")
        return 0
    counts = run_cases(cases, args.jobs, args.timeout, args.keep)
    return 1 if any(counts[o] for o in FAILING) else 0


if __name__ == "__main__":
    sys.exit(main())
