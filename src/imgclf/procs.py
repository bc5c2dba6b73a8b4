"""Helper processes (decode workers, the plot painter): each asks Linux to kill it when its parent dies, so a killed
command never leaves one behind."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys


def die_with_parent() -> None:
    """PR_SET_PDEATHSIG: SIGKILL this process when the process that started it exits (Linux; elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
