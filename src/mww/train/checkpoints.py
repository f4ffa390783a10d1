"""Checkpoints: their selection, their atomic files and loading one back into the config's model.

Selection follows the config: while the minimized metric (e.g. ambient FA/h) is above its target
(`training.selection_target`, else `training.target_minimization`), the checkpoint with the lowest
value wins; once a checkpoint is at or below target, the highest maximized metric (e.g.
recall_at_2_fah) among those within target wins.
Exact ties go to the higher clip-level AUC, then to the earlier checkpoint.

`load_checkpoint` rebuilds the non-streaming Keras model of a config and loads a .weights.h5 into
it (export, evaluation and tuning all start from one); a missing, corrupt or mismatched checkpoint
is a CheckpointError that says which.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mww.atomic import atomic_write_json
from mww.config.schema import MwwConfig, TrainingConfig
from mww.device.constants import MEL_BINS
from mww.errors import MwwError

WEIGHTS_SUFFIX = ".weights.h5"
BEST_NAME = "best_weights.weights.h5"
# Cutoff and window chosen by training, evaluation or tuning, beside the weights; mww-export reads it.
CALIBRATION_FILE = "calibration.json"
SIDECAR_SUFFIX = ".json"
TIE_BREAK_METRIC = "auc_roc"


class CheckpointError(MwwError):
    """A checkpoint that cannot be loaded, explained in one paragraph (file, likely cause, what to do)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass(frozen=True)
class Candidate:
    """An evaluated checkpoint: its step, its own metrics and the smoothed ones selection compares
    (`mww.train.validation.smoothed`; a metric missing there is compared as it is)."""

    step: int
    metrics: dict[str, float]
    smoothed: dict[str, float] = field(default_factory=dict)

    def selection_value(self, name: str) -> float:
        """The value of metric `name` that selection compares."""
        return self.smoothed.get(name, self.metrics[name])


def is_better(candidate: Candidate, best: Candidate | None, training: TrainingConfig) -> bool:
    """Whether `candidate` should replace `best` under the config's selection rule."""
    if best is None:
        return True
    low, high, target = (
        training.minimization_metric,
        training.maximization_metric,
        training.target_minimization if training.selection_target is None else training.selection_target,
    )
    c_low, b_low = candidate.selection_value(low), best.selection_value(low)
    c_ok, b_ok = c_low <= target, b_low <= target
    if c_ok != b_ok:
        return c_ok
    c_high, b_high = candidate.selection_value(high), best.selection_value(high)
    if c_ok:  # both within target: more of the maximized metric, then less of the minimized one
        key_c, key_b = (c_high, -c_low), (b_high, -b_low)
    else:
        key_c, key_b = (-c_low, c_high), (-b_low, b_high)
    if key_c != key_b:
        return key_c > key_b
    # Still tied (early on, a cautious model can have no detection at any cutoff): the one that
    # ranks positives above negatives better (clip-level AUC), if measured.
    return candidate.metrics.get(TIE_BREAK_METRIC, 0.0) > best.metrics.get(TIE_BREAK_METRIC, 0.0)


