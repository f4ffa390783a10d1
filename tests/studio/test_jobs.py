"""Long actions: one at a time, with the command's error paragraph when they fail."""

from __future__ import annotations

import threading
import time

import pytest

from mww.studio.jobs import Jobs
from mww.studio.project import StudioError
from mww.synth.request import GenerationError


def finished(jobs: Jobs, job_id: int):
    for _ in range(200):
        job = jobs.get(job_id)
        if job.state != "running":
            return job
        time.sleep(0.01)
    raise AssertionError("the job did not finish")


def test_one_job_at_a_time_and_its_outcomes(capsys):
    jobs = Jobs()
    release = threading.Event()
    first = jobs.start("evaluate", "mww-evaluate", lambda: release.wait(5) and {"fah": float("inf")})
    with pytest.raises(StudioError, match="still busy with 'evaluate'"):
        jobs.start("export", "mww-export", lambda: None)
    release.set()
    assert finished(jobs, first.id).to_dict()["result"] == {"fah": None}

    def bad_input():
        raise GenerationError("The wake word '123' cannot be used:\n  give English words.")

    failed = finished(jobs, jobs.start("generate", "mww-generate", bad_input).id)
    assert failed.state == "failed"
    assert failed.error == "mww-generate: error: The wake word '123' cannot be used: give English words."

    bug = finished(jobs, jobs.start("export", "mww-export", lambda: 1 / 0).id)
    assert bug.state == "failed" and bug.error.startswith("mww-export: internal error: ZeroDivisionError")
    assert "ZeroDivisionError" in capsys.readouterr().err  # the traceback, for whoever reports the bug
    with pytest.raises(StudioError, match="no job 99"):
        jobs.get(99)
