"""How much the commands print, set once (`imgclf -q` / `-v`, `imgclf.train(quiet=True)`, a process that is not
torchrun's rank 0) and read where something would be printed, instead of a flag passed down every call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

QUIET, NORMAL, VERBOSE = 0, 1, 2
_level = NORMAL


def level() -> int:
    return _level


def set_level(value: int) -> None:
    global _level
    _level = value


def shown() -> bool:
    """Whether the usual output (headers, progress, notes, tables) is printed."""
    return _level >= NORMAL


@contextlib.contextmanager
def at(value: int) -> Iterator[None]:
    """The level `value` for the block (a quiet build inside a run; a quiet API call), then the one before."""
    before = _level
    set_level(value)
    try:
        yield
    finally:
        set_level(before)


def quiet_if(quiet: bool) -> contextlib.AbstractContextManager:
    """QUIET for the block when `quiet` (the API's keyword), else the level as it is."""
    return at(QUIET) if quiet else contextlib.nullcontext()
