"""The one error type users see: a message that names the file, the field and the fix."""

from __future__ import annotations

import reprlib
from contextvars import ContextVar
from typing import Any

_SHOWN = reprlib.Repr()   # keyword arguments only from Python 3.12
_SHOWN.maxlevel, _SHOWN.maxtuple, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxset = 2, 4, 4, 4, 4
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlong = 60, 60, 40


class ImgclfError(Exception):
    """A problem with the user's input or environment, explained in one line; the CLI prints it without a traceback
    and exits with `exit_code` (3 for data, config and checkpoint errors: see `imgclf --help`)."""

    exit_code = 3


class DataError(ImgclfError):
    """A dataset file or folder is missing, malformed or inconsistent."""


class CheckpointError(ImgclfError):
    """A checkpoint cannot be read safely or does not fit the model/data asked for."""


class ConfigError(ImgclfError):
    """A setting (flag or config-file key) is unknown or has a bad value."""


def shown(value: Any, limit: int = 60) -> str:
    """A value from a file or a setting, for an error message: bounded in depth, items and length (reprlib), so a
    crafted value (a list nested 60 deep with shared references, a string of gigabytes) prints at once."""
    text = _SHOWN.repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


# True while the imgclf command runs: its messages name --flags; through the Python API they name keyword arguments
FROM_CLI: ContextVar[bool] = ContextVar("imgclf_from_cli", default=False)
