"""Hear a model for yourself before flashing: detections on audio files or a live microphone.

Everything runs the way the ESP32 runs it: the device's front end, its int8 input rule, TFLite Micro
stepped every `stride` frames (`mww.device.runtime`), and ESPHome's detector
(`mww.device.detection.DeviceDetector`:
sliding-window mean against the integer cutoff, start-up suppression and refractory period). Each
file is one device start (fresh model state, fresh detector); a microphone session is one device
start that keeps running. A detection is reported with the time at which the invocation that fired
had its input (`mww.device.runtime.invocation_seconds`) and the window mean as the device computes it,
``sum(window) / (255 * window)``. Beside them, where Home Assistant's detector (pymicro-wakeword,
`mww.device.pymicro`) would start detecting on the same outputs, so a manifest that means different
things on the two runtimes shows.

The microphone needs the optional `sounddevice` package (``pip install sounddevice``), which is not
a dependency of this project.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from mww.device import constants as C
from mww.device.detection import DeviceDetector, detect, rearm_invocations
from mww.device.pymicro import pymicro_detect
from mww.device.runtime import (
    DEVICE_AUDIO,
    DeviceStream,
    WakeWordModel,
    invocation_seconds,
    pcm16_outputs,
    read_device_pcm16_blocks,
    recording_outputs,
)
from mww.errors import MwwError

_SOUNDDEVICE_HINT = (
    "Live listening needs the optional 'sounddevice' package and a working audio input: install it "
    "with 'pip install sounddevice' (it brings PortAudio on Windows and macOS; on Linux install "
    "libportaudio2 too)"
)


class LiveError(MwwError):
    """Live detection cannot run; the message is one paragraph saying what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass(frozen=True)
class Detection:
    """One detection: the invocation that fired, its time and the window mean that fired."""

    invocation: int
    time_s: float
    probability: float
    window_sum: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "time_s": round(self.time_s, 3),
            "probability": round(self.probability, 4),
            "window_sum": self.window_sum,
            "invocation": self.invocation,
        }


@dataclass
class FileDetections:
    """What one file (one device start) gave."""

    path: Path
    duration_s: float
    invocations: int
    detections: list[Detection]
    peak_probability: float | None = None
    peak_time_s: float | None = None
    suppressed_at_start: list[float] = field(default_factory=list)
    # Where Home Assistant's detector (pymicro-wakeword: float mean, no suppression) starts detecting.
    home_assistant: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "path": str(self.path),
            "duration_s": round(self.duration_s, 3),
            "invocations": self.invocations,
            "detections": [d.to_dict() for d in self.detections],
            "peak_probability": None if self.peak_probability is None else round(self.peak_probability, 4),
            "peak_time_s": None if self.peak_time_s is None else round(self.peak_time_s, 3),
            "suppressed_at_start_s": [round(t, 3) for t in self.suppressed_at_start],
            "home_assistant_s": [round(t, 3) for t in self.home_assistant],
        }


def new_detector(model: WakeWordModel, *, armed: bool = False) -> DeviceDetector:
    """ESPHome's detector with the model's cutoff, window and stride (one device start)."""
    return DeviceDetector.for_cutoff(
        model.probability_cutoff, model.sliding_window_size, stride=model.stride, armed_at_start=armed
    )


def _detection(detector: DeviceDetector, invocation: int, stride: int) -> Detection:
    assert detector.detection_sum is not None and detector.detection_probability is not None
    return Detection(
        invocation=invocation,
        time_s=float(invocation_seconds(invocation, stride)),
        probability=float(detector.detection_probability),
        window_sum=int(detector.detection_sum),
    )


def detections_in_outputs(
    model: WakeWordModel, outputs: np.ndarray, *, armed: bool = False
) -> list[Detection]:
    """Detections of one device start over its uint8 outputs (one per invocation)."""
    detector = new_detector(model, armed=armed)
    return [
        _detection(detector, k, model.stride)
        for k, value in enumerate(np.asarray(outputs, dtype=np.uint8).tolist())
        if detector.push(value)
    ]


def _peak(model: WakeWordModel, outputs: np.ndarray) -> tuple[float | None, float | None]:
    """Highest full-window mean (device scale) and the time of its invocation; None when no full window."""
    window = model.sliding_window_size
    if outputs.size < window:
        return None, None
    sums = np.convolve(outputs.astype(np.int64), np.ones(window, dtype=np.int64), mode="valid")
    best = int(np.argmax(sums))
    return float(sums[best]) / (C.OUTPUT_UINT8_MAX * window), float(
        invocation_seconds(best + window - 1, model.stride)
    )


