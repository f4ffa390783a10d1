"""`mww.cli.run_command`, which every command runs through: what a user sees when the system refuses a
file, and when the command is stopped with Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import time

import pytest

from mww.cli import EXIT_TERMINATED, Parser, run_command


def _run(action, capsys) -> tuple[int, str]:
    code = run_command("mww-test", Parser(prog="mww-test"), action, [])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, " ".join(err.split())


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EACCES, "may not write there"),
        (errno.EROFS, "read-only folder or disk"),
    ],
    ids=["full-disk", "permission", "read-only-disk"],
)
def test_a_file_the_system_refuses_is_one_paragraph_and_exit_2(capsys, code, expected):
    def refused(args: argparse.Namespace) -> int:
        raise OSError(code, os.strerror(code), "/data/processed/splits.json")

    status, err = _run(refused, capsys)
    print(f"{errno.errorcode[code]}: exit {status}: {err}")
    assert status == 2 and err.startswith("mww-test: error:") and "/data/processed/splits.json" in err
    assert expected in err


def test_other_system_errors_are_bugs_and_keep_their_traceback(capsys):
    def bug(args: argparse.Namespace) -> int:
        raise OSError(errno.ENOENT, "No such file or directory", "/tmp/x")

    with pytest.raises(FileNotFoundError):
        run_command("mww-test", Parser(prog="mww-test"), bug, [])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_command_cleanly_with_its_exit_code(capsys, signum):
    cleaned = []

    def working(args: argparse.Namespace) -> int:
        try:
            os.kill(os.getpid(), signum)
            time.sleep(5)
            return 0
        finally:
            cleaned.append(True)  # the command's own clean-up runs, as on Ctrl-C

    before = signal.getsignal(signal.SIGTERM)
    status, err = _run(working, capsys)
    print(f"{signal.Signals(signum).name}: exit {status}: {err}")
    assert status == {signal.SIGINT: 130, signal.SIGTERM: EXIT_TERMINATED}[signum] and cleaned == [True]
    assert err == "mww-test: interrupted"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the command's only
