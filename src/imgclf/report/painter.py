"""The plot painter: a helper process that `imgclf train` starts before it imports torch, so that matplotlib's
import (~0.4-0.7 s on our 2-core CPU) runs on the core that Python's single-threaded start-up leaves idle; at the end
of the run it draws the pictures there. What it draws is plain data (plots.Figure); if it cannot be started, dies
or fails in a way drawing here would explain better, the pictures are drawn in this process instead, so a picture
is never missing because of it. benchmarks/RESULTS.md has what it saves."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, NamedTuple


class Figure(NamedTuple):
    """One picture to draw: `kind` names the function in plots.DRAWERS, `args` its keyword arguments (plain data:
    numbers, strings, lists, uint8 arrays), `path` the file it writes."""
    kind: str
    path: Path
    args: dict[str, Any]


_started: subprocess.Popen | None = None
RAISED = (OSError, RuntimeError, ValueError)   # what a full disk or an unwritable folder raises while drawing
TIMEOUT_SECONDS = 120     # six figures take ~1 s: a painter this late is stuck, so draw here instead


def start() -> None:
    """Start the painter now (once per process). It imports matplotlib and waits; if nobody asks it to draw, it
    exits when this process does (its stdin closes; on Linux it is also killed with its parent)."""
    global _started
    if _started is not None:
        return
    # isolated (-I): neither the working folder nor PYTHONPATH can put another imgclf first; this one's folder is
    # put on the path instead. One thread: nothing here computes in parallel, and the fork in serve() needs none.
    package_root = str(Path(__file__).resolve().parents[2])
    code = f"import sys; sys.path.insert(0, {package_root!r}); from imgclf.report.painter import serve; serve()"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    try:
        _started = subprocess.Popen([sys.executable, "-I", "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, env=env)
    except OSError:
        _started = None


def draw_all(figures: list[Figure]) -> list[Path]:
    """Draw `figures` into their files, in the painter if one was started, else here; return their paths. A
    failure to write (OSError, RuntimeError, ValueError) is raised here as it would be when drawing here."""
    global _started
    proc, _started = _started, None
    reply = _ask(proc, figures) if proc is not None else None
    if reply is None:
        from .plots import draw
        return [draw(f) for f in figures]
    for message in reply["warnings"]:
        warnings.warn(message, stacklevel=3)
    if reply["error"]:
        raise reply["error"]            # the exception itself (its class and errno), as drawing here would raise
    return [f.path for f in figures]


def _ask(proc: subprocess.Popen, figures: list[Figure]) -> dict[str, Any] | None:
    """Send the figures, wait for the painter's reply; None when it gave none (it died, or never started)."""
    try:
        out, _ = proc.communicate(pickle.dumps(figures, protocol=pickle.HIGHEST_PROTOCOL), timeout=TIMEOUT_SECONDS)
        reply = pickle.loads(out) if proc.returncode == 0 and out else None
    except (OSError, subprocess.TimeoutExpired, pickle.UnpicklingError, EOFError):
        proc.kill()
        proc.wait()
        return None
    return reply if isinstance(reply, dict) and reply.get("done") else None


def serve() -> None:
    """The painter's side: read the figures from stdin (nothing: exit), draw them, write the reply to stdout."""
    from ..procs import die_with_parent
    die_with_parent()
    reply_to = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)                        # anything printed while drawing must not corrupt the reply
    from .plots import draw  # matplotlib: the import this process exists to get out of the way
    data = sys.stdin.buffer.read()
    if not data:
        return
    figures = pickle.loads(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        error = _draw_in_two(figures, draw)
    reply = {"done": True, "error": error, "warnings": [str(w.message) for w in caught]}
    reply_to.write(pickle.dumps(reply))
    reply_to.close()


def _draw_in_two(figures: list[Figure], draw: Any) -> Exception | None:
    """Draw every other figure in a forked copy of this process (it has matplotlib loaded and no threads, so the
    fork is safe and instant) and the rest here: the two cores the run used are free again. Returns the first
    failure (a RAISED exception). Where fork is missing or the copy dies, this process draws its share."""
    mine, theirs = figures[::2], figures[1::2]
    read_end, write_end = os.pipe() if hasattr(os, "fork") and theirs else (None, None)
    pid = os.fork() if read_end is not None else -1
    if pid == 0:                          # the copy: draw its share, report, leave without cleanup handlers
        code = 1                          # anything unexpected: the painter draws this share itself, and sees it
        try:
            os.close(read_end)
            with warnings.catch_warnings(record=True) as caught, os.fdopen(write_end, "wb") as out:
                warnings.simplefilter("default")
                error = _draw_each(theirs, draw)
                out.write(pickle.dumps((error, [str(c.message) for c in caught])))
            code = 0
        finally:
            os._exit(code)
    if pid < 0:
        mine, theirs = figures, []
    else:
        os.close(write_end)
    error = _draw_each(mine, draw)
    if pid > 0:
        with os.fdopen(read_end, "rb") as r:
            out = r.read()
        _, status = os.waitpid(pid, 0)
        if status == 0 and out:
            their_error, their_warnings = pickle.loads(out)
            for message in their_warnings:
                warnings.warn(message, stacklevel=2)
        else:
            their_error = _draw_each(theirs, draw)
        error = error or their_error
    return error


def _draw_each(figures: list[Figure], draw: Any) -> Exception | None:
    """Draw the figures; the first error that writing a file can raise (RAISED), or None."""
    for f in figures:
        try:
            draw(f)
        except RAISED as e:
            return e
    return None
