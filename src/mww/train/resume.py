"""The resumable state of an interrupted training run, in `<checkpoint_dir>/resume/`.

The folder holds the model's raw weights, the optimizer's variables, the weights' moving average
(when `training.ema_decay` is on) and state.json: the step reached, the config hash and what the
trainer carries from one validation to the next (the best checkpoint so far and the history).
Resuming refuses a folder written under another config, or one whose arrays do not fit the model.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mww.atomic import atomic_write_bytes, atomic_write_json, signals_deferred
from mww.config.schema import MwwConfig
from mww.train.checkpoints import config_hash, save_weights_atomic
from mww.train.errors import TrainError
from mww.train.weight_average import WeightAverage

RESUME_DIR = "resume"
STATE_FILE = "state.json"
WEIGHTS_FILE = "weights.weights.h5"
OPTIMIZER_FILE = "optimizer.npz"
AVERAGE_FILE = "average.npz"


def resume_dir(config: MwwConfig) -> Path:
    """The folder of the resumable state: `<checkpoint_dir>/resume`."""
    return Path(config.paths.checkpoint_dir) / RESUME_DIR


def write_arrays(path: Path, arrays: Sequence[np.ndarray]) -> None:
    """Save a list of arrays (resume state) atomically, in order."""
    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    atomic_write_bytes(path, buffer.getvalue())


def read_arrays(path: Path) -> list[np.ndarray]:
    """The arrays `write_arrays` saved, in order."""
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def save_resume(
    config: MwwConfig,
    model: Any,
    optimizer: Any,
    average: WeightAverage | None,
    step: int,
    state: Mapping[str, Any],
) -> None:
    """Write everything a run needs to go on after `step`; `state` is the trainer's own (JSON-ready).
    Ctrl-C and SIGTERM wait until all of it is written, so the files always belong to one step."""
    folder = resume_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    with signals_deferred():
        save_weights_atomic(model, folder / WEIGHTS_FILE)
        write_arrays(folder / OPTIMIZER_FILE, [np.asarray(v) for v in optimizer.variables])
        if average is not None:
            write_arrays(folder / AVERAGE_FILE, average.state())
        atomic_write_json(folder / STATE_FILE, {**state, "step": step, "config_hash": config_hash(config)})


def _read_state(config: MwwConfig, folder: Path) -> dict[str, Any]:
    """state.json of `folder`, refused when missing or written under another config."""
    state_path = folder / STATE_FILE
    if not state_path.exists():
        raise TrainError(
            f"--resume found no resumable checkpoint in {folder}. Start without --resume, or point "
            "paths.checkpoint_dir at the folder of the interrupted run."
        )
    state = json.loads(state_path.read_text())
    if state.get("config_hash") != config_hash(config):
        raise TrainError(
            f"The checkpoint in {folder} was made with a different config (hash "
            f"{state.get('config_hash')}, now {config_hash(config)}). Resume with the same --config "
            "and --override, or start anew."
        )
    return state


def load_resume(
    config: MwwConfig, model: Any, optimizer: Any, average: WeightAverage | None
) -> dict[str, Any]:
    """Restore weights, optimizer and moving average saved by `save_resume`; returns the saved state
    (with its `step`). TrainError when there is nothing to resume or it does not fit."""
    folder = resume_dir(config)
    state = _read_state(config, folder)
    model.load_weights(folder / WEIGHTS_FILE)
    optimizer.build(model.trainable_variables)
    values = read_arrays(folder / OPTIMIZER_FILE)
    if len(values) != len(optimizer.variables):
        raise TrainError(f"The optimizer state in {folder} does not match the model; start without --resume.")
    for var, value in zip(optimizer.variables, values, strict=True):
        var.assign(value)
    if average is not None:
        try:
            average.load_state(read_arrays(folder / AVERAGE_FILE))
        except (OSError, ValueError) as exc:
            raise TrainError(
                f"The weights' moving average in {folder / AVERAGE_FILE} is missing or does not match "
                f"the model ({exc}); start without --resume."
            ) from exc
    return state
