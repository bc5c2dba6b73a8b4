"""The one error type users see: a message that names the file, the field and the fix."""

from __future__ import annotations


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
