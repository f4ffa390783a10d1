"""One training run per checkpoint folder: a second run is refused with a message naming the first,
and the lock of a run that died is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from mww.train.lock import LOCK_NAME, TrainingLockedError, lock_holder, training_lock

HOLD = (
    "import sys, time\n"
    "from mww.train.lock import training_lock\n"
    "with training_lock(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(120)\n"
)


def _holder_process(folder) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_on_the_same_folder_is_refused_naming_the_first(tmp_path):
    with training_lock(tmp_path / "checkpoints") as stale:
        assert stale is None
        holder = lock_holder(tmp_path / "checkpoints")
        assert holder is not None and holder.pid == os.getpid() and holder.host == socket.gethostname()
        with pytest.raises(TrainingLockedError) as refused, training_lock(tmp_path / "checkpoints"):
            pass
    message = str(refused.value)
    print(f"second run: {message}")
    assert f"process {os.getpid()} on {socket.gethostname()}, started {holder.started}" in message
    assert str(tmp_path / "checkpoints") in message and "paths.checkpoint_dir" in message
    assert not (tmp_path / "checkpoints" / LOCK_NAME).exists()  # released: the next run starts
    with training_lock(tmp_path / "checkpoints") as stale:
        assert stale is None


def test_mww_train_refuses_a_folder_another_process_trains_in_and_takes_over_after_it_died(tmp_path, capsys):
    from mww.cli.train import main
    from mww.config.load import config_from_dict, dump_config

    folder = tmp_path / "checkpoints"
    cfg = config_from_dict({"paths": {"checkpoint_dir": str(folder), "positive_dir": str(tmp_path / "none")}})
    cfg_path = dump_config(cfg, tmp_path / "cfg.yaml")
    other = _holder_process(folder)
    try:
        code = main(["--config", str(cfg_path), "--quiet"])
        err = capsys.readouterr().err
        print(f"while process {other.pid} trains: exit {code}: {err.strip()}")
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert f"process {other.pid} on {socket.gethostname()}" in err and "Another training run" in err
    finally:
        other.kill()  # dies without releasing anything: the lock file stays, naming it
        other.wait()
    assert json.loads((folder / LOCK_NAME).read_text())["pid"] == other.pid
    with training_lock(folder) as stale:
        print(f"after it was killed: took over the lock of process {stale.pid if stale else None}")
        assert stale is not None and stale.pid == other.pid
        assert lock_holder(folder).pid == os.getpid()


def test_a_lock_file_without_a_lock_is_stale_however_it_was_left(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)
    for content in ("", "{not json", json.dumps({"pid": dead_pid, "host": socket.gethostname()})):
        (folder / LOCK_NAME).write_text(content)
        start = time.monotonic()
        with training_lock(folder) as stale:
            print(f"lock file {content[:30]!r}: taken over in {time.monotonic() - start:.3f} s")
            assert (
                (stale is not None and stale.pid == dead_pid) if content.startswith('{"') else stale is None
            )
