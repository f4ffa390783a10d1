"""Run an exported wake-word model the way the ESP32 runs it (TFLite Micro, no TensorFlow).

audio → the device's front end (`mww.device.features`, pymicro-features) → the device's int8 input rule →
TFLite Micro, invoked every `stride` feature frames → one uint8 output per invocation. A fresh
interpreter per stream is a fresh device start (ring buffers zero). What the detector then does with
the outputs is `mww.device.detection`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf

from mww.device import audio
from mww.device import constants as C
from mww.device.audio import AudioError, audio_blocks, load_audio, to_pcm16
from mww.device.features import (
    StreamingFrontend,
    audio_to_features,
    frontend_uint16,
    quantize_features,
    quantize_uint16,
    uint16_to_float,
)
from mww.device.tflite_graph import VerifyError, analyze_model_architecture
from mww.device.tflm_arena import declared_arena_size, measure_tensor_arena
from mww.errors import MwwError


class FeatureRows(Protocol):
    """Float feature rows (frames, 40): an array, or a view that converts the rows it is sliced to."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, index: slice) -> np.ndarray: ...


class ModelLoadError(MwwError):
    """The model or its manifest cannot be run; the message says what to do."""


@dataclass(frozen=True)
class WakeWordModel:
    """An exported model ready to stream: its bytes, the detector settings and the arena it needs."""

    tflite_path: Path
    model_bytes: bytes
    wake_word: str
    probability_cutoff: float
    sliding_window_size: int
    tensor_arena_size: int
    stride: int
    manifest_path: Path | None = None


def _wake_word_shape(path: Path) -> int:
    """The model's stride, after checking its tensors are a wake-word model's; raises ModelLoadError."""
    try:
        report = analyze_model_architecture(path)
    except VerifyError as exc:
        raise ModelLoadError(str(exc)) from exc
    problems = []
    if len(report.inputs) != 1 or len(report.outputs) != 1:
        problems.append(f"{len(report.inputs)} inputs and {len(report.outputs)} outputs (expected 1 and 1)")
    else:
        inp, out = report.inputs[0], report.outputs[0]
        if (
            inp.dtype != C.INPUT_DTYPE
            or len(inp.shape) != 3
            or inp.shape[0] != 1
            or inp.shape[2] != C.MEL_BINS
        ):
            problems.append(
                f"input {inp.dtype} {inp.shape} (expected {C.INPUT_DTYPE} [1, stride, {C.MEL_BINS}])"
            )
        if out.dtype != C.OUTPUT_DTYPE or out.shape != [1, 1]:
            problems.append(f"output {out.dtype} {out.shape} (expected {C.OUTPUT_DTYPE} [1, 1])")
    if problems:
        raise ModelLoadError(
            f"{path} is not a streaming wake-word model: it has {'; '.join(problems)}. Pass a model "
            "exported by mww-export (or an official micro_wake_word v2 model); run mww-verify on it "
            "for the full list of checks."
        )
    return int(report.inputs[0].shape[1])


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelLoadError(
            f"The manifest {path} does not exist. Pass the .json written by mww-export."
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            f"The manifest {path} could not be read as JSON ({exc}). Pass the .json written by mww-export."
        ) from exc
    micro = data.get("micro") if isinstance(data, dict) else None
    if not isinstance(micro, dict) or not isinstance(data.get("model"), str):
        raise ModelLoadError(
            f'The manifest {path} is not a micro_wake_word manifest: it needs a "model" file name and a '
            '"micro" section. Pass the .json written by mww-export; mww-verify lists what is missing.'
        )
    return data


def _cutoff(value: object, path: Path) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= float(value) <= 1.0:
        return float(value)
    raise ModelLoadError(
        f"The probability cutoff {value!r} for {path} is not a number between 0 and 1. Fix "
        "micro.probability_cutoff in the manifest (or the value given), or export the model again."
    )


def _window(value: object, path: Path) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ModelLoadError(
        f"The sliding window size {value!r} for {path} is not a whole number of at least 1. Fix "
        "micro.sliding_window_size in the manifest (or the value given), or export the model again."
    )