def _suppressed_at_start(
    model: WakeWordModel, outputs: np.ndarray, fired: Sequence[Detection]
) -> list[float]:
    """Times where a listening (armed) device would have fired during the start-up suppression."""
    start = rearm_invocations(stride=model.stride)
    armed = detect(
        outputs, model.probability_cutoff, model.sliding_window_size, stride=model.stride, armed_at_start=True
    )
    seen = {d.invocation for d in fired}
    return [float(invocation_seconds(k, model.stride)) for k in armed if k < start and k not in seen]


def detect_pcm16(
    model: WakeWordModel, pcm16: np.ndarray, path: str | os.PathLike[str] = "", *, armed: bool = False
) -> FileDetections:
    """Detections of one device start over int16 samples at 16 kHz."""
    samples = np.asarray(pcm16, dtype=np.int16).reshape(-1)
    return detections_of_outputs(model, pcm16_outputs(model, samples), samples.size, path, armed=armed)


def detections_of_outputs(
    model: WakeWordModel,
    outputs: np.ndarray,
    samples: int,
    path: str | os.PathLike[str] = "",
    *,
    armed: bool = False,
) -> FileDetections:
    """What one device start gave: its uint8 `outputs` (one per invocation) over `samples` samples."""
    detections = detections_in_outputs(model, outputs, armed=armed)
    peak, peak_time = _peak(model, outputs)
    return FileDetections(
        path=Path(path),
        duration_s=samples / C.SAMPLE_RATE_HZ,
        invocations=int(outputs.size),
        detections=detections,
        peak_probability=peak,
        peak_time_s=peak_time,
        suppressed_at_start=[] if armed else _suppressed_at_start(model, outputs, detections),
        home_assistant=[
            float(invocation_seconds(k, model.stride))
            for k in pymicro_detect(outputs, model.probability_cutoff, model.sliding_window_size)
        ],
    )


def detect_files(
    model: WakeWordModel,
    paths: Sequence[str | os.PathLike[str]],
    *,
    convert: bool = False,
    armed: bool = False,
) -> list[FileDetections]:
    """Detections per file; each file is one device start, streamed from the file block by block (a
    recording of hours takes the memory of one block). Every file is checked before the first is run;
    AudioError names a file that is unusable."""
    readers = [read_device_pcm16_blocks(p, convert=convert) for p in paths]
    return [
        detections_of_outputs(model, *recording_outputs(model, blocks), path, armed=armed)
        for path, blocks in zip(paths, readers, strict=True)
    ]


class LiveDetector:
    """One device start fed live audio: `DeviceStream` (front end + TFLite Micro) and `DeviceDetector`."""

    def __init__(self, model: WakeWordModel, *, armed: bool = False) -> None:
        self.model = model
        self._stream = DeviceStream(model)
        self._detector = new_detector(model, armed=armed)
        self.detections: list[Detection] = []

    @property
    def seconds_heard(self) -> float:
        """Seconds of audio fed so far."""
        return self._stream.seconds_fed

    def feed(self, pcm16: bytes | np.ndarray) -> list[Detection]:
        """The detections these int16 samples (16 kHz mono) completed."""
        first = self._stream.invocations
        found = []
        for offset, value in enumerate(self._stream.feed(pcm16).tolist()):
            if self._detector.push(value):
                found.append(_detection(self._detector, first + offset, self.model.stride))
        self.detections.extend(found)
        return found


@dataclass
class MicrophoneSession:
    """What a microphone session heard."""

    device: str
    duration_s: float
    detections: list[Detection]
    overflows: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "device": self.device,
            "duration_s": round(self.duration_s, 3),
            "detections": [d.to_dict() for d in self.detections],
            "overflows": self.overflows,
        }


def import_sounddevice() -> ModuleType:
    """The optional `sounddevice` module; LiveError (with the install hint) when it cannot be imported."""
    try:
        import sounddevice
    except ImportError as exc:
        raise LiveError(
            f"The 'sounddevice' package is not installed. {_SOUNDDEVICE_HINT}. Or record a WAV file "
            f"({DEVICE_AUDIO}) and pass it instead of --mic."
        ) from exc
    except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
        raise LiveError(
            f"The 'sounddevice' package could not load PortAudio ({exc}). {_SOUNDDEVICE_HINT}. Or record "
            f"a WAV file ({DEVICE_AUDIO}) and pass it instead of --mic."
        ) from exc
    return sounddevice


