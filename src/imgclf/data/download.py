"""Fetch the named datasets' official files: resumable (HTTP Range on a .part file), checksum-verified,
renamed into place only when complete, and with an offline error that says where to put the files."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from .. import verbosity
from ..errors import DataError
from ..fileio import commit

_BLOCK = 1 << 16


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path, md5: str | None, timeout: float = 30.0) -> Path:
    """Download `url` to `dest`, resuming a partial `dest.part`; raises DataError on network or checksum failure."""
    dest = Path(dest)
    if dest.is_file() and (md5 is None or file_md5(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "imgclf", **({"Range": f"bytes={have}-"} if have else {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if have and resp.status != 206:  # server ignored the Range: start over
                have = 0
            total = have + int(resp.headers.get("Content-Length") or 0)
            with open(part, "ab" if have else "wb") as f:
                done = have
                for block in iter(lambda: resp.read(_BLOCK), b""):
                    f.write(block)
                    done += len(block)
                    if verbosity.shown() and total:
                        print(f"\r  {dest.name}: {done / 1e6:.1f}/{total / 1e6:.1f} MB", end="", flush=True)
                f.flush()
                os.fsync(f.fileno())
            if verbosity.shown():
                print()
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part is already complete
            pass
        else:
            raise DataError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise DataError(f"cannot download {url} ({reason}); a partial file stays at {part} and the next try "
                        f"resumes it. Offline? put {dest.name} into {dest.parent}/") from None
    if md5 is not None:
        got = file_md5(part)
        if got != md5:
            part.unlink(missing_ok=True)
            raise DataError(f"{url}: checksum mismatch (md5 {got}, expected {md5}); the bad file was removed, "
                            "try again")
    commit(part, dest)  # .part was fsynced as it was written
    return dest
