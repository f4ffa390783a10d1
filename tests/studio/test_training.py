"""The Train page's background runs: mww-train started, refused while one runs, stopped with a
resumable checkpoint, resumed to the end; and its state read back from the run log and sidecars."""

from __future__ import annotations

import json
import os
import time

import pytest

from mww.studio import training
from mww.studio.project import StudioError
from mww.studio.training import (
    LOSS_POINTS,
    parse_run_log,
    running_run,
    start_training,
    stop_training,
    training_status,
    validations,
)
from mww.train.runlog import progress_line
from tests.studio.conftest import make_project


def test_parse_run_log_reads_the_trainers_progress_lines():
    lines = ["mww-train: mixednet, input 66 frames", "Validation at step 10:"]
    lines += [
        progress_line(0, step, 1000, step / 10, 10.0, 1.0 / step, 0.5, 0.001) for step in range(1, 1001)
    ]
    parsed = parse_run_log("\n".join(lines))
    p = parsed["progress"]
    assert (p["phase"], p["step"], p["total"], p["percent"]) == (1, 1000, 1000, 100.0)
    assert p["remaining"] == "0:00:00" and p["elapsed"] == "0:01:40"
    losses = parsed["losses"]
    assert len(losses) <= LOSS_POINTS + 1 and losses[0] == [1, 1.0] and losses[-1] == [1000, 0.001]
    half = parse_run_log(progress_line(1, 500, 1000, 60.0, 5.0, 0.25, 0.9, 0.0001))["progress"]
    assert half["phase"] == 2 and half["remaining"] == "0:01:40" and half["loss"] == "0.2500"
    assert parse_run_log("nothing yet") == {"progress": None, "losses": []}


def test_validations_come_from_the_sidecars_of_this_run(project):
    folder = project.root / "checkpoints"
    folder.mkdir()
    for step, fah in ((20, 3.0), (40, 1.0)):
        metrics = {
            "operating_point_recall": step / 100,
            "ambient_false_positives_per_hour": fah,
            "recall": 0.5,
        }
        (folder / f"checkpoint_step_{step}.json").write_text(json.dumps({"step": step, "metrics": metrics}))
    old = folder / "checkpoint_step_999.json"  # an earlier run's
    old.write_text(json.dumps({"step": 999, "metrics": {}}))
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    (folder / "best_weights.json").write_text("{}")
    rows = validations(project.config(), time.time() - 60)
    assert [
        (r["step"], r["operating_point_recall"], r["ambient_false_positives_per_hour"]) for r in rows
    ] == [
        (20, 0.2, 3.0),
        (40, 0.4, 1.0),
    ]


@pytest.mark.parametrize(
    ("code", "out", "state", "says"),
    [
        (0, "", "finished", None),
        (130, "", "stopped", "resumable"),
        (2, "mww-train: error: The positive folder is empty.\n", "failed", "mww-train: error: The positive"),
        (None, "", "failed", "killed"),
        (1, "", "finished", "no evaluation ran"),
    ],
)
def test_how_a_run_ended(code, out, state, says):
    got, message = training._ended(code, out)
    assert got == state
    assert (message is None) if says is None else (says in message)


def wait_for(condition, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


@pytest.mark.slow
def test_start_refuse_stop_and_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = make_project(tmp_path, steps=[100, 50], eval_every=50)
    began = time.perf_counter()
    record = start_training(project)
    assert record["command"] == "mww-train --config project.yaml --quiet"
    with pytest.raises(StudioError) as refused:
        start_training(project)
    print(refused.value)
    assert f"process {record['pid']}" in str(refused.value) and "already going" in str(refused.value)

    def stepping():
        status = training_status(project)
        return status if status["progress"] and status["progress"]["step"] >= 20 else None

    first = wait_for(stepping, 120, "the first progress lines")
    assert first["state"] == "running" and running_run(project)["pid"] == record["pid"]
    stop_training(project)
    stopped = wait_for(lambda: (s := training_status(project))["state"] != "running" and s, 60, "the stop")
    print(f"stopped at step {stopped['progress']['step']}: {stopped['message']}")
    assert stopped["state"] == "stopped" and stopped["resumable"]
    assert stopped["progress"]["step"] < 150
    with pytest.raises(StudioError, match="nothing to stop"):
        stop_training(project)

    resumed = start_training(project, resume=True)
    assert resumed["command"].endswith("--resume") and resumed["chain_started"] == record["chain_started"]
    done = wait_for(
        lambda: (s := training_status(project))["state"] != "running" and s, 180, "the end of the run"
    )
    print(f"stop and resume of 150 steps: {time.perf_counter() - began:.1f} s; {done['console'][-3:]}")
    assert done["state"] == "finished", done["console"]
    assert done["progress"]["step"] == 150 and done["best"]["step"] in (50, 100, 150)
    steps = [v["step"] for v in done["validations"]]
    # Step 50's validation is missing when the stop came in the middle of it (the run resumes at 50).
    assert steps in ([50, 100, 150], [100, 150]), steps
    assert done["losses"] and not any(line.startswith("I0000") for line in done["console"])


def test_a_config_that_does_not_load_is_refused_before_starting(project):
    project.config_path.write_text("base: fast_test\ntraining:\n  batch_sized: 3\n")
    with pytest.raises(Exception, match="batch_sized"):
        start_training(project)
    assert training.run_record(project) is None
    status = training_status(project)
    assert status["state"] == "idle" and "batch_sized" in status["message"]


def test_a_run_started_elsewhere_is_named(project):
    from mww.train.lock import TrainingLockedError, training_lock

    with training_lock(project.root / "checkpoints"), pytest.raises(TrainingLockedError) as refused:
        start_training(project)
    print(refused.value)
    assert f"process {os.getpid()}" in str(refused.value) and training.run_record(project) is None
