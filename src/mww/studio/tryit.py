"""The Try it page: an exported model heard on a recording, as `mww-detect` hears it.

The audio (an upload or a take recorded in the browser) is stored in `tryit/` as 16 kHz mono 16-bit
WAV, then run through the `mww-detect` engine (`mww.evaluate.listen.detect_pcm16`: the device's front
end, TFLite Micro every 30 ms, ESPHome's detector), one device start per file. Beside the detections
the page draws the model's output at every invocation and the sliding-window mean the detector
compares with the cutoff.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mww.config.schema import MwwConfig
from mww.device.constants import OUTPUT_UINT8_MAX
from mww.studio.dataset import checked_name, store_as_device_audio
from mww.studio.project import Project, StudioError

TRY_DIR = "tryit"
TRACE_POINTS = 3000  # longer traces are reduced to this many points (the highest of each stretch)


def save_audio(project: Project, name: str, data: bytes) -> Path:
    """The audio to try, stored as device audio in `tryit/`."""
    file_name = checked_name(Path(str(name)).name, "file name")
    return store_as_device_audio(project, file_name, data, project.root / TRY_DIR, Path(file_name).stem)


def exported_manifests(config: MwwConfig) -> list[str]:
    """The manifests (.json beside a .tflite) in the export folder."""
    folder = Path(config.paths.export_dir)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob("*.json") if p.with_suffix(".tflite").is_file())


def _reduced(values: np.ndarray) -> np.ndarray:
    """At most TRACE_POINTS values: the highest of each stretch, so no peak is lost."""
    if values.size <= TRACE_POINTS:
        return values
    every = -(-values.size // TRACE_POINTS)
    padded = np.pad(values, (0, (-values.size) % every), constant_values=values.min(initial=0))
    return padded.reshape(-1, every).max(axis=1)


def try_model(config: MwwConfig, manifest: str, audio: Path, armed: bool = False) -> dict[str, Any]:
    """Detections and the probability trace of the exported model `manifest` on `audio`."""
    from mww.device.runtime import invocation_seconds, load_wake_word_model, pcm16_outputs, read_device_pcm16
    from mww.evaluate.listen import detect_pcm16

    if manifest not in exported_manifests(config):
        raise StudioError(
            f"{manifest!r} is not an exported model of this project (a manifest beside its .tflite in "
            f"{config.paths.export_dir}): export one on the Export page first."
        )
    model = load_wake_word_model(Path(config.paths.export_dir) / manifest)
    pcm = read_device_pcm16(audio, convert=True)
    result = detect_pcm16(model, pcm, audio, armed=armed)
    outputs = pcm16_outputs(model, pcm).astype(np.float64)
    window = model.sliding_window_size
    means = np.convolve(outputs, np.ones(window), mode="full")[: outputs.size] / (OUTPUT_UINT8_MAX * window)
    times = invocation_seconds(np.arange(outputs.size), model.stride)
    return {
        "model": {
            "wake_word": model.wake_word,
            "manifest": manifest,
            "probability_cutoff": model.probability_cutoff,
            "sliding_window_size": window,
        },
        "audio": str(audio),
        "armed": armed,
        **result.to_dict(),
        "trace": {
            "time_s": [round(float(t), 3) for t in _reduced(np.asarray(times, dtype=np.float64))],
            "probability": [round(float(p), 4) for p in _reduced(outputs / OUTPUT_UINT8_MAX)],
            "window_mean": [round(float(m), 4) for m in _reduced(means)],
        },
    }