def load_wake_word_model(
    path: str | os.PathLike[str],
    manifest: str | os.PathLike[str] | None = None,
    *,
    probability_cutoff: float | None = None,
    sliding_window_size: int | None = None,
) -> WakeWordModel:
    """Load a model from its manifest (`path` ends in .json) or a .tflite (manifest optional).

    Without a manifest the cutoff and window must be given; the arena is then measured. Explicit
    `probability_cutoff` / `sliding_window_size` override the manifest's.
    """
    path = Path(path)
    manifest_path = Path(manifest) if manifest is not None else None
    if path.suffix.lower() == ".json" and manifest_path is None:
        manifest_path = path
        path = None  # type: ignore[assignment]
    data: dict[str, Any] = {}
    if manifest_path is not None:
        data = _read_manifest(manifest_path)
        if path is None:
            path = manifest_path.parent / data["model"]
            if not path.is_file():
                raise ModelLoadError(
                    f"The manifest {manifest_path} names the model {data['model']!r}, but {path} does not "
                    "exist. Keep the .tflite next to its manifest (mww-export writes both into one folder)."
                )
    if not path.is_file():
        raise ModelLoadError(f"The model file {path} does not exist. Pass the .tflite written by mww-export.")
    stride = _wake_word_shape(path)
    micro = data.get("micro", {})
    src = manifest_path or path
    if probability_cutoff is None:
        if "probability_cutoff" not in micro:
            raise ModelLoadError(
                f"No probability cutoff for {path}: pass its manifest (.json) or give the cutoff explicitly."
            )
        probability_cutoff = micro["probability_cutoff"]
    if sliding_window_size is None:
        if "sliding_window_size" not in micro:
            raise ModelLoadError(
                f"No sliding window size for {path}: pass its manifest (.json) or give the window explicitly."
            )
        sliding_window_size = micro["sliding_window_size"]
    cutoff = _cutoff(probability_cutoff, src)
    window = _window(sliding_window_size, src)
    model_bytes = path.read_bytes()
    arena = micro.get("tensor_arena_size")
    if not (isinstance(arena, int) and not isinstance(arena, bool) and arena > 0):
        try:
            arena = declared_arena_size(measure_tensor_arena(model_bytes))
        except VerifyError as exc:
            raise ModelLoadError(f"{path} does not run in TFLite Micro: {exc}") from exc
    return WakeWordModel(
        tflite_path=path,
        model_bytes=model_bytes,
        wake_word=str(data.get("wake_word", path.stem)),
        probability_cutoff=cutoff,
        sliding_window_size=window,
        tensor_arena_size=int(arena),
        stride=stride,
        manifest_path=manifest_path,
    )


