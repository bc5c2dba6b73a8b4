"""The harness of the adversarial cases (tests/test_adversarial.py): each case builds its input in its own folder
(generated images, crafted IDX/CIFAR files, checkpoints edited from one shared tiny training run), runs
`python -m imgclf ...` as a subprocess (no GPU, its own cwd; the test's own cache and data folders from
tests/conftest.py) and classifies what the command did:

    ok               the expected success, and the output checked right (split unchanged, warning present, ...)
    clear error      an expected failure: exit 2 or 3, one error line naming the problem, no traceback
    traceback        a Python traceback, an internal error (exit 1), a crash or a hang
    silent wrong     exit 0 where an error, or another figure, was required (each case says what it requires); or,
                     whatever the exit, a side effect the case forbids (code that ran, a node replaced, a half-made
                     run folder left behind, a refusal that took too long or printed pages)
    run overwritten  a file of a run folder that existed before the command changed, vanished or appeared
    unclear error    an expected failure whose message is not one line naming the problem
    refused          an error where success was required

A case whose defect imgclf still has is marked `xfail` (its reason says what happens): tests/test_adversarial.py
runs it as a strict xfail, so it passes while the defect is there and fails (XPASS) once it is fixed, when the mark
is to be removed.

The cases are in adversarial_data.py (image folders, the folder cache, IDX and CIFAR files, data identity) and
adversarial_commands.py (checkpoints, settings, find-lr, show, --resume, predict, report, export).
"""

from __future__ import annotations

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
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from conftest import make_image_folder
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
    """What one command did. `wrong`: why a successful run's output is wrong, or a side effect the case forbids
    whatever the exit (set by the case's own check);
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
    xfail: str | None = None            # a defect imgclf still has: what it does instead (a strict xfail)

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
    if r.rc != 0 and r.wrong and not r.setup:
        return "silent wrong", _short(f"exit {r.rc}, but {r.wrong}")
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
    """One case's world: a fresh folder (its cwd and HOME), the cache and data folders (the test's own, which
    tests/conftest.py sets in IMGCLF_CACHE_DIR and IMGCLF_DATA_DIR; else inside the folder) and the shared runs."""

    def __init__(self, base: Path, shared: SharedRuns, timeout: float = TIMEOUT) -> None:
        self.dir, self.shared, self.timeout = base, shared, timeout
        self.cache = Path(os.environ.get("IMGCLF_CACHE_DIR") or base / "cache")
        data_dir = os.environ.get("IMGCLF_DATA_DIR") or str(base / "data-dir")
        self.env = {"IMGCLF_CACHE_DIR": str(self.cache), "IMGCLF_DATA_DIR": data_dir,
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

    # shared runs, copied into the case's folder (a case never touches the shared run itself)

    def digits_run(self, name: str = "digits") -> Path:
        dst = self.p("runs", name)
        shutil.copytree(self.shared.digits_run(), dst)
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
        edit_checkpoint(self.shared.digits_run() / "best.pt", dst, edit)
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


class SharedRuns:
    """Runs shared by all cases, each trained once, on first use (one tiny digits run: fastcnn-tiny, 1 epoch), so a
    selection of cases that needs none trains none. Cases read them only; Ctx copies one to edit it."""

    def __init__(self, root: Path, timeout: float = TIMEOUT) -> None:
        self.root, self.timeout = root, timeout
        self._digits: Path | None = None

    def digits_run(self) -> Path:
        if self._digits is None:
            cwd = self.root / "digits"
            cwd.mkdir(parents=True, exist_ok=True)
            r = run_command(["train", "--data", "digits", *TINY, "--out", "runs", "--name", "digits"], cwd,
                            {"IMGCLF_CACHE_DIR": str(cwd / "cache"), "MPLCONFIGDIR": str(cwd / "mpl")}, self.timeout)
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
                ext: str = ".png", seed: int = 0, channels: int = 3) -> Path:
    """root/<class>/NNN.ext: conftest's generated images, small (12 px) so that a case trains in seconds;
    channels=1 saves them in grayscale."""
    make_image_folder(root, classes, per_class, size, seed, ext)
    if channels == 1:
        for c in classes:
            for p in (root / c).glob(f"*{ext}"):
                Image.open(p).convert("L").save(p)
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
# declaring, selecting and running cases


class Cases(list):
    """A case module's cases, in order: `case` and `simple` add one, `+=` several."""

    def case(self, group: str, expect: str, names: str | None = None, what: str = "", xfail: str | None = None
             ) -> Callable:
        """Add a case built by the decorated function (its name, with _ as -, is the case's name)."""
        def deco(fn: Callable[[Ctx], Result]) -> Callable[[Ctx], Result]:
            self.append(Case(fn.__name__.replace("_", "-"), group, expect, fn, names, what or (fn.__doc__ or ""),
                             xfail))
            return fn
        return deco

    def simple(self, group: str, name: str, args: Callable[[Ctx], list[Any]] | list[Any], expect: str = "error",
               names: str | None = None, what: str = "", xfail: str | None = None) -> None:
        """Add a case that is one command (args, or a function of the case's folder returning them)."""
        self.append(Case(name, group, expect, lambda ctx: ctx.run(*(args(ctx) if callable(args) else args)), names,
                         what, xfail))


