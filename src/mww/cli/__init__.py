"""Command-line entry points (thin wrappers around the library functions), and what they share."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn


class UsageError(Exception):
    """An argparse or flag error, turned into exit status 2 without a traceback."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError, so the command prints its own paragraph."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def export_command(checkpoint: str | Path, args: argparse.Namespace) -> str:
    """The mww-export command for `checkpoint` with the --config/--override the command was given."""
    given = (("--config", args.config), ("--override", args.override))
    flags = " ".join(f"{flag} {value}" for flag, value in given if value)
    return f"mww-export --checkpoint {checkpoint} {flags}"
