"""Long actions (checking the dataset, generating one, evaluating, exporting, trying a model) run one
at a time on a worker thread; the page asks for the outcome until it is there.

A job that fails with an `MwwError` keeps the message the command would print for it,
`<command>: error: <one paragraph>` (`mww.cli.error_line`). Anything else is a bug: its traceback goes
to the studio's terminal and the page says so.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mww.cli import error_line
from mww.errors import MwwError
from mww.studio.evaluation import finite
from mww.studio.project import StudioError

KEPT = 50  # finished jobs remembered


@dataclass
class Job:
    """One long action and its outcome."""

    id: int
    kind: str
    prog: str  # the command the action stands for, which names its errors
    started: float = field(default_factory=time.time)
    state: str = "running"  # running, done or failed
    result: Any = None
    error: str | None = None
    finished: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        end = self.finished or time.time()
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "result": self.result,
            "error": self.error,
            "elapsed_s": round(end - self.started, 1),
        }


class Jobs:
    """The jobs of one studio: at most one running."""

    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, kind: str, prog: str, action: Callable[[], Any]) -> Job:
        """Run `action` on a worker thread; StudioError while another job runs."""
        with self._lock:
            busy = [job for job in self._jobs.values() if job.state == "running"]
            if busy:
                raise StudioError(
                    f"The studio is still busy with '{busy[0].kind}' (started "
                    f"{time.time() - busy[0].started:.0f} s ago); wait for it to finish, then try again."
                )
            job = Job(next(self._ids), kind, prog)
            self._jobs[job.id] = job
            for old in sorted(self._jobs)[:-KEPT]:
                del self._jobs[old]
        threading.Thread(target=self._run, args=(job, action), name=f"studio-{kind}", daemon=True).start()
        return job

    @staticmethod
    def _run(job: Job, action: Callable[[], Any]) -> None:
        try:
            job.result = finite(action())
            job.state = "done"
        except MwwError as exc:
            job.error, job.state = error_line(job.prog, exc), "failed"
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            job.error = (
                f"{job.prog}: internal error: {type(exc).__name__}: {exc}. This is a bug, not something to "
                "fix in the data; the traceback is in the terminal that runs mww-studio."
            )
            job.state = "failed"
        finally:
            job.finished = time.time()

    def get(self, job_id: int) -> Job:
        """The job `job_id`; StudioError when there is none."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise StudioError(f"There is no job {job_id} (the studio was restarted, or it is too old).")
        return job
