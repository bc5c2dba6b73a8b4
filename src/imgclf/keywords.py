"""Errors as a Python caller reads them: messages are written for the command line (`--data nope: …`); raised
through the Python API they name the keyword arguments instead (`data='nope': …`), and a stopped run says how to
continue it in Python. The command line sees its own text (errors.FROM_CLI)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from .config import CHOICES, FIELDS
from .errors import FROM_CLI, ImgclfError

# flags of the commands (not settings) that take no value
SWITCHES = {"allow_changed_data", "strict_images", "trust_exported", "force", "strict", "quiet", "verbose", "json",
            "augmented"}
WORDS = {"cpu", "cuda", "mps", "auto"}   # device names, the values of --device that read like words
FLAG = re.compile(r"--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?:( )('[^']*'|\"[^\"]*\"|[^\s;,()]+))?")
NUMBER = re.compile(r"-?\d[\d_.]*(?:e[-+]?\d+)?")
STOPPED = re.compile(r"Resume with: imgclf train --resume (.+)$")
F = TypeVar("F", bound=Callable[..., Any])


def is_switch(name: str) -> bool:
    """A setting or flag that is on or off (True/False in Python)."""
    field = FIELDS.get(name)
    return name in SWITCHES or (field is not None and str(field.type) == "bool")


def as_value(token: str, name: str) -> str | None:
    """`token` after --name as a Python value (quoted unless a number or already quoted), or None where it reads as
    the message's next word rather than the flag's value."""
    bare = token.rstrip(":.")
    if token[:1] in "'\"":
        return token
    if NUMBER.fullmatch(bare):
        return bare
    if bare.isupper():   # a placeholder: --steps N
        return bare
    if token.endswith(":") or bare[:1].isdigit() or "/" in bare or bare in CHOICES.get(name, ()) or bare in WORDS \
            or re.fullmatch(r"cuda:\d+", bare):
        return repr(bare)
    return None


def keyword(match: re.Match[str]) -> str:
    """One --flag (and its value, where one follows) as name=value."""
    name, space, token = match.group(1).replace("-", "_"), match.group(2), match.group(3)
    if name.startswith("no_") and is_switch(name[3:]):
        return f"{name[3:]}=False" + (f"{space}{token}" if token else "")
    if is_switch(name):
        return f"{name}=True" + (f"{space}{token}" if token else "")
    value = as_value(token, name) if token else None
    if value is not None:
        return f"{name}={value}" + (":" if token.endswith(":") else "")
    if token:   # the flag named in a sentence ("--budget plans the run's length")
        return f"{name}{space}{token}"
    return name if match.string[match.end():match.end() + 1] == ":" else f"{name}="


def as_keywords(text: str) -> str:
    """A command-line message in the Python API's words: --flags become keyword arguments, the resume command a
    call."""
    text = STOPPED.sub(lambda m: f"Continue it with imgclf.train(resume={m.group(1)!r}) or, for a run you "
                                 "hold, run.continue_training()", text)
    return FLAG.sub(keyword, text)


@contextmanager
def keyword_errors() -> Iterator[None]:
    """Re-raise an ImgclfError from the block with its message in keyword arguments (as_keywords), unless the
    command line is running it."""
    try:
        yield
    except ImgclfError as e:
        if not FROM_CLI.get() and e.args and isinstance(e.args[0], str):
            e.args = (as_keywords(e.args[0]), *e.args[1:])
        raise


def python_errors(function: F) -> F:
    """`function` with keyword_errors around it: for the public functions of the Python API."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with keyword_errors():
            return function(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
