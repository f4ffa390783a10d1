"""Command-line entry points (thin wrappers around the library functions), and what they share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

T = TypeVar("T", int, float)


class UsageError(Exception):
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
