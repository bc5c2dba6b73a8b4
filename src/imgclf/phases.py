"""Where a command's time goes: named phases, each timed as it runs, and what came before the first (Python's
start-up and imports). `imgclf -v` prints them at the end; the numbers are for reading, never for deciding."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

_spent: dict[str, float] = {}
_started: list[float] = []
_stack: list[list[float]] = []   # per open phase: the time of the phases nested in it so far


def begin(started: float) -> None:
    """A command begins; `started` (a time.perf_counter() reading) is when its process started."""
    _spent.clear()
    _started[:] = [started, time.perf_counter()]


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Add the time spent inside the block to phase `name` (entered any number of times), less the time of the
    phases nested in it (each counts once, in the innermost)."""
    t, frame = time.perf_counter(), [0.0]
    _spent.setdefault(name, 0.0)     # listed in the order first entered
    _stack.append(frame)
    try:
        yield
    finally:
        _stack.pop()
        took = time.perf_counter() - t
        _spent[name] += took - frame[0]
        if _stack:
            _stack[-1][0] += took


def breakdown() -> list[tuple[str, float]]:
    """(phase, seconds) in the order first entered, after 'start-up and imports' and before 'other' (the rest up to
    now); empty when no command began."""
    if not _started:
        return []
    process, command = _started
    now = time.perf_counter()
    rows = [("start-up and imports", command - process), *_spent.items()]
    rows.append(("other", max(0.0, now - process - sum(s for _, s in rows))))
    return rows


def line() -> str:
    """The breakdown as one line: `time: start-up and imports 1.21 s, data 0.30 s, …; 5.02 s in all`."""
    rows = breakdown()
    return "time: " + ", ".join(f"{name} {s:.2f} s" for name, s in rows) + f"; {sum(s for _, s in rows):.2f} s in all"
