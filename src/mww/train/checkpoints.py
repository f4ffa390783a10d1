"""Checkpoint selection and atomic checkpoint files.

Selection follows the config: while the minimized metric (e.g. ambient FA/h) is above its target,
the checkpoint with the lowest value wins; once a checkpoint is at or below target, the highest
maximized metric (e.g. average_viable_recall) among those within target wins.
Exact ties go to the higher clip-level AUC, then to the earlier checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mww.atomic import atomic_write_json
from mww.config.schema import MwwConfig, TrainingConfig

WEIGHTS_SUFFIX = ".weights.h5"
BEST_NAME = "best_weights.weights.h5"
# Cutoff and window chosen by training, evaluation or tuning, beside the weights; mww-export reads it.
CALIBRATION_FILE = "calibration.json"
SIDECAR_SUFFIX = ".json"
TIE_BREAK_METRIC = "auc_roc"


@dataclass(frozen=True)
class Candidate:
    """An evaluated checkpoint: its step and metrics."""

    step: int
    metrics: dict[str, float]


def is_better(candidate: Candidate, best: Candidate | None, training: TrainingConfig) -> bool:
    """Whether `candidate` should replace `best` under the config's selection rule."""
    if best is None:
        return True
    low, high, target = (
        training.minimization_metric,
        training.maximization_metric,
        training.target_minimization,
    )
    c_low, b_low = candidate.metrics[low], best.metrics[low]
    c_ok, b_ok = c_low <= target, b_low <= target
    if c_ok != b_ok:
        return c_ok
    c_high, b_high = candidate.metrics[high], best.metrics[high]
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
    """Weights plus a JSON sidecar (step, metrics, config hash, calibrated cutoff and window)."""
    target = save_weights_atomic(model, path)
    sidecar = {
        "step": step,
        "metrics": dict(metrics),
        "config_hash": config_hash(config),
        "architecture": config.model.architecture,
    }
    if calibration:
        sidecar.update(calibration)
    atomic_write_json(sidecar_path(target), sidecar)
    return target
