"""The audio around each detection, saved for training (`mww-detect --save-detections DIR`).

Each detection becomes one 16 kHz mono 16-bit WAV: `SAVED_BEFORE_S` (2 s) of audio before the moment
it fired and `SAVED_AFTER_S` (1 s) after it (`mww.data.placement`), cut short where the recording begins
or ends. A file is named after its source and the detection's time, ``kitchen_at_00012.35s.wav`` (12.35
s into kitchen.wav) or ``mic_20250301-201500_at_00042.07s.wav`` (42.07 s after listening started at
20:15:00), is written to a temp file and renamed, and never replaces a file already there (a number
is added to the name). The recordings that woke the model by mistake go into the dataset's
`false_wakes/` folder, where training takes them as hard negatives of their own.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mww.data.placement import SAVED_AFTER_S, SAVED_BEFORE_S
from mww.device import constants as C
from mww.device.audio import write_wav
from mww.errors import MwwError


class SaveDetectionsError(MwwError):
    """The folder for saved detections cannot be used; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def detection_folder(folder: str | os.PathLike[str]) -> Path:
    """The folder saved detections go into, created if needed; refused when it cannot be written."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise SaveDetectionsError(
            f"--save-detections {path} is a file, not a folder. Give a folder (it is created if missing), "
            "for example dataset/false_wakes."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SaveDetectionsError(
            f"The folder {path} for --save-detections could not be created ({exc.strerror or exc}). Give a "
            "folder you may write to."
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise SaveDetectionsError(
            f"The folder {path} for --save-detections cannot be written to. Give a folder you may write to."
        )
    return path


def clip_bounds(time_s: float, total_samples: int) -> tuple[int, int]:
    """[first, end) samples of the audio saved for a detection at `time_s`, within the recording."""
    first = max(0, round((time_s - SAVED_BEFORE_S) * C.SAMPLE_RATE_HZ))
    end = min(total_samples, round((time_s + SAVED_AFTER_S) * C.SAMPLE_RATE_HZ))
    return first, max(first, end)


def _name(source: str, time_s: float) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source).strip("._") or "audio"
    return f"{stem}_at_{time_s:08.2f}s"


def save_clip(folder: Path, source: str, time_s: float, pcm16: np.ndarray) -> Path:
    """Write one detection's audio (int16 samples) as `<source>_at_<time>s.wav` in `folder`; an
    existing file is never replaced."""
    name = _name(source, time_s)
    target, n = folder / f"{name}.wav", 1
    while target.exists():
        n += 1
        target = folder / f"{name}-{n}.wav"
    return write_wav(target, np.asarray(pcm16, dtype=np.int16))


def _segment(path: Path, first: int, end: int, convert: bool) -> np.ndarray:
    import soundfile as sf

    from mww.device.runtime import read_device_pcm16

    info = sf.info(str(path))
    if info.samplerate == C.SAMPLE_RATE_HZ and info.channels == 1 and info.subtype == "PCM_16":
        data, _ = sf.read(str(path), start=first, stop=end, dtype="int16")
        return np.asarray(data, dtype=np.int16).reshape(-1)
    return read_device_pcm16(path, convert=convert)[first:end]  # converted: read whole once more


def save_file_detections(
    folder: Path,
    path: str | os.PathLike[str],
    times_s: Sequence[float],
    samples: int,
    *,
    convert: bool = False,
) -> list[Path]:
    """Save the audio around each detection time of one file (`samples` long, as the device hears it)."""
    source = Path(path)
    saved = []
    for t in times_s:
        first, end = clip_bounds(t, samples)
        saved.append(save_clip(folder, source.stem, t, _segment(source, first, end, convert)))
    return saved


@dataclass
class _Pending:
    time_s: float
    first: int
    end: int


class LiveClipSaver:
    """Keeps the last seconds of a live stream and saves each detection's audio once the second after
    it has been heard (or when the session ends, with what there is)."""

    def __init__(self, folder: Path, source: str | None = None) -> None:
        self.folder = folder
        self.source = source or time.strftime("mic_%Y%m%d-%H%M%S")
        self.saved: list[Path] = []
        self._audio = np.zeros(0, dtype=np.int16)
        self._base = 0  # sample number of self._audio[0] since listening started
        self._pending: list[_Pending] = []

    @property
    def heard(self) -> int:
        """Samples fed so far."""
        return self._base + self._audio.size

    def feed(self, pcm16: bytes | np.ndarray) -> list[Path]:
        """Add samples (int16, 16 kHz mono); returns the clips this completed."""
        block = np.frombuffer(pcm16, dtype="<i2") if isinstance(pcm16, bytes | bytearray) else pcm16
        self._audio = np.concatenate([self._audio, np.asarray(block, dtype=np.int16).reshape(-1)])
        done = [p for p in self._pending if p.end <= self.heard]
        written = [self._save(p) for p in done]
        self._pending = [p for p in self._pending if p.end > self.heard]
        # a detection is reported after the block that completed it: keep a little more than SAVED_BEFORE_S
        kept_s = SAVED_BEFORE_S + 0.5
        keep = min([p.first for p in self._pending] + [self.heard - round(kept_s * C.SAMPLE_RATE_HZ)])
        if keep > self._base:
            self._audio = self._audio[keep - self._base :]
            self._base = keep
        return written

    def detected(self, time_s: float) -> None:
        """A detection at `time_s` (seconds since listening started): save its audio when complete."""
        first, _ = clip_bounds(time_s, self.heard)
        self._pending.append(_Pending(time_s, first, round((time_s + SAVED_AFTER_S) * C.SAMPLE_RATE_HZ)))

    def close(self) -> list[Path]:
        """Save the detections still waiting for their last second, with the audio heard so far."""
        written = [self._save(p) for p in self._pending]
        self._pending = []
        return written

    def _save(self, pending: _Pending) -> Path:
        first, end = max(pending.first, self._base), min(pending.end, self.heard)
        path = save_clip(
            self.folder, self.source, pending.time_s, self._audio[first - self._base : end - self._base]
        )
        self.saved.append(path)
        return path
