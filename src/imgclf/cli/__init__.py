"""The `imgclf` command: datasets, models, check, show, train, eval, predict, export, find-lr, report, cache.
parser.py holds the flags and help, commands.py what each command does; this module runs one and maps its
outcome to an exit code."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import traceback
import warnings

from .. import phases, verbosity
from ..errors import FROM_CLI, ImgclfError
from ..fileio import stdout_to_devnull
from .commands import COMMANDS
from .parser import EXIT_INTERNAL, EXIT_OK, EXIT_PIPE, EXIT_STOPPED, REPORT_BUGS, build_parser

__all__ = ["COMMANDS", "build_parser", "entry", "main"]


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    """Entry point: run a command and return its exit code (EXIT_CODES_HELP): our errors print as one line (3),
    a stopped run exits 130, anything unexpected is an internal error (1); usage errors exit 2 in argparse.
    `started` (a time.perf_counter() reading, default now) is when the command began: a --budget counts from it."""
    started = time.perf_counter() if started is None else started
    parser = build_parser()
    args = parser.parse_args(argv)
    args.started = started
    if args.quiet and args.verbose:
        parser.error("--quiet and --verbose exclude each other")
    level = verbosity.QUIET if args.quiet else verbosity.VERBOSE if args.verbose else verbosity.NORMAL
    with warnings.catch_warnings(), verbosity.at(level):   # what every command prints follows it (verbosity.py)
        if args.quiet:
            warnings.simplefilter("ignore")
        warnings.formatwarning = (lambda msg, cat, file, line, *a: f"warning: {msg} ({file}:{line})\n") \
            if args.verbose else (lambda msg, *a, **k: f"warning: {msg}\n")
        cli = FROM_CLI.set(True)   # messages name --flags (through the Python API, keyword arguments: keywords.py)
        try:
            return _run(args)
        finally:
            FROM_CLI.reset(cli)


def _run(args: argparse.Namespace) -> int:
    """Run the command; every failure becomes its exit code and a one-line message (a traceback with --verbose,
    which also prints where the time went: phases.py)."""
    phases.begin(args.started)
    try:
        COMMANDS[args.command](args)
        if args.verbose and args.command == "train":
            print(phases.line(), file=sys.stderr)
    except ImgclfError as e:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_STOPPED
    except BrokenPipeError:
        return _reader_gone()
    except Exception as e:
        if args.verbose:
            traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"internal error: {type(e).__name__}{': ' + first if first else ''}", file=sys.stderr)
        print(REPORT_BUGS + ("" if args.verbose else "; rerun with --verbose for the traceback"), file=sys.stderr)
        return EXIT_INTERNAL
    return EXIT_OK


def _reader_gone() -> int:
    """Whoever read our output has gone (`imgclf cache | head`): stop quietly, as cat does. Standard output goes to
    /dev/null from here on, so that the interpreter's own flush at exit cannot fail a second time."""
    stdout_to_devnull()
    return EXIT_PIPE


def process_started() -> float:
    """time.perf_counter()'s reading when this process started (Linux /proc), so a budget counts Python's start-up
    and imports too; where /proc is missing, now."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return time.perf_counter() - max(0.0, min(age, 3600.0))
    except (OSError, ValueError, IndexError):
        return time.perf_counter()


def entry() -> int:
    """The `imgclf` command (console script and `python -m imgclf`): start the plot painter for a train command
    (report/painter.py), import torch with the GC paused, main(), then move every object into the permanent GC
    generation, so that the interpreter's exit skips collecting torch's hundreds of thousands of objects (~0.5 s
    of a 10 s run on our 2-core CPU). Everything is written and closed by then."""
    started = process_started()              # a --budget counts Python's start-up and imports too
    argv = sys.argv[1:]
    try:
        if argv[:1] == ["train"] and not {"--no-plots", "-h", "--help"} & set(argv) and \
                os.environ.get("RANK", "0") == "0":
            from ..report import painter
            painter.start()                  # matplotlib's import on the core that torch's import leaves idle
        from .. import import_api
        import_api()
        code = main(argv, started=started)
    except KeyboardInterrupt:                # Ctrl-C while torch was still importing: nothing to save yet
        print("interrupted", file=sys.stderr)
        return EXIT_STOPPED
    try:
        sys.stdout.flush()   # what a pipe has not taken yet: its reader may have gone by now
    except BrokenPipeError:
        code = _reader_gone()
    gc.freeze()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())

