"""The one way imgclf writes a file that must never be seen half-written (checkpoints, run-folder files, the
folder cache, downloads): a temporary file in the same folder, flushed and fsynced, renamed over the target,
then the folder fsynced so the rename itself survives a crash."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import ConfigError


def temporary_name(path: Path) -> Path:
    """The hidden temporary file beside `path` that this process writes before the rename."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files (see temporary_name) that killed processes left in `folder` and below; a file of
    a process still running (other than this one) is kept. Returns what was removed."""
    removed = []
    for tmp in Path(folder).rglob(".*.tmp*"):
        m = re.fullmatch(r"\..+\.tmp(\d+)", tmp.name)
        if m and tmp.is_file() and (int(m.group(1)) == os.getpid() or not _alive(int(m.group(1)))):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def commit(tmp: Path, path: Path) -> None:
    """Rename a complete, fsynced `tmp` over `path` and fsync the folder."""
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | Path, text: bool = False) -> Iterator[IO[Any]]:
    """`with atomic_write(p) as f: ...` writes p all or nothing; on any error the temporary file is removed,
    the previous p is untouched and the error propagates."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "w" if text else "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        commit(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Atomically replace a text file's contents."""
    with atomic_write(path, text=True) as f:
        f.write(text)


def printable(name: str) -> str:
    """A file or class name as text that any output can take: a name that is not valid UTF-8 (held with surrogate
    escapes, os.fsdecode) shows its odd bytes as \\xNN escapes, where printing, drawing or writing it as UTF-8
    would raise."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_new_file(path: str | Path, force: bool, flag: str = "--out") -> Path:
    """A file a command is asked to write (`flag`'s value) must not replace one that exists — a checkpoint, an
    image of the dataset, an earlier result — unless `force` (--force); a folder is never a file. Returns the path."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; name the file to write inside it)")
    if path.is_symlink() or (path.exists() and not path.is_file()):   # a link, FIFO, device or socket
        kind = "a symbolic link" if path.is_symlink() else "not a regular file (a FIFO, device or socket)"
        raise ConfigError(f"{flag} {path}: is {kind}; imgclf writes a new regular file in its place, which would "
                          "replace that node itself, so it never does: name a regular file")
    if path.exists() and not force:
        raise ConfigError(f"{flag} {path}: the file exists; pass --force to replace it, or name another file")
    return path


def stdout_to_devnull() -> None:
    """Point standard output at /dev/null once its reader has gone (a closed pipe), so that later writes and the
    interpreter's flush at exit cannot fail again; a stdout without a file descriptor is left as it is."""
    with contextlib.suppress(OSError, ValueError):   # ValueError: io.UnsupportedOperation
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