def _device_arg(device: str | None) -> int | str | None:
    if device is None:
        return None
    return int(device) if device.strip().isdigit() else device


def find_input_device(sd: ModuleType, device: str | None = None) -> str:
    """The name of the input device to record from (the default one, or `device`: index or name)."""
    wanted = _device_arg(device)
    which = "the default input device" if wanted is None else f"the input device {device!r}"
    try:
        info = sd.query_devices(wanted, kind="input")
    except Exception as exc:  # sounddevice raises PortAudioError, ValueError or others here
        raise LiveError(
            f"No microphone was found: sounddevice could not open {which} ({exc}). Connect a microphone "
            "(and check that this user may record), pick one with --device (python -m sounddevice lists "
            f"them), or record a WAV file ({DEVICE_AUDIO}) and pass it instead of --mic."
        ) from exc
    name = str(info.get("name", "?")) if isinstance(info, dict) else str(info)
    if isinstance(info, dict) and int(info.get("max_input_channels", 1)) < 1:
        raise LiveError(
            f"The device {name!r} has no input channels, so it cannot record. Pick a microphone with "
            "--device (python -m sounddevice lists them)."
        )
    try:
        sd.check_input_settings(device=wanted, channels=1, dtype="int16", samplerate=C.SAMPLE_RATE_HZ)
    except Exception as exc:
        raise LiveError(
            f"The input device {name!r} cannot record {DEVICE_AUDIO} ({exc}), which is what the device "
            "hears. Pick another input with --device (python -m sounddevice lists them), or record a WAV "
            "file and convert it."
        ) from exc
    return name


def listen(
    model: WakeWordModel,
    *,
    device: str | None = None,
    duration_s: float | None = None,
    armed: bool = False,
    on_detection: Callable[[Detection], None] | None = None,
    on_start: Callable[[str], None] | None = None,
    on_audio: Callable[[bytes], None] | None = None,
) -> MicrophoneSession:
    """Run the model on the microphone until `duration_s` seconds were heard or Ctrl+C.

    One persistent device start: one front end, one TFLite Micro interpreter, one detector. Each
    detection is passed to `on_detection` as it happens; `on_start` gets the device name once the
    stream is open; `on_audio` gets every block of samples (int16 bytes) before the model hears it.
    Raises LiveError when sounddevice or an input device is missing.
    """
    sd = import_sounddevice()
    name = find_input_device(sd, device)
    live = LiveDetector(model, armed=armed)
    block = C.STEP_SAMPLES * model.stride
    overflows = 0
    try:
        stream = sd.RawInputStream(
            samplerate=C.SAMPLE_RATE_HZ,
            blocksize=block,
            device=_device_arg(device),
            channels=1,
            dtype="int16",
        )
    except Exception as exc:  # PortAudioError and friends
        raise LiveError(
            f"The input device {name!r} could not be opened for recording ({exc}). Close other programs "
            "using it, or pick another input with --device (python -m sounddevice lists them)."
        ) from exc
    audio_error = getattr(sd, "PortAudioError", OSError)
    try:
        with stream:
            if on_start is not None:
                on_start(name)
            while duration_s is None or live.seconds_heard < duration_s:
                data, overflowed = stream.read(block)  # one invocation's worth of samples
                overflows += int(bool(overflowed))
                if on_audio is not None:
                    on_audio(bytes(data))
                for detection in live.feed(bytes(data)):
                    if on_detection is not None:
                        on_detection(detection)
    except KeyboardInterrupt:
        pass
    except audio_error as exc:
        raise LiveError(
            f"Recording from {name!r} failed after {live.seconds_heard:.1f} s ({exc}). Check that the "
            "microphone is still connected, or pick another input with --device."
        ) from exc
    return MicrophoneSession(name, live.seconds_heard, list(live.detections), overflows)


__all__ = [
    "Detection",
    "FileDetections",
    "LiveDetector",
    "LiveError",
    "MicrophoneSession",
    "detect_files",
    "detect_pcm16",
    "detections_in_outputs",
    "detections_of_outputs",
    "find_input_device",
    "import_sounddevice",
    "listen",
    "new_detector",
]