def device_chunks(features: np.ndarray, stride: int) -> np.ndarray:
    """The int8 model inputs [n, 1, stride, 40] the device makes of float features (whole chunks only)."""
    frames = (features.shape[0] // stride) * stride
    return quantize_features(np.asarray(features[:frames])).reshape(-1, 1, stride, C.MEL_BINS)


def run_invocations(interpreter: Any, chunks: np.ndarray) -> np.ndarray:
    """Invoke a TFLite Micro interpreter once per int8 input chunk, in order; its uint8 outputs."""
    outputs = np.empty(len(chunks), dtype=np.uint8)
    for i, chunk in enumerate(chunks):
        interpreter.set_input(chunk, 0)
        interpreter.invoke()
        outputs[i] = int(np.asarray(interpreter.get_output(0)).reshape(-1)[0])
    return outputs


INVOCATIONS_PER_BLOCK = 4096  # invocations quantized and run at a time by `stream_outputs`


def stream_outputs(model: WakeWordModel, features: FeatureRows) -> np.ndarray:
    """uint8 outputs of one device start over float features (frames, 40), one per invocation.

    The features are read `INVOCATIONS_PER_BLOCK` invocations at a time, so a long recording's
    features may be a lazily converted view (`mww.data.feature_store.FloatFeatures`) that is never whole
    in memory as float32."""
    interpreter = open_interpreter(model)
    frames = (features.shape[0] // model.stride) * model.stride
    step = INVOCATIONS_PER_BLOCK * model.stride
    parts = [
        run_invocations(interpreter, device_chunks(features[start : min(start + step, frames)], model.stride))
        for start in range(0, frames, step)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)


DEVICE_AUDIO = f"{C.SAMPLE_RATE_HZ} Hz mono 16-bit PCM"
_DEVICE_SUBTYPE = "PCM_16"


def _audio_header(path: Path) -> Any:
    """soundfile's header of `path`; AudioError naming the file when it is missing or not audio."""
    if path.is_symlink() and not path.exists():
        raise AudioError(
            "broken_link",
            f"The audio file {path} is a link to {os.readlink(path)}, which does not exist (a moved "
            "folder or an unplugged drive?). Fix or remove the link.",
        )
    if not path.is_file():
        what = "is a folder, not an audio file" if path.is_dir() else "does not exist"
        raise AudioError("missing", f"The audio file {path} {what}. Pass WAV files of {DEVICE_AUDIO}.")
    try:
        return sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt or unknown files
        raise AudioError(
            "unreadable",
            f"The audio file {path} could not be read ({exc}). It is not audio soundfile can decode, or "
            f"it is truncated; pass a WAV file of {DEVICE_AUDIO}.",
        ) from exc


def _format_problem(info: Any) -> str | None:
    """What differs from what the device hears, or None when the file is 16 kHz mono 16-bit PCM."""
    found = []
    if int(info.samplerate) != C.SAMPLE_RATE_HZ:
        found.append(f"{info.samplerate} Hz")
    if int(info.channels) != 1:
        found.append(f"{info.channels} channels")
    if info.subtype != _DEVICE_SUBTYPE:
        found.append(f"{info.subtype_info or info.subtype} samples")
    return ", ".join(found) or None


def _needs_conversion(path: Path, convert: bool) -> bool:
    """True when `path` is not 16 kHz mono 16-bit PCM and `convert` allows converting it; else AudioError."""
    problem = _format_problem(_audio_header(path))
    if problem is not None and not convert:
        stem = path.with_suffix("").name
        raise AudioError(
            "format",
            f"The audio file {path} has {problem}, but the device hears {DEVICE_AUDIO}, so it is not "
            "converted silently. Convert it, e.g. with 'ffmpeg -i "
            f"{path.name} -ar {C.SAMPLE_RATE_HZ} -ac 1 -c:a pcm_s16le {stem}_16k.wav' or 'sox {path.name} "
            f"-r {C.SAMPLE_RATE_HZ} -c 1 -b 16 {stem}_16k.wav', or let the tool convert it (mww-detect "
            "--convert: polyphase resampling and channel averaging with mww.device.audio).",
        )
    return problem is not None


def read_device_audio(path: str | os.PathLike[str], convert: bool = False) -> np.ndarray:
    """Audio as the device hears it: float32 mono samples at 16 kHz in [-1, 1).

    The file must be 16 kHz mono 16-bit PCM, what the device's microphone delivers; anything else is
    an AudioError("format") saying what was found and how to convert it, unless `convert` is true:
    then it is mixed down and resampled with `mww.device.audio.load_audio`. A missing or undecodable file
    is an AudioError naming it.
    """
    path = Path(path)
    _needs_conversion(path, convert)
    try:
        return load_audio(path)
    except AudioError as exc:
        raise AudioError(
            exc.reason,
            f"The audio file {path} could not be decoded ({exc.detail}); pass a WAV file of {DEVICE_AUDIO}.",
        ) from exc


def read_device_pcm16(path: str | os.PathLike[str], convert: bool = False) -> np.ndarray:
    """The int16 samples the device's front end gets, checked like `read_device_audio`.

    A 16 kHz mono 16-bit file gives its samples exactly as stored; with `convert`, other files are
    converted with `mww.device.audio.load_audio` and `mww.device.audio.to_pcm16`.
    """
    path = Path(path)
    if _needs_conversion(path, convert):
        return to_pcm16(read_device_audio(path, convert=True))
    try:
        samples, _rate = sf.read(str(path), dtype="int16", always_2d=False)
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise AudioError(
            "unreadable",
            f"The audio file {path} could not be decoded ({exc}); pass a WAV file of {DEVICE_AUDIO}.",
        ) from exc
    return np.asarray(samples, dtype=np.int16).reshape(-1)


def read_device_pcm16_blocks(path: str | os.PathLike[str], convert: bool = False) -> Iterator[np.ndarray]:
    """The int16 samples of `read_device_pcm16`, in consecutive blocks (`mww.device.audio.audio_blocks`):
    a recording of hours is never whole in memory. The file is checked when this is called, before the
    first block (AudioError naming it), so many files can be checked before any is run."""
    path = Path(path)
    converted = _needs_conversion(path, convert)

    def blocks() -> Iterator[np.ndarray]:
        try:
            if converted:
                for block in audio_blocks(path):
                    yield to_pcm16(block)
                return
            with sf.SoundFile(str(path)) as handle:
                frames = round(audio.BLOCK_SECONDS * C.SAMPLE_RATE_HZ)
                while (block := handle.read(frames, dtype="int16")).size:
                    yield np.asarray(block, dtype=np.int16).reshape(-1)
        except AudioError as exc:
            raise AudioError(
                exc.reason,
                f"The audio file {path} could not be decoded ({exc.detail}); pass a WAV file of "
                f"{DEVICE_AUDIO}.",
            ) from exc
        except Exception as exc:  # soundfile raises several types for corrupt input
            raise AudioError(
                "unreadable",
                f"The audio file {path} could not be decoded ({exc}); pass a WAV file of {DEVICE_AUDIO}.",
            ) from exc

    return blocks()


def pcm16_outputs(model: WakeWordModel, pcm16: np.ndarray) -> np.ndarray:
    """uint8 outputs of one device start over int16 PCM at 16 kHz (the device's own samples)."""
    return stream_outputs(model, uint16_to_float(frontend_uint16(np.asarray(pcm16, dtype=np.int16))))


def audio_outputs(model: WakeWordModel, samples: np.ndarray) -> np.ndarray:
    """uint8 outputs of one device start over float audio samples at 16 kHz."""
    return stream_outputs(model, audio_to_features(samples))


def invocation_seconds(index: int | np.ndarray, stride: int) -> float | np.ndarray:
    """Time (s from the start of the audio) at which invocation `index` (0-based) has its input.

    Invocation k sees the features up to frame (k + 1) * stride; frame f ends at
    WINDOW_SIZE_MS + (f - 1) * WINDOW_STEP_MS milliseconds of audio.
    """
    frames = (np.asarray(index) + 1) * stride
    return (C.WINDOW_SIZE_MS + (frames - 1) * C.WINDOW_STEP_MS) / 1000.0


def open_interpreter(model: WakeWordModel) -> Any:
    """A fresh TFLite Micro interpreter of `model` (a device start); ModelLoadError if it cannot allocate."""
    from tflite_micro.python.tflite_micro import runtime

    try:
        return runtime.Interpreter.from_bytes(model.model_bytes, arena_size=model.tensor_arena_size)
    except Exception as exc:  # the wrapper raises a bare RuntimeError on allocation failures
        raise ModelLoadError(
            f"{model.tflite_path} does not allocate in TFLite Micro with a {model.tensor_arena_size}-byte "
            f"arena ({exc}). Raise micro.tensor_arena_size in the manifest, or export again."
        ) from exc


class DeviceStream:
    """One device start fed audio as it arrives: the front end, the int8 input rule and TFLite Micro.

    `feed(pcm16)` takes any number of int16 samples (bytes or an array) and returns the uint8 outputs
    of the invocations they completed. The front end runs on 10 ms steps and the model on every
    `stride` frames, as the device does, so feeding a recording in pieces of any size gives exactly
    `pcm16_outputs` of the whole recording.
    """

    def __init__(self, model: WakeWordModel) -> None:
        self.model = model
        self._interpreter = open_interpreter(model)
        self._frontend = StreamingFrontend()
        self._rows = np.zeros((0, C.MEL_BINS), dtype=np.uint16)  # frames not yet a whole invocation
        self.samples_fed = 0
        self.invocations = 0

    @property
    def seconds_fed(self) -> float:
        """Seconds of audio fed so far."""
        return self.samples_fed / C.SAMPLE_RATE_HZ

    def feed(self, pcm16: bytes | np.ndarray) -> np.ndarray:
        """uint8 outputs of the invocations completed by these samples (16 kHz mono int16)."""
        samples = (
            np.frombuffer(pcm16, dtype="<i2") if isinstance(pcm16, bytes) else np.asarray(pcm16, np.int16)
        ).reshape(-1)
        self.samples_fed += samples.size
        rows = np.concatenate([self._rows, self._frontend.feed(samples.astype(np.int16, copy=False))])
        whole = (rows.shape[0] // self.model.stride) * self.model.stride
        self._rows = rows[whole:]
        chunks = quantize_uint16(rows[:whole]).reshape(-1, 1, self.model.stride, C.MEL_BINS)
        outputs = run_invocations(self._interpreter, chunks)
        self.invocations += outputs.size
        return outputs


def recording_outputs(model: WakeWordModel, blocks: Iterable[np.ndarray]) -> tuple[np.ndarray, int]:
    """(uint8 outputs, samples) of one device start over a recording given as int16 blocks
    (`read_device_pcm16_blocks`): exactly `pcm16_outputs` of the whole, in the memory of one block."""
    stream = DeviceStream(model)
    outputs = [stream.feed(block) for block in blocks]
    return (np.concatenate(outputs) if outputs else np.zeros(0, np.uint8)), stream.samples_fed


__all__ = [
    "DEVICE_AUDIO",
    "AudioError",
    "DeviceStream",
    "ModelLoadError",
    "WakeWordModel",
    "audio_outputs",
    "invocation_seconds",
    "load_wake_word_model",
    "open_interpreter",
    "pcm16_outputs",
    "read_device_audio",
    "read_device_pcm16",
    "read_device_pcm16_blocks",
    "recording_outputs",
    "stream_outputs",
]
