"""The ESPHome v2 manifest mww-export writes beside the model, and the calibration it takes its
cutoff and window from.

`build_manifest` lays out the manifest's keys, `generate_manifest` writes it for a .tflite (measuring
the tensor arena in TFLite Micro unless the config fixes it), and `load_calibration` reads the
calibration.json that training, mww-evaluate and mww-autotune write beside a checkpoint (or the one
passed with --calibration), falling back to the config's `export` values.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mww.atomic import atomic_write_text
from mww.config.schema import MwwConfig
from mww.device.constants import FEATURE_STEP_SIZE_MS, MANIFEST_TYPE, MANIFEST_VERSION
from mww.device.pymicro import MAX_SHIPPED_CUTOFF, rules_disagree
from mww.device.tflite_graph import VerifyError
from mww.device.tflm_arena import declared_arena_size, measure_tensor_arena
from mww.export.errors import ExportError
from mww.train.checkpoints import CALIBRATION_FILE


@dataclass
class Calibration:
    """Detection settings for the manifest and where they came from."""

    probability_cutoff: float
    sliding_window_size: int
    source: str
    warning: str | None = None  # why a calibration file's cutoff was not used


def measure_arena(model_bytes: bytes, what: str) -> int:
    """The tensor arena `model_bytes` needs in TFLite Micro; ExportError naming `what` when it cannot run."""
    try:
        return measure_tensor_arena(model_bytes)
    except VerifyError as exc:
        raise ExportError(
            f"The tensor arena of {what} could not be measured in TFLite Micro: {exc} Set "
            "export.tensor_arena_size to a positive number only if you know the size it needs."
        ) from exc


def build_manifest(
    model_file_name: str,
    config: MwwConfig,
    tensor_arena_size: int,
    probability_cutoff: float,
    sliding_window_size: int,
) -> dict[str, Any]:
    """The ESPHome v2 manifest as a dict, keys in the order ESPHome's documentation shows.

    `author` and `website` are optional in v2; an empty one is left out rather than written as "",
    since ESPHome checks a website it is given as a URL.
    """
    export = config.export
    optional = {k: v for k, v in (("author", export.author), ("website", export.website)) if v.strip()}
    return {
        "type": MANIFEST_TYPE,
        "wake_word": export.wake_word,
        **optional,
        "model": model_file_name,
        "trained_languages": list(export.trained_languages),
        "version": MANIFEST_VERSION,
        "micro": {
            "probability_cutoff": float(probability_cutoff),
            "feature_step_size": FEATURE_STEP_SIZE_MS,
            "sliding_window_size": int(sliding_window_size),
            "tensor_arena_size": int(tensor_arena_size),
            "minimum_esphome_version": export.minimum_esphome_version,
        },
    }


def _arena_size(model_path: Path, config: MwwConfig) -> int:
    """`export.tensor_arena_size` when positive, else the model's measured arena plus the margin."""
    if config.export.tensor_arena_size > 0:
        return config.export.tensor_arena_size
    try:
        data = model_path.read_bytes()
    except OSError as exc:
        raise ExportError(
            f"The model {model_path} could not be read ({exc.strerror or exc}); the manifest needs "
            "it to measure the tensor arena. Export the model first."
        ) from exc
    return declared_arena_size(measure_arena(data, str(model_path)))


def generate_manifest(
    model_path: str | os.PathLike[str],
    config: MwwConfig,
    output_path: str | os.PathLike[str],
    *,
    tensor_arena_size: int | None = None,
    probability_cutoff: float | None = None,
    sliding_window_size: int | None = None,
) -> dict[str, Any]:
    """Write the v2 manifest of the .tflite at `model_path` to `output_path` (atomically); return it.

    The arena size is `tensor_arena_size`, else `export.tensor_arena_size` when positive, else
    measured in TFLite Micro plus the safety margin. Cutoff and window default to the config's.
    """
    model_path = Path(model_path)
    manifest = build_manifest(
        model_path.name,
        config,
        _arena_size(model_path, config) if tensor_arena_size is None else tensor_arena_size,
        config.export.probability_cutoff if probability_cutoff is None else probability_cutoff,
        config.export.sliding_window_size if sliding_window_size is None else sliding_window_size,
    )
    try:
        written = atomic_write_text(output_path, json.dumps(manifest, indent=2) + "\n")
        if model_path.is_file():
            # The atomic write's temp file is private (0600); the manifest is as readable as its model.
            os.chmod(written, stat.S_IMODE(model_path.stat().st_mode))
    except OSError as exc:
        raise ExportError(
            f"The manifest {output_path} could not be written ({exc.strerror or exc}). Check that the "
            "folder exists and that you may write to it."
        ) from exc
    return manifest


