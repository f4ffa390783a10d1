"""Reading, converting and writing audio: any rate, any channel count, in; 16 kHz mono out."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from mww.device.constants import SAMPLE_RATE_HZ
from mww.errors import MwwError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
BLOCK_SECONDS = 30.0  # audio read at a time from a recording at the device rate (`audio_blocks`)
_WHOLE_FORMATS = frozenset({"MP3"})  # read whole: block reads decode to other samples

# Trailing silence: 10 ms frames quieter than the loudest frame by TRIM_BELOW_PEAK_DB, and not
# TRIM_ABOVE_FLOOR_DB above the clip's quietest tenth of frames (its noise floor), are silence.
# A clip whose noise floor is within TRIM_MIN_RANGE_DB of its peak is left as it is (too noisy to
# tell). TRIM_KEEP_S of audio is kept after the last sound (the fading end of a final consonant).
TRIM_FRAME_S = 0.01
TRIM_BELOW_PEAK_DB = 40.0
TRIM_ABOVE_FLOOR_DB = 10.0
TRIM_MIN_RANGE_DB = 20.0
TRIM_KEEP_S = 0.05


class AudioError(MwwError):
    """A file that cannot be used as audio; `reason` is a short machine-friendly tag."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array; 1-D input is returned as is."""
    if samples.ndim == 1:
        return samples
    return samples.mean(axis=1)


def sound_end(samples: np.ndarray, rate: int = SAMPLE_RATE_HZ) -> int:
    """Samples up to the end of the last sound, plus TRIM_KEEP_S: where trailing silence starts.

    Recordings of a phrase often go on for a second or more after it; training places a clip by its
    END, so without this the phrase would sit at a different distance from the decision in every
    clip. Returns `len(samples)` when there is no trailing silence or the clip is too noisy to tell.
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    frame = max(1, round(rate * TRIM_FRAME_S))
    count = x.shape[0] // frame
    if count < 2:
        return x.shape[0]
    power = np.mean(x[: count * frame].reshape(count, frame) ** 2, axis=1)
    level = 10.0 * np.log10(power + 1e-20)
    peak, floor = float(level.max()), float(np.percentile(level, 10))
    if peak - floor < TRIM_MIN_RANGE_DB:
        return x.shape[0]
    threshold = max(peak - TRIM_BELOW_PEAK_DB, floor + TRIM_ABOVE_FLOOR_DB)
    last = int(np.flatnonzero(level > threshold)[-1])
    return min(x.shape[0], (last + 1) * frame + round(rate * TRIM_KEEP_S))


def resample(samples: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Polyphase resampling (anti-aliased) from `rate_in` to `rate_out`."""
    if rate_in == rate_out:
        return samples
    ratio = Fraction(rate_out, rate_in)
    out = resample_poly(samples, ratio.numerator, ratio.denominator)
    return out.astype(np.float32, copy=False)


def load_audio(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a clip as float32 mono at the device sample rate, in [-1, 1].

    Integer and float files, any sample rate and any channel count are accepted.
    Raises AudioError("unreadable", ...) when soundfile cannot decode the file.
    """
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise AudioError("unreadable", f"cannot decode audio: {exc}") from exc
    samples = to_mono(np.asarray(samples, dtype=np.float32))
    samples = resample(samples, int(rate))
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)


def audio_blocks(path: str | os.PathLike[str], block_s: float | None = None) -> Iterator[np.ndarray]:
    """A recording as `load_audio` reads it (float32 mono at the device rate, in [-1, 1]), in consecutive
    blocks of `block_s` seconds (default `BLOCK_SECONDS`), which join into exactly `load_audio(path)`.

    A file at the device rate is read block by block, so a recording of hours takes the memory of one
    block. A file at another rate is resampled whole and comes as one block, and so does an MP3 file
    (its decoder gives other samples when read in pieces); convert long recordings to 16 kHz WAV or FLAC
    to keep them out of memory. Raises AudioError("unreadable", ...) like `load_audio`.
    """
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise AudioError("unreadable", f"cannot decode audio: {exc}") from exc
    if int(info.samplerate) != SAMPLE_RATE_HZ or info.format in _WHOLE_FORMATS:
        yield load_audio(path)
        return
    frames = max(1, round((BLOCK_SECONDS if block_s is None else block_s) * SAMPLE_RATE_HZ))
    try:
        handle = sf.SoundFile(str(path))
    except Exception as exc:
        raise AudioError("unreadable", f"cannot decode audio: {exc}") from exc
    with handle:
        while True:
            try:
                block = handle.read(frames, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError("unreadable", f"cannot decode audio: {exc}") from exc
            if block.shape[0] == 0:
                return
            mono = block[:, 0] if block.shape[1] == 1 else to_mono(block)
            yield np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def audio_info(path: str | os.PathLike[str]) -> tuple[int, float]:
    """(sample rate, duration in seconds) from the file header, without decoding."""
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError("unreadable", f"cannot read audio header: {exc}") from exc
    return int(info.samplerate), float(info.duration)


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to int16 PCM, the format the device front end consumes.

    The inverse of reading 16-bit audio as floats (value / 32768), so a 16-bit file comes back sample
    for sample; +1.0 is clipped to 32767.
    """
    scaled = np.clip(np.round(np.asarray(samples, dtype=np.float32) * np.float32(32768.0)), -32768, 32767)
    return scaled.astype(np.int16)


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int = SAMPLE_RATE_HZ) -> Path:
    """Write 16-bit PCM WAV atomically (temp file in the same folder, then rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp.wav", dir=target.parent)
    os.close(fd)
    try:
        data = samples if samples.dtype == np.int16 else to_pcm16(np.asarray(samples, np.float32))
        sf.write(tmp, data, rate, subtype="PCM_16", format="WAV")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
