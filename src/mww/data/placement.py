"""Where a clip sits in the audio the model hears: a training window, or an evaluation stream.

Every clip that fits a training window is placed with its END `jitter` seconds before the window end,
where the device decides (`place_clip`). A negative longer than the window is cut into consecutive
pieces that each fit it (`chunk_count`), and variant `v` holds piece `v % pieces` (`piece_of`,
`variant_span`), so training sees the whole recording rather than one crop. An evaluation stream is a
whole recording with silence before and after it (`stream_clip`), so every moment of it can be scored.
Frame numbers are those the device front end has computed once a given sample has arrived.
"""

from __future__ import annotations

import math

import numpy as np

from mww.config.schema import AugmentationConfig
from mww.device.constants import SAMPLE_RATE_HZ, frames_for_duration_ms

# Every clip that fits the window is placed with its END `jitter` seconds before the window end,
# negatives too: if only positives ended there, "speech that stops 0.2 s before the decision" would
# be enough to tell them apart, and the model would fire on any negative heard at that moment.
# Kinds whose longer clips keep their end (the wake word, and the phrases that sound like it);
# longer clips of other kinds are cut into pieces that fit (`chunk_count`).
END_ALIGNED_KINDS = frozenset({"positive", "hard_negative"})
# A detection saved by `mww-detect --save-detections` (a false wake, once it is put into the dataset)
# holds this much audio before and after the moment the device fired.
SAVED_BEFORE_S = 2.0
SAVED_AFTER_S = 1.0


def chunk_samples(aug_cfg: AugmentationConfig) -> int:
    """Longest piece a long negative is cut into: the window less the largest jitter.

    A piece then fits the window whole when placed `jitter` seconds before its end, as every clip is.
    """
    window = round(aug_cfg.augmentation_duration_s * SAMPLE_RATE_HZ)
    return max(1, window - math.ceil(aug_cfg.max_jitter_s * SAMPLE_RATE_HZ))


def chunk_count(kind: str, duration_s: float, aug_cfg: AugmentationConfig) -> int:
    """Pieces a clip is cut into: 1 for positives, hard negatives and negatives that fit the window.

    A negative longer than the window (a recording of a radio, say) is cut into consecutive pieces
    of equal length, at most `chunk_samples` each, so that training hears all of it.
    """
    samples = round(duration_s * SAMPLE_RATE_HZ)
    if kind in END_ALIGNED_KINDS or samples <= round(aug_cfg.augmentation_duration_s * SAMPLE_RATE_HZ):
        return 1
    return math.ceil(samples / chunk_samples(aug_cfg))


def _piece_bounds(samples: int, pieces: int, variant: int) -> tuple[int, int]:
    size = math.ceil(samples / pieces)
    first = (variant % pieces) * size
    return first, min(samples, first + size)


def piece_span(duration_s: float, pieces: int, variant: int) -> tuple[float, float]:
    """(start, length) in seconds of the piece variant number `variant` holds of a clip cut into `pieces`."""
    if pieces == 1:
        return 0.0, float(duration_s)
    first, end = _piece_bounds(round(duration_s * SAMPLE_RATE_HZ), pieces, variant)
    return first / SAMPLE_RATE_HZ, (end - first) / SAMPLE_RATE_HZ


def variant_span(
    kind: str, duration_s: float, aug_cfg: AugmentationConfig, variant: int
) -> tuple[float, float]:
    """(start, length) in seconds of the part of the source file variant number `variant` holds."""
    return piece_span(duration_s, chunk_count(kind, duration_s, aug_cfg), variant)


def piece_of(audio: np.ndarray, variant: int, pieces: int) -> np.ndarray:
    """The audio variant number `variant` holds: piece `variant % pieces` of a clip cut into `pieces`."""
    if pieces <= 1:
        return audio
    first, end = _piece_bounds(audio.shape[0], pieces, variant)
    return audio[first:end]


def end_frame_for_sample(end_sample: int) -> int:
    """Frames the device has computed once `end_sample` samples have arrived."""
    return frames_for_duration_ms(end_sample * 1000 / SAMPLE_RATE_HZ)


def place_clip(
    samples: np.ndarray,
    window_s: float,
    min_jitter_s: float,
    max_jitter_s: float,
    rng: np.random.Generator,
    kind: str,
) -> tuple[np.ndarray, int]:
    """Put a clip into a silent window of `window_s` seconds; returns (window, clip end frame).

    Every clip that fits ends `jitter` seconds (uniform in [min_jitter_s, max_jitter_s]) before the
    window end, where the device decides. A longer positive or hard negative loses its start, never
    its end; longer clips of other kinds are cropped at a random offset.
    """
    window = round(window_s * SAMPLE_RATE_HZ)
    clip = np.asarray(samples, dtype=np.float32).reshape(-1)
    n = clip.shape[0]
    out = np.zeros(window, dtype=np.float32)
    if kind in END_ALIGNED_KINDS or n <= window:
        jitter = round(float(rng.uniform(min_jitter_s, max_jitter_s)) * SAMPLE_RATE_HZ)
        end = min(window, max(0, window - jitter))
        start = end - n
        if start >= 0:
            out[start:end] = clip
        elif end > 0:
            out[:end] = clip[n - end :]
    elif n <= window:
        start = int(rng.integers(0, window - n + 1))
        out[start : start + n] = clip
        end = start + n
    else:
        cut = int(rng.integers(0, n - window + 1))
        out[:] = clip[cut : cut + window]
        end = window
    return out, end_frame_for_sample(end)


def stream_clip(samples: np.ndarray, lead_s: float, tail_s: float) -> tuple[np.ndarray, int]:
    """A whole recording as a device hears it: `lead_s` of silence, the recording, `tail_s` of
    silence. Returns (stream, recording end frame).

    Unlike a training window, every moment of the recording can be scored: with a lead at least as
    long as the model's input window, the first full window ends where the recording starts, so a
    phrase followed by a second of silence is heard at the moment training decides on it too.
    """
    clip = np.asarray(samples, dtype=np.float32).reshape(-1)
    lead, tail = round(lead_s * SAMPLE_RATE_HZ), round(tail_s * SAMPLE_RATE_HZ)
    out = np.zeros(lead + clip.shape[0] + tail, dtype=np.float32)
    out[lead : lead + clip.shape[0]] = clip
    return out, end_frame_for_sample(lead + clip.shape[0])


def stream_lead_frames(aug_cfg: AugmentationConfig) -> int:
    """Frames of an evaluation stream computed before its recording starts. The lead is one
    `augmentation_duration_s` window: evaluation needs the model's input window to fit in it, as
    the clip windows it scores are cut from windows of that length."""
    return end_frame_for_sample(round(aug_cfg.augmentation_duration_s * SAMPLE_RATE_HZ))