def load_calibration(
    config: MwwConfig,
    checkpoint_path: str | os.PathLike[str],
    calibration_path: str | os.PathLike[str] | None = None,
) -> Calibration:
    """Cutoff and window from `calibration_path`, else `<checkpoint folder>/calibration.json`, else config."""
    if calibration_path is None:
        path = Path(checkpoint_path).parent / CALIBRATION_FILE
        if not path.is_file():
            return Calibration(
                config.export.probability_cutoff, config.export.sliding_window_size, "the config"
            )
    else:
        path = Path(calibration_path)
        if not path.is_file():
            raise ExportError(
                f"The calibration file {path} does not exist. Pass the calibration.json written by training "
                "or evaluation, or leave out --calibration to use the config's probability_cutoff and "
                "sliding_window_size."
            )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(
            f"The calibration file {path} is not readable JSON ({exc}). It should hold "
            '{"probability_cutoff": 0.97, "sliding_window_size": 5}; fix or delete it.'
        ) from exc
    cutoff = data.get("probability_cutoff") if isinstance(data, dict) else None
    window = data.get("sliding_window_size") if isinstance(data, dict) else None
    cutoff_ok = isinstance(cutoff, int | float) and not isinstance(cutoff, bool) and 0 < cutoff < 1
    window_ok = isinstance(window, int) and not isinstance(window, bool) and window >= 1
    if not (cutoff_ok and window_ok):
        raise ExportError(
            f"The calibration file {path} must hold a probability_cutoff between 0 and 1 (exclusive) and "
            f"an integer sliding_window_size >= 1, but it holds {json.dumps(data)[:120]}. Fix or delete it."
        )
    unsafe = _unsafe_calibration(data, float(cutoff), int(window))
    fallback = _fallback(data) if unsafe else None
    if unsafe and fallback is not None:
        f_cutoff, f_window = fallback
        warning = (
            f"the calibration in {path} (cutoff {cutoff:g}, window {window}) is not supported: {unsafe}. "
            f"Cutoff {f_cutoff:g} with window {f_window}, the fallback calibration measured (it fires less "
            "than the config's cutoff and window on the validation audio), was shipped instead; "
            "evaluate on your own audio (mww-evaluate --positives --ambient) before relying on it"
        )
        return Calibration(f_cutoff, f_window, str(path), warning)
    if unsafe:
        export = config.export
        warning = (
            f"the calibration in {path} (cutoff {cutoff:g}, window {window}) was not used: {unsafe}. The "
            f"config's probability_cutoff {export.probability_cutoff:g} and sliding_window_size "
            f"{export.sliding_window_size} were shipped instead; evaluate on more validation audio "
            "(mww-evaluate --split val) or set them yourself"
        )
        return Calibration(export.probability_cutoff, export.sliding_window_size, "the config", warning)
    return Calibration(float(cutoff), int(window), str(path))


def _fallback(data: dict) -> tuple[float, int] | None:
    """The safer point calibration recorded for an unsupported choice (`mww.train.calibration`), if
    it is one the runtimes read alike; None: fall back to the config."""
    fallback = data.get("fallback")
    if not isinstance(fallback, dict):
        return None
    cutoff, window = fallback.get("probability_cutoff"), fallback.get("sliding_window_size")
    if (
        isinstance(cutoff, bool)
        or not isinstance(cutoff, int | float)
        or not 0 < cutoff <= MAX_SHIPPED_CUTOFF
    ):
        return None
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        return None
    if rules_disagree(float(cutoff), window):
        return None
    return float(cutoff), window


def _unsafe_calibration(data: dict, cutoff: float, window: int) -> str | None:
    """Why a calibrated cutoff must not be shipped, or None: the data could not support it
    (`mww.train.calibration`), or the two runtimes read it differently (`mww.device.pymicro`)."""
    if data.get("supported") is False:
        reasons = data.get("reasons") or ["the validation data could not support it"]
        return "; ".join(str(r) for r in reasons)
    if cutoff > MAX_SHIPPED_CUTOFF:
        return rules_disagree(cutoff, window) or f"cutoffs above {MAX_SHIPPED_CUTOFF} are never shipped"
    return None
