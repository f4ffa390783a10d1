"""Starting a training run from a trained checkpoint (`mww-train --init-from`), and the one short phase
fine-tuning usually wants (`--fine-tune-steps`, `--fine-tune-learning-rate`).

A run started from a checkpoint builds the config's model, loads the checkpoint into it, and trains on
the config's data as any run does: with fresh optimizer state, and with the weights' moving average
starting at the loaded weights. The checkpoint must be of the same architecture and input length as
the config (its sidecar says which it was trained with; the weights must fit the model shape for
shape), and it must not lie in the run's own `paths.checkpoint_dir`, whose files the run replaces.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mww.config.schema import MwwConfig
from mww.config.validate import validate_config
from mww.device.constants import MEL_BINS
from mww.train.checkpoints import (
    CheckpointError,
    check_weights_file,
    check_weights_fit,
    describe_model_config,
    sidecar_path,
)

DEFAULT_FINE_TUNE_LEARNING_RATE = 0.0001
"""The learning rate of `--fine-tune-steps` unless `--fine-tune-learning-rate` is given: the last phase's
rate in every preset."""

_ADVICE = (
    "--init-from needs a checkpoint trained with the same model section and hardware.clip_duration_ms "
    "as this config: use the --config and --override that trained it (with only the data, the training "
    "keys and paths.checkpoint_dir changed), or train this config from scratch without --init-from."
)


@dataclass(frozen=True)
class InitialCheckpoint:
    """A checkpoint a run may start from: its file and what its sidecar says (empty when it has none)."""

    path: Path
    sidecar: dict[str, Any]

    @property
    def step(self) -> int | None:
        """The step of its own run at which it was saved, if its sidecar says."""
        step = self.sidecar.get("step")
        return step if isinstance(step, int) else None


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_sidecar(path: Path, sidecar: dict[str, Any], config: MwwConfig, frames: int) -> None:
    """What the sidecar records of the checkpoint's model must be what this config builds."""
    architecture = sidecar.get("architecture")
    if architecture is not None and architecture != config.model.architecture:
        raise CheckpointError(
            f"The checkpoint {path} is a '{architecture}' model (its sidecar {sidecar_path(path).name} "
            f"says so), but this config builds model.architecture '{config.model.architecture}'. {_ADVICE}"
        )
    recorded = sidecar.get("input_frames")
    if isinstance(recorded, int) and recorded != frames:
        duration = sidecar.get("clip_duration_ms")
        trained = f" (hardware.clip_duration_ms {duration})" if duration is not None else ""
        raise CheckpointError(
            f"The checkpoint {path} was trained on inputs of {recorded} feature frames{trained}, but the "
            f"model of this config takes {frames} ({describe_model_config(config)}). {_ADVICE}"
        )


def check_initial_checkpoint(checkpoint: str | os.PathLike[str], config: MwwConfig) -> InitialCheckpoint:
    """The checkpoint `--init-from` names, checked against `config` before any data is prepared.

    CheckpointError (one paragraph) when the file is missing or not a weights file, lies inside the
    run's checkpoint_dir, was trained with another architecture or input length (per its sidecar), or
    does not fit the config's model shape for shape.
    """
    from mww.model.builder import build_model
    from mww.model.plan import ModelConfigError, training_input_frames

    path = Path(checkpoint).expanduser().absolute()
    check_weights_file(path)
    run_dir = Path(config.paths.checkpoint_dir).expanduser().resolve()
    if _inside(path.resolve(), run_dir):
        raise CheckpointError(
            f"The checkpoint {path} lies in {run_dir}, the paths.checkpoint_dir this run writes its "
            "checkpoints into, where it could be replaced. Set paths.checkpoint_dir to another folder for "
            "the new run (e.g. ./checkpoints_fine_tuned in your override), or copy the checkpoint out first."
        )
    try:
        frames = training_input_frames(config.hardware, config.model)
        model = build_model(config.model, (frames, MEL_BINS))
    except ModelConfigError as exc:
        raise CheckpointError(f"The model of this config cannot be built: {exc}") from exc
    sidecar = _read_sidecar(path)
    _check_sidecar(path, sidecar, config, frames)
    check_weights_fit(path, model, config, _ADVICE)
    return InitialCheckpoint(path, sidecar)


def load_initial_weights(model: Any, initial: InitialCheckpoint) -> None:
    """Load the checked checkpoint into the run's freshly built model."""
    try:
        model.load_weights(initial.path)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"The checkpoint {initial.path} could not be loaded ({str(exc).splitlines()[0]}). It is probably "
            "damaged; use another checkpoint."
        ) from exc


def per_phase_fields(config: MwwConfig) -> list[str]:
    """The training keys that hold one value per phase (besides training_steps)."""
    return [f.name for f in dataclasses.fields(config.training) if f.metadata.get("per_phase")]


def one_phase(
    config: MwwConfig, steps: int, learning_rate: float = DEFAULT_FINE_TUNE_LEARNING_RATE
) -> MwwConfig:
    """`config` with its phases replaced by one phase of `steps` steps at `learning_rate`.

    Every other per-phase key (class weights, SpecAugment masks) keeps its last phase's value: the
    settings the model ended its own training with. Raises ConfigError for a bad number.
    """
    changed = copy.deepcopy(config)
    for name in per_phase_fields(config):
        setattr(changed.training, name, [getattr(config.training, name)[-1]])
    changed.training.training_steps = [steps]
    changed.training.learning_rates = [learning_rate]
    sources = {
        **config._sources,
        "training.training_steps": "--fine-tune-steps",
        "training.learning_rates": "--fine-tune-learning-rate",
    }
    return validate_config(changed, sources)
