"""The Train page: `mww-train` in a background process that outlives the browser tab, and its state
read back from what the run writes.

Start runs `mww-train --config project.yaml` (with `--resume` to continue) through `mww.studio.launch`, in
its own session so that closing the tab, or even stopping the studio, leaves it running. The studio
keeps `.studio/train.json` (the process, its command, when it started), `.studio/train.out` (what the
process printed) and `.studio/train.exit` (its exit status, once it ended). Everything the page shows
comes from the run itself: the progress line and loss from its run log (`logs/terminal_*.log`,
`mww.train.runlog`), every validation from the checkpoint sidecars (`checkpoint_step_<step>.json`,
`mww.train.validation`), the best checkpoint from `best_weights.json`. One run at a time per project:
a second start while one runs is refused with a message naming the first, and so is a start while
another `mww-train` holds the checkpoint folder's lock (`mww.train.lock`, with its own message). Stop
sends SIGINT, as Ctrl-C on a terminal does, so mww-train saves a resumable checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mww.atomic import atomic_write_json
from mww.config.schema import MwwConfig
from mww.errors import MwwError
from mww.studio.project import CONFIG_NAME, Project, StudioError, read_layer, write_layer
from mww.train.checkpoints import BEST_NAME, sidecar_path
from mww.train.lock import training_lock
from mww.train.resume import RESUME_DIR, STATE_FILE
from mww.train.runlog import TABLE_KEYS

TRAIN_STATE = "train.json"
TRAIN_OUT = "train.out"
TRAIN_EXIT = "train.exit"
PROG = "mww-train"
LOSS_POINTS = 400  # at most this many loss points go to the page
CONSOLE_LINES = 15
PLOTTED = (
    "operating_point_recall",
    "operating_point_fah",
    "operating_point_cutoff",
    "operating_point_window",
    "ambient_false_positives_per_hour",
    "recall",
)
_PROGRESS = re.compile(
    r"Phase (?P<phase>\d+) • (?P<step>\d+)/(?P<total>\d+) • (?P<percent>[\d.]+)% • "
    r"(?P<elapsed>[\d:]+) elapsed • (?P<remaining>[\d:]+) remaining • loss=(?P<loss>\S+) "
    r"acc=(?P<acc>\S+) lr=(?P<lr>\S+)"
)
_STEP_FILE = re.compile(r"checkpoint_step_(\d+)\.json")
# TensorFlow's native start-up lines (absl logging), left out of the output shown
_NATIVE_LOG = re.compile(r"[IWEF]\d{4} |WARNING: All log messages before absl")
_children: dict[int, subprocess.Popen] = {}  # processes this studio started (reaped through poll)
_lock = threading.Lock()


def _state_file(project: Project, name: str) -> Path:
    return project.state_dir / name


def run_record(project: Project) -> dict[str, Any] | None:
    """The last run the studio started (train.json), or None."""
    try:
        return json.loads(_state_file(project, TRAIN_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Whether the process `pid` still runs and is a studio training process."""
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # the number may have been given to another program since
        return b"mww.studio.launch" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def exit_status(project: Project) -> int | None:
    """The exit status of the last run, once it ended (None while it runs or when it was killed)."""
    try:
        return int(_state_file(project, TRAIN_EXIT).read_text().strip())
    except (OSError, ValueError):
        return None


def running_run(project: Project) -> dict[str, Any] | None:
    """The run going on now, or None."""
    record = run_record(project)
    if record is None or exit_status(project) is not None or not _alive(int(record["pid"])):
        return None
    return record


def _describe(record: dict[str, Any]) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["started"]))
    return f"'{record['command']}' (process {record['pid']}, started {started})"


