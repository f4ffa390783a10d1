"""One training run per checkpoint folder: the lock `mww-train` holds on `paths.checkpoint_dir`.

Two runs writing one folder would overwrite each other's checkpoints, calibration and resumable state,
and `--resume` would then continue a run that never existed. The first run holds an exclusive lock on
`<checkpoint_dir>/.mww-train.lock` (an advisory `flock`, which the system releases when the process
ends, however it ends) and writes who it is into the file: process id, host, start time and command.
A second run finds the lock held and stops with one paragraph naming the first. A lock file left by a
run that died is not held by anyone, so the next run takes it over and says whose it was. Where the
file system cannot lock, the recorded process id decides: a run on this host that is still alive
holds it, any other record is stale.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mww.train.errors import TrainError

LOCK_NAME = ".mww-train.lock"

try:
    import fcntl
except ImportError:  # not on this system: the recorded process id decides
    fcntl = None  # type: ignore[assignment]


class TrainingLockedError(TrainError):
    """Another training run holds the checkpoint folder."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a training lock."""

    pid: int | None
    host: str
    started: str
    command: str

    @classmethod
    def me(cls) -> Holder:
        """This process."""
        return cls(
            os.getpid(),
            socket.gethostname(),
            datetime.now(UTC).isoformat(timespec="seconds"),
            " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python",
        )

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The holder recorded in a lock file; None when it records none (empty or unreadable)."""
        try:
            data: Any = json.loads(text)
            pid = data.get("pid")
            return cls(
                int(pid) if isinstance(pid, int) else None,
                str(data.get("host", "?")),
                str(data.get("started", "?")),
                str(data.get("command", "?")),
            )
        except (ValueError, AttributeError, TypeError):
            return None

    def describe(self) -> str:
        """'process 123 on host, started 2024-...: mww-train --config ...'"""
        return f"process {self.pid} on {self.host}, started {self.started} ({self.command})"

    def alive_here(self) -> bool:
        """Whether this holder is a process still running on this host."""
        if self.pid is None or self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # it exists, owned by someone else
            return True
        return True


def _refused(folder: Path, holder: Holder | None) -> TrainingLockedError:
    who = holder.describe() if holder else "a process that has not written its name yet"
    return TrainingLockedError(
        f"Another training run is using the checkpoint folder {folder}: {who}. Two runs in one folder "
        "would overwrite each other's checkpoints and resumable state. Wait for that run to finish (or stop "
        "it), or give this run another paths.checkpoint_dir."
    )


def _open_locked(path: Path) -> tuple[int, Holder | None]:
    """(descriptor of the lock file, holding its lock; the holder it recorded before). Raises
    TrainingLockedError when a live run holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        previous = Holder.parse(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        try:
            if fcntl is None:
                raise OSError(errno.ENOLCK, "no flock")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _refused(path.parent, previous) from None
        except OSError:  # a file system without locks: trust the recorded process id
            if previous is not None and previous.alive_here() and previous.pid != os.getpid():
                os.close(fd)
                raise _refused(path.parent, previous) from None
        try:  # the holder may have released and removed the file between our open and our lock
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, previous
        os.close(fd)


@contextmanager
def training_lock(checkpoint_dir: str | os.PathLike[str]) -> Iterator[Holder | None]:
    """Hold the training lock of `checkpoint_dir` for the block; yields the holder of a stale lock that
    was taken over (None when there was none). TrainingLockedError when another run holds it."""
    folder = Path(checkpoint_dir)
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # removed again if left empty
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:
        fd, previous = _open_locked(path)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        record = json.dumps(Holder.me().__dict__).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        os.fsync(fd)
        yield previous
    finally:
        with suppress(OSError):
            path.unlink()  # still holding the lock, so no other run is between its open and its lock
        os.close(fd)
        _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders the lock created, deepest first, where the run left them empty."""
    for folder in folders:
        with suppress(OSError):
            folder.rmdir()


def lock_holder(checkpoint_dir: str | os.PathLike[str]) -> Holder | None:
    """Who the lock file of `checkpoint_dir` names (None without one)."""
    try:
        return Holder.parse((Path(checkpoint_dir) / LOCK_NAME).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
