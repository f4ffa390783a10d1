"""The commands (`mww-*`): thin wrappers that parse flags, call one stage and print, all run by
`run_command`, which turns any `MwwError` into one paragraph and its exit code. It may import every
stage."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TypeVar

from mww.atomic import DISK_FULL_ERRNOS, NOT_WRITABLE_ERRNOS
from mww.errors import MwwError

T = TypeVar("T", int, float)


class UsageError(MwwError):
    """An argparse or flag error, turned into exit status 2 without a traceback."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError, so the command prints its own paragraph."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def checked(
    convert: Callable[[str], T], what: str, ok: Callable[[T], bool], problem: str
) -> Callable[[str], T]:
    """An argparse `type` for a number: `convert(text)`, refused with "'text' is not `what`" when that
    fails and with `problem` (a format string of `text` and `value`) when `ok(value)` is false."""

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(problem.format(text=text, value=value))
        return value

    return parse


def export_command(checkpoint: str | Path, args: argparse.Namespace) -> str:
    """The mww-export command for `checkpoint` with the --config/--override the command was given."""
    given = (("--config", args.config), ("--override", args.override))
    flags = " ".join(f"{flag} {value}" for flag, value in given if value)
    return f"mww-export --checkpoint {checkpoint} {flags}"


def error_line(prog: str, message: object) -> str:
    """`prog: error: message`, the message joined into one paragraph: what a command prints for a bad
    input (and what the studio shows for the same failure)."""
    return f"{prog}: error: {' '.join(str(message).split())}"


def fail(prog: str, message: object, code: int = 2) -> int:
    """Print `prog: error: message` (one paragraph) to stderr and return the exit status `code`."""
    print(error_line(prog, message), file=sys.stderr)
    return code


def run_command(
    prog: str,
    parser: argparse.ArgumentParser,
    action: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
    interrupted: Callable[[argparse.Namespace], str] | None = None,
) -> int:
    """Every command's main: parse `argv`, run `action(args)` and turn what a user can cause into an
    exit status without a traceback.

    A usage error (a `Parser`'s UsageError) and any `MwwError` print `prog: error: <paragraph>` and exit
    with the error's code (2), and so does a file the system refuses (a full disk, a folder that may not
    be written: `disk_error`). Ctrl-C prints `prog: <interrupted(args)>` and exits 130; SIGTERM stops
    the command the same way (the action sees KeyboardInterrupt and cleans up) and exits 143. A plain
    ArgumentParser's own exits (`--help`, its usage errors) pass through as SystemExit. Other exceptions
    are bugs and keep their traceback.
    """
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return fail(prog, f"{exc}. Run '{prog} --help' for the options.")
    stop = _Stop()
    try:
        with stop.on_sigterm():
            code = action(args)
        return EXIT_TERMINATED if stop.terminated else code
    except UsageError as exc:
        return fail(prog, f"{exc}. Run '{prog} --help' for the options.")
    except MwwError as exc:
        return fail(prog, exc, exc.exit_code)
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        return fail(prog, disk_error(exc))
    except KeyboardInterrupt:
        message = interrupted(args) if interrupted is not None else "interrupted"
        print(f"{prog}: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_TERMINATED if stop.terminated else 130


EXIT_TERMINATED = 128 + signal.SIGTERM  # 143: what a shell reports for a command ended by SIGTERM
_DISK_ERRORS = DISK_FULL_ERRNOS | NOT_WRITABLE_ERRNOS


def disk_error(exc: OSError) -> str:
    """One paragraph for a file the system refused: which file, why, and what to do."""
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno in DISK_FULL_ERRNOS:
        return (
            f"Could not write{where}: the disk is full ({exc.strerror or exc}). Free some space, or write to "
            "a folder on another disk, and run again."
        )
    return (
        f"The system refused access to{where} ({exc.strerror or exc}): this user may not write there (a "
        "read-only folder or disk) or read it. Fix the permissions, or choose a folder you can write to."
    )


class _Stop:
    """SIGTERM turned into the KeyboardInterrupt of Ctrl-C while a command runs, so it stops as cleanly
    (a training run saves its resumable state); remembers that it came."""

    def __init__(self) -> None:
        self.terminated = False

    def _handler(self, signum: int, frame: object) -> None:
        self.terminated = True
        raise KeyboardInterrupt

    @contextmanager
    def on_sigterm(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGTERM, self._handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