def config_hash(config: MwwConfig) -> str:
    """A short hash of the whole config, recorded beside every checkpoint."""
    blob = json.dumps(config.to_dict(), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_weights_atomic(model: Any, path: str | os.PathLike[str]) -> Path:
    """model.save_weights into a temp file in the same folder, then rename over `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=WEIGHTS_SUFFIX, dir=target.parent)
    os.close(fd)
    try:
        model.save_weights(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def sidecar_path(weights_path: str | os.PathLike[str]) -> Path:
    """`x.weights.h5` → `x.json`."""
    path = Path(weights_path)
    return path.with_name(path.name.removesuffix(WEIGHTS_SUFFIX) + SIDECAR_SUFFIX)


def write_checkpoint(
    model: Any,
    path: str | os.PathLike[str],
    step: int,
    metrics: Mapping[str, Any],
    config: MwwConfig,
    calibration: Mapping[str, Any] | None = None,
) -> Path:
    """Weights plus a JSON sidecar (step, metrics, config hash, architecture and input length, calibrated
    cutoff and window)."""
    from mww.model.plan import training_input_frames

    target = save_weights_atomic(model, path)
    sidecar = {
        "step": step,
        "metrics": dict(metrics),
        "config_hash": config_hash(config),
        "architecture": config.model.architecture,
        # what `mww-train --init-from` checks before starting from this checkpoint
        "input_frames": training_input_frames(config.hardware, config.model),
        "clip_duration_ms": config.hardware.clip_duration_ms,
    }
    if calibration:
        sidecar.update(calibration)
    atomic_write_json(sidecar_path(target), sidecar)
    return target


# --------------------------------------------------------------------------- loading


def _h5_layout(path: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the model weights in a Keras weights file (optimizer state, if saved, is ignored)."""
    import h5py

    layout: dict[str, tuple[int, ...]] = {}
    with h5py.File(path, "r") as handle:

        def visit(name: str, item: Any) -> None:
            if isinstance(item, h5py.Dataset) and name.startswith("layers/"):
                layout[name] = tuple(item.shape)

        handle.visititems(visit)
    return layout


def describe_model_config(config: MwwConfig) -> str:
    """The model keys of `config` (and the clip duration), as a refusal names them."""
    m = config.model
    return (
        f"model.architecture '{m.architecture}', first_conv_filters {m.first_conv_filters}, "
        f"first_conv_kernel_size {m.first_conv_kernel_size}, stride {m.stride}, pointwise_filters "
        f"'{m.pointwise_filters}', mixconv_kernel_sizes '{m.mixconv_kernel_sizes}', repeat_in_block "
        f"'{m.repeat_in_block}', residual_connection '{m.residual_connection}', clip_duration_ms "
        f"{config.hardware.clip_duration_ms}"
    )


def check_weights_file(path: Path) -> None:
    """The checkpoint must be an existing .weights.h5 file."""
    if not path.is_file():
        raise CheckpointError(
            f"The checkpoint {path} does not exist{' (it is a folder)' if path.is_dir() else ''}. Pass the "
            f"{WEIGHTS_SUFFIX} file written by mww-train, for example checkpoints/best_weights.weights.h5."
        )
    if not path.name.endswith(WEIGHTS_SUFFIX):
        raise CheckpointError(
            f"The checkpoint {path} is not a Keras weights file: its name must end in {WEIGHTS_SUFFIX}, "
            "as the files mww-train writes do. Pass one of those."
        )


def check_weights_fit(
    path: Path,
    model: Any,
    config: MwwConfig,
    advice: str = "Use the same config (and override) that trained this checkpoint, or pick the checkpoint "
    "of this config.",
) -> None:
    """The checkpoint must hold the weights of `model`, shape for shape; `advice` ends the refusal."""
    try:
        found = _h5_layout(path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"The checkpoint {path} is not a readable HDF5 weights file ({exc}). It is probably truncated or "
            "corrupt (an interrupted copy or training run); use another checkpoint or train again."
        ) from exc
    with tempfile.TemporaryDirectory(prefix="mww-checkpoint-") as folder:
        reference = Path(folder) / f"expected{WEIGHTS_SUFFIX}"
        model.save_weights(reference)
        expected = _h5_layout(reference)
    if found == expected:
        return
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    shapes = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
    if shapes:
        key = shapes[0]
        detail = f"weights {key} have shape {found[key]} in the checkpoint but {expected[key]} in the model"
    elif missing:
        detail = f"the checkpoint lacks weights the model has ({missing[0]})"
    else:
        detail = f"the checkpoint holds weights the model lacks ({extra[0]})"
    raise CheckpointError(
        f"The checkpoint {path} was saved from a different model than the config describes "
        f"({describe_model_config(config)}): {detail}. {advice}"
    )


def load_checkpoint(checkpoint_path: str | os.PathLike[str], config: MwwConfig) -> Any:
    """The non-streaming model of `config` with the checkpoint's weights; CheckpointError if they do not
    fit."""
    from mww.model.builder import build_model
    from mww.model.plan import ModelConfigError, training_input_frames

    path = Path(checkpoint_path)
    check_weights_file(path)
    try:
        frames = training_input_frames(config.hardware, config.model)
        model = build_model(config.model, (frames, MEL_BINS))
    except ModelConfigError as exc:
        raise CheckpointError(f"The model of this config cannot be built: {exc}") from exc
    check_weights_fit(path, model, config)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_weights(path)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"The checkpoint {path} could not be loaded into the model of this config "
            f"({describe_model_config(config)}): {str(exc).splitlines()[0]}. It was probably saved from a "
            "different architecture; use the config that trained it."
        ) from exc
    return model
