"""The one base of every error a user can cause, and how a command reports it.

Every stage raises a subclass of `MwwError` for bad input (a missing folder, a corrupt checkpoint, a
config value out of range): its message is one paragraph saying what was wrong, which file, and what
to do. The command-line runner (`mww.cli.run_command`) catches `MwwError` alone, prints the message
after the command's name and exits with `exit_code`, so a new command cannot forget a case. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MwwError(Exception):
    """Bad input or a failed precondition, explained in one paragraph; the command exits with
    `exit_code` (2: the user has something to fix)."""

    exit_code: int = 2
