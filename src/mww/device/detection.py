"""The detector ESPHome's micro_wake_word runs on the model's outputs, reproduced exactly (pure NumPy).

What the device does (current ESPHome, ``micro_wake_word/streaming_model.cpp``), once per 10 ms
feature slice:

1. the slice goes into the model input; every ``stride``-th slice the model is invoked and its uint8
   output is pushed into a ring holding the last ``window`` outputs;
2. if the newest output in the ring is below the cutoff (``p < cutoff_u8``), the refractory counter
   advances by one slice (it starts at ``-refractory_slices`` and stops at 0);
3. an output not yet checked is checked once the counter is at 0: a detection when
   ``sum(ring) > cutoff_u8 * window`` (integer compare, i.e. the mean is strictly above the cutoff).
   After a detection the ring is cleared (zeros) and the counter goes back to ``-refractory_slices``.

Consequences this module reproduces:

* start-up suppression: a stream starts disarmed, like the device after it starts listening
  (``armed_at_start=True`` models a detector that has been listening for a while);
* the refractory period counts only slices whose newest output is below the cutoff, so a long run of
  high outputs is one event, and the detector re-arms only after the score has come back down;
* an output can be checked up to ``stride - 1`` slices after it was produced (when the counter reaches
  0 in between); the detection is attributed to the invocation that produced that output;
* a cutoff of 0 never detects: ``p < 0`` is never true for a uint8, so the counter never advances;
  a cutoff of 1 (255) never detects either, as no sum exceeds ``255 * window``.

One rule is added to the device's: a detection needs a full window, ``window`` outputs written since
the start or the last detection (the device has no such test; its cleared ring holds zeros). Re-arming
takes ``refractory_slices`` slices, so at least ``refractory_slices // stride`` outputs (33 with the
device's numbers) are written before any check; for every window up to that the rule never binds and
the result is the device's. It only matters for shortened refractory periods, larger windows and
streams started armed (whose first full window stands in for the outputs the device saw before).

A stream is the sequence of outputs of one device start (fresh model state, fresh detector). After its
last output the ring is kept for ``stride`` slices, as if the audio went on to the next invocation.
Detections are returned as invocation indices ``k`` (0-based); output ``k`` covers the audio up to
``(k + 1) * stride`` feature slices after the start.

`DeviceDetector` is the one transliteration of the device's code, fed one output at a time (what a
live microphone needs); `simulate_device_detector` runs it over a whole stream and is the reference
the fast paths (`detect` and the sweeps) are tested against.

Float probabilities in [0, 1] are converted to what the device reads with the output quantization
(scale ``OUTPUT_SCALE`` = 1/256, zero point 0): ``q = clip(round(p / OUTPUT_SCALE), 0, 255)``, rounding
half away from zero as TFLite does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from mww.device.constants import (
    DETECTION_REFRACTORY_SLICES,
    OUTPUT_SCALE,
    OUTPUT_UINT8_MAX,
    OUTPUT_ZERO_POINT,
    STREAMING_STRIDE,
)

SECONDS_PER_HOUR = 3600.0
# Elements of one boolean block in the batched first-detection search (memory bound, not semantics).
_BLOCK_ELEMENTS = 1 << 24


# --------------------------------------------------------------------------- conversions and checks


def probabilities_to_uint8(probs: ArrayLike) -> np.ndarray:
    """The uint8 outputs the device reads: integers 0..255 as they are, floats in [0, 1] quantized.

    Floats use the model's output quantization, ``q = clip(round(p / OUTPUT_SCALE), 0, 255)`` with
    rounding half away from zero (so 1.0 becomes 255 and 0.5 becomes 128).
    """
    arr = np.asarray(probs)
    if arr.ndim != 1:
        raise ValueError(f"a probability stream must be one-dimensional; got shape {arr.shape}")
    if arr.dtype == np.bool_:
        raise ValueError("a probability stream must hold uint8 values 0..255 or floats in [0, 1], not bools")
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        if int(arr.min()) < 0 or int(arr.max()) > OUTPUT_UINT8_MAX:
            raise ValueError(
                f"integer probabilities must be uint8 values 0..{OUTPUT_UINT8_MAX}; got values from "
                f"{int(arr.min())} to {int(arr.max())}"
            )
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ValueError("float probabilities must be finite")
        if float(arr.min()) < 0.0 or float(arr.max()) > 1.0:
            raise ValueError(
                f"float probabilities must lie in [0, 1]; got values from {float(arr.min())} to "
                f"{float(arr.max())} (pass uint8 outputs as an integer array)"
            )
        q = np.floor(arr.astype(np.float64) / OUTPUT_SCALE + 0.5) + OUTPUT_ZERO_POINT
        return np.clip(q, 0, OUTPUT_UINT8_MAX).astype(np.uint8)
    raise ValueError(f"probabilities must be integers 0..255 or floats in [0, 1]; got dtype {arr.dtype}")


def format_cutoff(cutoff: float) -> str:
    """A cutoff for people: two decimals (0.97), three where the grid has them (0.995)."""
    value = float(cutoff)
    return f"{value:.2f}" if abs(value - round(value, 2)) < 5e-7 else f"{value:.3f}"


def cutoff_to_uint8(cutoff: float) -> int:
    """The device's integer cutoff, ``int(cutoff * 255)`` (truncation, as ESPHome's code generator does)."""
    value = float(cutoff)
    if not math.isfinite(value) or value < 0.0 or value > 1.0:
        raise ValueError(f"the probability cutoff must lie in [0, 1]; got {cutoff!r}")
    return int(value * OUTPUT_UINT8_MAX)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be a whole number; got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value!r}")
    return int(value)


def _check_cutoffs_u8(cutoffs_u8: ArrayLike) -> np.ndarray:
    arr = np.asarray(cutoffs_u8)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("cutoffs_u8 must be a non-empty one-dimensional array of integers 0..255")
    if not np.issubdtype(arr.dtype, np.integer) or int(arr.min()) < 0 or int(arr.max()) > OUTPUT_UINT8_MAX:
        raise ValueError(
            f"cutoffs_u8 must hold integers 0..{OUTPUT_UINT8_MAX} (convert with cutoff_to_uint8); got {arr!r}"
        )
    return arr.astype(np.int64)


def _check_windows(windows: Sequence[int]) -> list[int]:
    if isinstance(windows, int | np.integer):
        raise ValueError("windows must be a sequence of window sizes, e.g. [5]")
    checked = [_check_int("window", w, 1) for w in windows]
    if not checked:
        raise ValueError("windows must name at least one window size")
    return checked


def rearm_invocations(
    refractory_slices: int = DETECTION_REFRACTORY_SLICES, stride: int = STREAMING_STRIDE
) -> int:
    """Outputs below the cutoff the detector must see after start-up before it checks again.

    With the device's 100 slices and stride 3 this is 33, so no detection can fire before invocation 33
    (0-based, about a second into a stream). After a detection it is 33 or 34, depending on the slice
    of its invocation the detection landed on.
    """
    refractory_slices = _check_int("refractory_slices", refractory_slices, 0)
    stride = _check_int("stride", stride, 1)
    return math.ceil(max(refractory_slices - (stride - 1), 0) / stride)


def false_activations_per_hour(n_events: float, duration_s: float) -> float:
    """Events per hour of audio: ``n_events * 3600 / duration_s`` (3 events in 1800 s = 6.0 FA/h)."""
    duration = float(duration_s)
    if not math.isfinite(duration) or duration <= 0.0:
        raise ValueError(
            f"the ambient duration must be the measured length of the audio, a positive number of seconds; "
            f"got {duration_s!r}"
        )
    events = float(n_events)
    if not math.isfinite(events) or events < 0:
        raise ValueError(f"the number of events must be a non-negative number; got {n_events!r}")
    return events * SECONDS_PER_HOUR / duration


# --------------------------------------------------------------------------- the reference simulator


class DeviceDetector:
    """ESPHome's detector, one model output at a time: the slice-by-slice transliteration of the device.

    ``push(output)`` takes the uint8 output of the next invocation and runs the feature slices up to
    the next invocation (the invocation's own slice and the ``stride - 1`` after it); it returns True
    when that output's check fired. The slices before the first invocation run when the detector is
    created. A detector is one device start: it starts disarmed unless ``armed_at_start``.
    ``require_full_window=False`` drops the one rule added to the device's (see the module docstring).

    After a detection, ``detection_sum`` holds the window sum that fired and ``detection_probability``
    the window mean as the device logs it, ``sum / (255 * window)``.
    """

    def __init__(
        self,
        cutoff_u8: int,
        window: int,
        *,
        refractory_slices: int = DETECTION_REFRACTORY_SLICES,
        stride: int = STREAMING_STRIDE,
        armed_at_start: bool = False,
        require_full_window: bool = True,
    ) -> None:
        c = _check_int("cutoff_u8", cutoff_u8, 0)
        if c > OUTPUT_UINT8_MAX:
            raise ValueError(f"cutoff_u8 must be at most {OUTPUT_UINT8_MAX}; got {cutoff_u8!r}")
        self.cutoff_u8 = c
        self.window = _check_int("window", window, 1)
        self.refractory_slices = _check_int("refractory_slices", refractory_slices, 0)
        self.stride = _check_int("stride", stride, 1)
        self.require_full_window = bool(require_full_window)
        self.outputs_pushed = 0
        self.detection_sum: int | None = None
        self._ring = [0] * self.window
        self._newest = 0  # last_n_index_
        self._ignore = 0 if armed_at_start else -self.refractory_slices  # ignore_windows_
        self._step = 0  # current_stride_step_
        self._unprocessed = False
        self._written = 0  # outputs written since start or the last detection
        for _ in range(self.stride - 1):  # the slices before the first invocation
            self._slice(None)

    @classmethod
    def for_cutoff(
        cls,
        probability_cutoff: float,
        window: int,
        *,
        refractory_slices: int = DETECTION_REFRACTORY_SLICES,
        stride: int = STREAMING_STRIDE,
        armed_at_start: bool = False,
    ) -> DeviceDetector:
        """A detector for a manifest's ``probability_cutoff`` in [0, 1] (quantized with `cutoff_to_uint8`)."""
        return cls(
            cutoff_to_uint8(probability_cutoff),
            window,
            refractory_slices=refractory_slices,
            stride=stride,
            armed_at_start=armed_at_start,
        )

    @property
    def detection_probability(self) -> float | None:
        """The window mean of the last detection as the device computes it, ``sum / (255 * window)``."""
        if self.detection_sum is None:
            return None
        return self.detection_sum / (OUTPUT_UINT8_MAX * self.window)

    def _slice(self, output: int | None) -> bool:
        """One 10 ms feature slice; `output` is the model's output when this slice invokes it."""
        self._step = self._step % self.stride + 1
        if self._step >= self.stride:  # invocation: push the output
            assert output is not None
            self._newest = (self._newest + 1) % self.window
            self._ring[self._newest] = output
            self._written += 1
            self._unprocessed = True
        if self._ring[self._newest] < self.cutoff_u8:
            self._ignore = min(self._ignore + 1, 0)
        if self._unprocessed and self._ignore >= 0:
            self._unprocessed = False
            full = self._written >= self.window or not self.require_full_window
            total = sum(self._ring)
            if full and total > self.cutoff_u8 * self.window:
                self.detection_sum = total
                self._ring = [0] * self.window
                self._ignore = -self.refractory_slices
                self._written = 0
                return True
        return False

    def push(self, output: int) -> bool:
        """Feed the uint8 output of the next invocation; True when the detector fires on it."""
        if isinstance(output, bool) or not isinstance(output, int | np.integer):
            raise ValueError(f"a model output must be a uint8 integer 0..{OUTPUT_UINT8_MAX}; got {output!r}")
        if not 0 <= int(output) <= OUTPUT_UINT8_MAX:
            raise ValueError(f"a model output must be a uint8 integer 0..{OUTPUT_UINT8_MAX}; got {output!r}")
        self.outputs_pushed += 1
        fired = self._slice(int(output))
        for _ in range(self.stride - 1):
            fired = self._slice(None) or fired
        return fired


def simulate_device_detector(
    probs: ArrayLike,
    cutoff_u8: int,
    window: int,
    *,
    refractory_slices: int = DETECTION_REFRACTORY_SLICES,
    stride: int = STREAMING_STRIDE,
    armed_at_start: bool = False,
    require_full_window: bool = True,
) -> list[int]:
    """Slice-by-slice transliteration of ESPHome's detector (`DeviceDetector` over a whole stream):
    slow, the reference for the fast paths.

    ``require_full_window=False`` drops the one rule added to the device's (see the module docstring).
    """
    p = probabilities_to_uint8(probs).tolist()
    detector = DeviceDetector(
        cutoff_u8,
        window,
        refractory_slices=refractory_slices,
        stride=stride,
        armed_at_start=armed_at_start,
        require_full_window=require_full_window,
    )
    return [k for k, value in enumerate(p) if detector.push(value)]


# --------------------------------------------------------------------------- the fast event scan
#
# Per invocation k the counter "deficit" D = -ignore changes only by the slices whose newest output is
# below the cutoff. Between detections this gives a closed form used by the scan below:
#   * after a detection checked on slice j (0..stride-1) of an invocation's period, the ring is zero, so
#     the stride-1-j remaining slices of that period all count (when the cutoff is above 0):
#     D' = max(refractory - (stride - 1 - j), 0); start-up is the same with j = 0 (or D' = 0 when armed);
#   * each later invocation with p < cutoff lowers D by stride; the detector re-arms at the m-th such
#     invocation, m = ceil(D' / stride), at slice j = D' - stride * (m - 1) - 1 of its period
#     (immediately, at the next invocation with j = 0, when D' = 0);
#   * from then on every output is checked on its own slice (j = 0), and the next detection is the first
#     invocation at or after re-arming with a full window and a window sum above cutoff * window.


def window_sums(p: np.ndarray, window: int) -> np.ndarray:
    """Window sums ending at each invocation (last axis); -1 where fewer than `window` outputs exist
    (ESPHome's detector here, pymicro-wakeword's in `mww.device.pymicro`)."""
    sums = np.full(p.shape, -1, dtype=np.int64)
    if p.shape[-1] >= window:
        zeros = np.zeros((*p.shape[:-1], 1), dtype=np.int64)
        cs = np.concatenate((zeros, np.cumsum(p, axis=-1, dtype=np.int64)), axis=-1)
        sums[..., window - 1 :] = cs[..., window:] - cs[..., :-window]
    return sums


def _start_deficit(cutoff_u8: int, refractory: int, stride: int, armed: bool, j: int = 0) -> int:
    if armed:
        return 0
    if cutoff_u8 <= 0:  # the zeroed ring never reads below a cutoff of 0
        return refractory
    return max(refractory - (stride - 1 - j), 0)


def _scan_events(
    candidates: np.ndarray,
    lows: np.ndarray,
    cutoff_u8: int,
    window: int,
    refractory: int,
    stride: int,
    armed: bool,
) -> list[int]:
    """Detections given the sorted candidate invocations (sum > cutoff*window) and low ones (p < cutoff)."""
    events: list[int] = []
    if candidates.size == 0:
        return events
    last = -1  # the start behaves like a detection at invocation -1
    deficit = _start_deficit(cutoff_u8, refractory, stride, armed)
    n_lows = lows.size
    while True:
        if deficit <= 0:
            rearm, rearm_slice = last + 1, 0
        else:
            m = -(-deficit // stride)
            first_low = int(np.searchsorted(lows, last, side="right"))
            if first_low + m - 1 >= n_lows:
                return events
            rearm = int(lows[first_low + m - 1])
            rearm_slice = deficit - stride * (m - 1) - 1
        start = max(rearm, last + window)
        i = int(np.searchsorted(candidates, start, side="left"))
        if i >= candidates.size:
            return events
        k = int(candidates[i])
        events.append(k)
        j = rearm_slice if k == rearm else 0
        deficit = _start_deficit(cutoff_u8, refractory, stride, False, j)
        last = k


def detect(
    probs: ArrayLike,
    cutoff: float,
    window: int,
    *,
    refractory_slices: int = DETECTION_REFRACTORY_SLICES,
    stride: int = STREAMING_STRIDE,
    armed_at_start: bool = False,
) -> list[int]:
    """Invocation indices at which the device's detector fires on one stream of outputs.

    `probs` are the model's outputs, one per invocation (uint8 or floats in [0, 1]); `cutoff` is the
    manifest's probability_cutoff in [0, 1] (quantized with `cutoff_to_uint8`); `window` the
    sliding_window_size; `refractory_slices` the suppression after start-up and after each detection,
    in 10 ms feature slices; `stride` the feature slices per invocation.
    """
    p = probabilities_to_uint8(probs).astype(np.int64)
    c = cutoff_to_uint8(cutoff)
    window = _check_int("window", window, 1)
    refractory = _check_int("refractory_slices", refractory_slices, 0)
    stride = _check_int("stride", stride, 1)
    candidates = np.flatnonzero(window_sums(p, window) > c * window)
    lows = np.flatnonzero(p < c)
    return _scan_events(candidates, lows, c, window, refractory, stride, armed_at_start)


def detected_in(
    streams: Sequence[ArrayLike],
    cutoff: float,
    window: int,
    *,
    stride: int = STREAMING_STRIDE,
    armed_at_start: bool = False,
) -> list[bool]:
    """Whether the detector fires at least once in each stream (one clip, one utterance each)."""
    return [bool(detect(s, cutoff, window, stride=stride, armed_at_start=armed_at_start)) for s in streams]


def count_detections_sweep(
    probs: ArrayLike,
    cutoffs_u8: ArrayLike,
    windows: Sequence[int],
    *,
    refractory_slices: int = DETECTION_REFRACTORY_SLICES,
    stride: int = STREAMING_STRIDE,
    armed_at_start: bool = False,
) -> np.ndarray:
    """Detections on one stream for every (window, cutoff): int64 array [len(windows), len(cutoffs)].

    Equal to ``len(detect(...))`` for each pair; window sums are computed once per window and each
    cutoff only visits the invocations where its window sum is above it. One cutoff's low invocations
    are held at a time, so the memory is a few arrays of the stream's length (an ambient recording of
    hours), not one per cutoff.
    """
    p = probabilities_to_uint8(probs)
    cuts = _check_cutoffs_u8(cutoffs_u8)
    wins = _check_windows(windows)
    refractory = _check_int("refractory_slices", refractory_slices, 0)
    stride = _check_int("stride", stride, 1)
    counts = np.zeros((len(wins), cuts.size), dtype=np.int64)
    if p.size == 0:
        return counts
    sums = [window_sums(p.astype(np.int64), window).astype(np.int32) for window in wins]  # <= 255 * 10
    for ci, c in enumerate(cuts.tolist()):
        lows: np.ndarray | None = None
        for wi, window in enumerate(wins):
            candidates = np.flatnonzero(sums[wi] > c * window)
            if candidates.size:
                lows = np.flatnonzero(p < c) if lows is None else lows
                events = _scan_events(candidates, lows, c, window, refractory, stride, armed_at_start)
                counts[wi, ci] = len(events)
    return counts


def first_detection_sweep(
    streams: Sequence[ArrayLike],
    cutoffs_u8: ArrayLike,
    windows: Sequence[int],
    *,
    refractory_slices: int = DETECTION_REFRACTORY_SLICES,
    stride: int = STREAMING_STRIDE,
    armed_at_start: bool = False,
) -> np.ndarray:
    """First detection of each stream for every (window, cutoff): int64 [n_streams, n_windows, n_cutoffs].

    -1 where the stream never fires. Equal to ``detect(...)[0]``; vectorised over streams and cutoffs,
    which is what deciding whether each positive clip was detected needs.
    """
    if isinstance(streams, np.ndarray) and streams.ndim == 1:
        raise ValueError("streams must be a sequence of probability streams, e.g. [stream]")
    arrays = [probabilities_to_uint8(s) for s in streams]
    cuts = _check_cutoffs_u8(cutoffs_u8)
    wins = _check_windows(windows)
    refractory = _check_int("refractory_slices", refractory_slices, 0)
    stride = _check_int("stride", stride, 1)
    result = np.full((len(arrays), len(wins), cuts.size), -1, dtype=np.int64)
    if not arrays:
        return result
    # Invocations to re-arm after start-up, per cutoff: the m-th output below the cutoff (m = 0: at once).
    deficits = np.array([_start_deficit(c, refractory, stride, armed_at_start) for c in cuts.tolist()])
    needed = -(-deficits // stride)
    lengths = np.array([a.size for a in arrays])
    order = np.argsort(lengths, kind="stable")  # similar lengths together keep the padding small
    start = 0
    while start < len(order):
        stop = start + 1
        while (
            stop < len(order)
            and (stop - start + 1) * max(int(lengths[order[stop]]), 1) * cuts.size <= _BLOCK_ELEMENTS
        ):
            stop += 1
        idx = order[start:stop]
        longest = max(int(lengths[idx].max()), 1)
        padded = np.zeros((idx.size, longest), dtype=np.int64)
        for row, i in enumerate(idx.tolist()):
            padded[row, : lengths[i]] = arrays[i]
        inside = np.arange(longest)[None, :] < lengths[idx][:, None]
        low_counts = np.cumsum(padded[:, None, :] < cuts[None, :, None], axis=2, dtype=np.int64)
        rearmed = (low_counts >= needed[None, :, None]) & inside[:, None, :]
        for wi, window in enumerate(wins):
            sums = window_sums(padded, window)
            fired = rearmed & (sums[:, None, :] > (cuts * window)[None, :, None])
            result[idx, wi, :] = np.where(fired.any(axis=2), fired.argmax(axis=2), -1)
        start = stop
    return result
