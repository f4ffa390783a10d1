"""Device-identical features: the ESPHome front end (pymicro-features) and the device's int8 input.

The front end is stateful (noise estimate, PCAN gain), so every clip gets a fresh instance,
fed one 10 ms step at a time exactly as the device feeds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib.metadata import version

import numpy as np
from pymicro_features import MicroFrontend

from mww.device import constants as C
from mww.device.audio import to_pcm16
from mww.device.detection import probabilities_to_uint8

_STEP_BYTES = C.STEP_SAMPLES * C.SAMPLE_WIDTH_BYTES


def frontend_fingerprint() -> str:
    """A short hash of everything that determines the features: cache keys depend on it."""
    settings = {
        "sample_rate_hz": C.SAMPLE_RATE_HZ,
        "mel_bins": C.MEL_BINS,
        "window_size_ms": C.WINDOW_SIZE_MS,
        "window_step_ms": C.WINDOW_STEP_MS,
        "band_hz": [C.LOWER_BAND_HZ, C.UPPER_BAND_HZ],
        "noise_reduction": C.NOISE_REDUCTION,
        "pcan": C.PCAN_GAIN_CONTROL,
        "log_scale": C.LOG_SCALE,
        "pcm": "int16-x32768",
        "pymicro_features": version("pymicro-features"),
    }
    blob = json.dumps(settings, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class StreamingFrontend:
    """One device front end fed int16 PCM in pieces of any size: `feed` returns the uint16 feature rows
    (frames, 40) the pieces completed. The front end sees the same 10 ms steps in the same order however
    the audio is cut, so a recording fed block by block gives exactly `frontend_uint16` of the whole,
    while only one block is ever held in memory."""

    def __init__(self) -> None:
        self._frontend = MicroFrontend()
        self._pending = b""

    def feed(self, pcm16: np.ndarray) -> np.ndarray:
        """uint16 features of the 10 ms steps these samples (16 kHz mono int16) completed."""
        if pcm16.dtype != np.int16:
            raise TypeError(f"the front end needs int16 PCM, got {pcm16.dtype}")
        data = self._pending + pcm16.astype("<i2", copy=False).tobytes()
        rows: list[list[float]] = []
        end = len(data) - _STEP_BYTES
        offset = 0
        while offset <= end:
            result = self._frontend.process_samples(data[offset : offset + _STEP_BYTES])
            if result.samples_read <= 0:
                break
            if result.features:
                rows.append(result.features)
            offset += result.samples_read * C.SAMPLE_WIDTH_BYTES
        self._pending = data[offset:]
        if not rows:
            return np.zeros((0, C.MEL_BINS), dtype=np.uint16)
        # pymicro-features returns uint16 * FEATURE_SCALE; FEATURE_SCALE is a power-of-two fraction,
        # so dividing recovers the integers exactly.
        return np.rint(np.asarray(rows, dtype=np.float64) / C.FEATURE_SCALE).astype(np.uint16)


def frontend_uint16(pcm16: np.ndarray) -> np.ndarray:
    """Run a fresh device front end over int16 PCM; returns uint16 features of shape (frames, 40)."""
    if pcm16.dtype != np.int16:
        raise TypeError(f"frontend_uint16 needs int16 PCM, got {pcm16.dtype}")
    return StreamingFrontend().feed(pcm16)


def audio_to_uint16_features(samples: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] at the device rate → uint16 front-end features (frames, 40)."""
    return frontend_uint16(to_pcm16(samples))


def uint16_to_float(features: np.ndarray) -> np.ndarray:
    """uint16 front-end values → the float training scale (value / 25.6, about 0 to 26)."""
    return features.astype(np.float32) * np.float32(C.FEATURE_SCALE)


def float_to_uint16(features: np.ndarray) -> np.ndarray:
    """Inverse of uint16_to_float for features that came from the front end."""
    values = np.rint(np.asarray(features, dtype=np.float64) / C.FEATURE_SCALE)
    return np.clip(values, 0, C.FEATURE_UINT16_MAX).astype(np.uint16)


def audio_to_features(samples: np.ndarray) -> np.ndarray:
    """Float audio → float32 features in the training scale, as the model sees them on the device."""
    return uint16_to_float(audio_to_uint16_features(samples))


def quantize_uint16(features: np.ndarray) -> np.ndarray:
    """The device's int8 model input for uint16 front-end values (integer arithmetic, as on the ESP32)."""
    v = np.asarray(features).astype(np.int64)
    q = (v * C.DEVICE_QUANT_MULTIPLIER + C.DEVICE_QUANT_ROUNDING) // C.DEVICE_QUANT_DIVISOR
    return np.clip(q + C.INPUT_ZERO_POINT, C.INT8_MIN, C.INT8_MAX).astype(np.int8)


def quantize_features(features: np.ndarray) -> np.ndarray:
    """The device's int8 model input for float features in the training scale."""
    return quantize_uint16(float_to_uint16(features))


def dequantize_input(q: np.ndarray) -> np.ndarray:
    """int8 model input → the float value the model's input quantization (scale 26/255) stands for."""
    return (q.astype(np.float32) - np.float32(C.INPUT_ZERO_POINT)) * np.float32(C.INPUT_SCALE)


def digital_silence_features(seconds: float = 3.0) -> np.ndarray:
    """Float features of `seconds` of digital silence (all-zero samples), as a muted microphone gives
    them: a model whose output on them is above the cutoff fires on a muted microphone."""
    return uint16_to_float(frontend_uint16(np.zeros(round(seconds * C.SAMPLE_RATE_HZ), dtype=np.int16)))


def silence_output_u8(score: Callable[[list[np.ndarray]], list[np.ndarray]], seconds: float = 5.0) -> int:
    """A model's highest uint8 output on digital silence (a muted microphone), once its input window
    holds nothing else. `score` maps feature streams to the model's outputs on each (probabilities or
    uint8). No cutoff below it is shipped (`mww.train.calibration`)."""
    outputs = probabilities_to_uint8(score([digital_silence_features(seconds)])[0])
    return int(outputs[len(outputs) // 2 :].max()) if outputs.size else 0