def select(pattern: str | None = None, everything: bool = False) -> list[Case]:
    """The default cases (with `everything`, also each module's VARIANTS: another bad value of the same flag, the
    same defect in another file) whose GROUP/NAME matches the regular expression `pattern`."""
    import adversarial_commands  # the case modules import this one: imported when asked for, not at the top
    import adversarial_data

    cases = [*adversarial_data.CASES, *adversarial_commands.CASES]
    variants = adversarial_data.VARIANTS | adversarial_commands.VARIANTS
    unknown = variants - {c.id for c in cases}
    assert not unknown, f"VARIANTS names no such case: {sorted(unknown)}"
    return [c for c in cases if (everything or c.id not in variants) and (pattern is None or re.search(pattern, c.id))]


def run_case(c: Case, ctx: Ctx, relative_to: tuple[Path, ...] = ()) -> tuple[str, str]:
    """(outcome, reason) of one case run in `ctx`; paths under the case's folder or `relative_to` are shortened to
    relative ones in its messages (which a case's `names` pattern then cannot match by accident)."""
    try:
        r = c.build(ctx)
    except SetupFailed as e:
        r = e.result
    for where in (f"{ctx.dir}{os.sep}", *(f"{p}{os.sep}" for p in relative_to)):
        r.out, r.err = r.out.replace(where, ""), r.err.replace(where, "")
        r.wrong = r.wrong and r.wrong.replace(where, "")
    return classify(c, r)


def make_writable(*folders: Path) -> None:
    """Undo what a case made read-only under `folders` (so the folders can be removed)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.chmod(0o755)
        for top, dirs, _ in os.walk(folder):
            for d in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(top, d), 0o755)


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


def nothing_left(r: Result, folder: Path, what: str = "a run folder") -> Result:
    """Whatever the exit, `folder` must hold nothing afterwards (a refused command leaves no half-made run behind)."""
    left = sorted(str(p.relative_to(folder.parent)) for p in folder.rglob("*")) if folder.is_dir() else []
    if left:
        r.wrong = f"left {what} behind: {', '.join(left[:3])}"
    return r


def short_and_quick(r: Result, ctx: Ctx, chars: int = 400, seconds: float = 30) -> Result:
    """An error must be a short message (stderr under `chars` characters, the case's folder left out of paths), given
    within `seconds`: a crafted value is shown bounded, never expanded."""
    if r.rc not in (0, None):
        err = r.err.replace(f"{ctx.dir}{os.sep}", "")
        if len(err) > chars:
            r.wrong = f"a message of {len(err)} characters (at most {chars}): {_short(err, 80)}"
        elif r.seconds > seconds:
            r.wrong = f"took {r.seconds:.0f}s to refuse it (at most {seconds:.0f}s)"
    return r


def run_config(run: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


def json_out(r: Result) -> Any:
    try:
        return json.loads(r.out)
    except ValueError:
        return None


