"""The training process the studio starts: `python -m mww.studio.launch EXIT_FILE ARGS...` runs
`mww-train ARGS...` (its own `main`) and writes its exit status to EXIT_FILE when it ends.

Ctrl-C's handler is put back first: a process started from a shell in the background inherits an
ignored SIGINT, and the studio's Stop button relies on SIGINT making mww-train save a resumable
checkpoint, as Ctrl-C does on a terminal.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from mww.atomic import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    """Run mww-train with `argv[1:]`, record its exit status in the file `argv[0]`; returns it."""
    args = sys.argv[1:] if argv is None else argv
    exit_file, train_args = Path(args[0]), args[1:]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 1  # a crash (a bug: its traceback is in the output) ends as a failure
    try:
        from mww.cli.train import main as train

        code = train(train_args)
    finally:
        atomic_write_text(exit_file, f"{code}\n")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