def start_training(project: Project, resume: bool = False) -> dict[str, Any]:
    """Start mww-train in the background; StudioError while another run of this project is going."""
    with _lock:
        running = running_run(project)
        if running is not None:
            raise StudioError(
                f"A training run is already going in this project: {_describe(running)}. One run at a time "
                "per project: wait for it to finish, or stop it (it saves a resumable checkpoint) and "
                "start again."
            )
        if not project.config_path.is_file():
            write_layer(project, read_layer(project))
        config = project.config()  # a config that does not load is refused here, with the loader's message
        with training_lock(config.paths.checkpoint_dir):
            pass  # a run started elsewhere (mww-train on a terminal) holds it: refused with its message
        args = ["--config", CONFIG_NAME, "--quiet", *(["--resume"] if resume else [])]
        exit_file = _state_file(project, TRAIN_EXIT)
        exit_file.unlink(missing_ok=True)
        previous = run_record(project)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        with open(_state_file(project, TRAIN_OUT), "wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "mww.studio.launch", str(exit_file), *args],
                cwd=project.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        _children[child.pid] = child
        started = time.time()
        record = {
            "pid": child.pid,
            "command": " ".join([PROG, *args]),
            "started": started,
            # a resumed run goes on with the validations of the run it continues
            "chain_started": previous["chain_started"] if resume and previous else started,
            "resume": resume,
        }
        atomic_write_json(_state_file(project, TRAIN_STATE), record)
        return record


def stop_training(project: Project) -> dict[str, Any]:
    """Interrupt the running training as Ctrl-C would (it saves a resumable checkpoint)."""
    running = running_run(project)
    if running is None:
        raise StudioError("No training run is going in this project, so there is nothing to stop.")
    with contextlib.suppress(ProcessLookupError):  # it ended in the meantime
        os.kill(int(running["pid"]), signal.SIGINT)
    return running


# --------------------------------------------------------------------------- reading the run back


def parse_run_log(text: str) -> dict[str, Any]:
    """The last progress line of a run log, and the loss at every logged step."""
    losses: list[list[float]] = []
    last = None
    for match in _PROGRESS.finditer(text):
        last = match
        try:
            losses.append([int(match["step"]), float(match["loss"])])
        except ValueError:
            continue
    if len(losses) > LOSS_POINTS:
        every = -(-len(losses) // LOSS_POINTS)
        losses = [*losses[:-1:every], losses[-1]]
    progress = None
    if last is not None:
        progress = {
            "phase": int(last["phase"]),
            "step": int(last["step"]),
            "total": int(last["total"]),
            "percent": float(last["percent"]),
            "elapsed": last["elapsed"],
            "remaining": last["remaining"],
            "loss": last["loss"],
            "accuracy": last["acc"],
        }
    return {"progress": progress, "losses": losses}


def _run_log(config: MwwConfig, since: float) -> Path | None:
    """The newest run log written since `since` (the run's start)."""
    folder = Path(config.performance.tensorboard_log_dir)
    logs = [p for p in folder.glob("terminal_*.log") if p.stat().st_mtime >= since - 1.0]
    return max(logs, key=lambda p: p.stat().st_mtime) if logs else None


def validations(config: MwwConfig, since: float) -> list[dict[str, Any]]:
    """Every validation of the run, from the checkpoint sidecars written since `since`, by step."""
    rows = []
    for path in Path(config.paths.checkpoint_dir).glob("checkpoint_step_*.json"):
        match = _STEP_FILE.fullmatch(path.name)
        try:
            if not match or path.stat().st_mtime < since - 1.0:
                continue
            sidecar = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being replaced right now: the next poll reads it
        metrics = sidecar.get("metrics", {})
        rows.append({"step": int(match[1]), **{k: metrics.get(k) for k in {*PLOTTED, *dict(TABLE_KEYS)}}})
    return sorted(rows, key=lambda row: row["step"])


def _failure(out: str) -> str | None:
    """The one-paragraph error mww-train printed, if it printed one."""
    errors = [line for line in out.splitlines() if line.startswith(f"{PROG}: error:")]
    return errors[-1] if errors else None


def _best(config: MwwConfig) -> dict[str, Any] | None:
    try:
        sidecar = json.loads(sidecar_path(Path(config.paths.checkpoint_dir) / BEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return {"step": sidecar.get("step"), "file": str(Path(config.paths.checkpoint_dir) / BEST_NAME)}


def _ended(code: int | None, out: str) -> tuple[str, str | None]:
    """The state and message of a run that ended with exit status `code`."""
    if code == 0:
        return "finished", None
    if code in (130, 143):  # Ctrl-C (the Stop button) or SIGTERM: mww-train saved its resumable state
        return "stopped", "Stopped: a resumable checkpoint was saved; Resume continues from it."
    if code == 1 and _failure(out) is None:
        return "finished", f"{PROG}: no evaluation ran, so no checkpoint was selected."
    if code is None:
        return "failed", f"{PROG} ended without an exit status (it was killed); see its output below."
    return "failed", _failure(out) or f"{PROG} failed with exit status {code}; see its output below."


def training_status(project: Project) -> dict[str, Any]:
    """Everything the Train page shows: state, progress with ETA, losses, validations, best checkpoint."""
    record = run_record(project)
    status: dict[str, Any] = {"state": "idle", "run": record, "table_keys": [list(k) for k in TABLE_KEYS]}
    try:
        config = project.config()
    except MwwError as exc:
        return {**status, "message": " ".join(str(exc).split())}
    resume_state = Path(config.paths.checkpoint_dir) / RESUME_DIR / STATE_FILE
    status.update(resumable=resume_state.is_file(), best=_best(config))
    if record is None:
        return {**status, "progress": None, "losses": [], "validations": []}
    try:
        out = _state_file(project, TRAIN_OUT).read_text(encoding="utf-8", errors="replace")
    except OSError:
        out = ""
    if running_run(project) is not None:
        state, message = "running", None
    else:
        state, message = _ended(exit_status(project), out)
    log = _run_log(config, float(record["started"]))
    parsed = parse_run_log(log.read_text(encoding="utf-8", errors="replace")) if log else parse_run_log("")
    return {
        **status,
        **parsed,
        "state": state,
        "message": message,
        "log": str(log) if log else None,
        "validations": validations(config, float(record["chain_started"])),
        "console": [line for line in out.splitlines() if not _NATIVE_LOG.match(line)][-CONSOLE_LINES:],
    }
