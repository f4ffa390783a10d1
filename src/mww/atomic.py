"""Atomic file writes: data goes to a temp file in the target folder, then is renamed over; and blocks of
renames that Ctrl-C and SIGTERM wait for (`signals_deferred`)."""

from __future__ import annotations

import errno
import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mww.errors import MwwError

_DEFERRED_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
# Why the system refuses a write, by errno: no room left, or no right to write there.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
NOT_WRITABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


@contextmanager
def signals_deferred() -> Iterator[None]:
    """A block that Ctrl-C (SIGINT) and SIGTERM do not interrupt: a signal that arrives meanwhile is
    raised again when the block ends, to the handler that was there before. For a few renames that
    belong together (an export's files, a training run's resumable state); a no-op outside the main
    thread, where Python runs no signal handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {}
    for signum in _DEFERRED_SIGNALS:
        handler = signal.getsignal(signum)
        if handler is not None:  # None: a handler set outside Python, left alone
            previous[signum] = signal.signal(signum, remember)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


class WriteError(MwwError, OSError):
    """A file could not be written (a full disk, a read-only folder): one paragraph naming the file
    and what to do. Also an OSError, with the cause's errno, for callers that handle those."""

    def __init__(self, target: Path, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(target))
        reason = cause.strerror or str(cause)
        if cause.errno in DISK_FULL_ERRNOS:
            fix = "the disk is full: free some space, or choose a folder on another disk, and run again"
        elif cause.errno in NOT_WRITABLE_ERRNOS:
            fix = (
                f"the folder {target.parent} is not writable for this user (or is on a read-only disk): "
                "fix its permissions, or choose a folder you can write to"
            )
        else:
            fix = "check the disk and the folder, and run again"
        self.message = (
            f"Could not write {target} ({reason}): {fix}. The file as it was before, if there was one, "
            "is untouched."
        )

    def __str__(self) -> str:
        return self.message


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` so that readers see either the old file or the whole new one; WriteError
    when the system refuses (nothing half-written is left behind)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise WriteError(target, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise WriteError(target, exc) from exc
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomic UTF-8 text write."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomic JSON write, indented and key-sorted for stable diffs."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
