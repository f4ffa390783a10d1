"""The detector Home Assistant runs on the same model (pymicro-wakeword), and how it differs from the ESP32's.

The same manifest is read by two runtimes:

* the ESP32 (ESPHome's micro_wake_word, `mww.device.detection`) compares integers: a window of uint8
  outputs fires when ``sum(q) > int(cutoff * 255) * window``, after a start-up suppression and with a
  refractory period after each detection;
* pymicro-wakeword (Home Assistant's wyoming-microwakeword) dequantizes each output as ``q / 256`` and
  fires while the float mean of the last ``window`` outputs is above the cutoff,
  ``mean(q / 256) > cutoff``, i.e. ``sum(q) > cutoff * 256 * window``; it has no start-up suppression
  and no refractory period, so one event here is one rising edge of that condition.

For every cutoff the float rule needs a slightly larger window sum (by less than two uint8 steps of the
mean), and above 255/256 (0.996) it can never fire while the ESP32 still fires on a window of 255s: a
cutoff of 0.998 means "every output saturated" on the device and "never" in Home Assistant.
`MAX_SHIPPED_CUTOFF` is the highest cutoff at which both can fire; calibration ships nothing above it
and checks that both rules give the same events on the validation audio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from mww.device.constants import OUTPUT_SCALE, OUTPUT_UINT8_MAX, STREAMING_STRIDE
from mww.device.detection import cutoff_to_uint8, detect, probabilities_to_uint8, window_sums

RULES = ("esphome", "pymicro")
# The highest cutoff both runtimes can fire at: pymicro-wakeword's mean of q/256 is at most 255/256.
MAX_SHIPPED_CUTOFF = 0.995
_DEQUANT = round(1.0 / OUTPUT_SCALE)  # 256: pymicro-wakeword divides q by this


def check_rule(rule: str) -> str:
    """`rule` if it names a runtime's detector, else a ValueError naming the choices."""
    if rule not in RULES:
        raise ValueError(f"the detection rule must be one of {', '.join(RULES)}; got {rule!r}")
    return rule


def window_sum_threshold(cutoff: float, window: int, rule: str) -> int:
    """The integer T such that a window of uint8 outputs fires exactly when ``sum(q) > T``.

    ESPHome: ``int(cutoff * 255) * window``. pymicro-wakeword: ``floor(cutoff * 256 * window)`` (for an
    integer sum, ``sum > x`` is ``sum > floor(x)``).
    """
    check_rule(rule)
    c = cutoff_to_uint8(cutoff)  # also checks the range
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise ValueError(f"window must be a whole number of at least 1; got {window!r}")
    if rule == "esphome":
        return c * int(window)
    return math.floor(float(cutoff) * _DEQUANT * int(window))


def can_fire(cutoff: float, window: int, rule: str) -> bool:
    """Whether any window of outputs can fire at this cutoff under `rule` (all 255s is the most)."""
    return window_sum_threshold(cutoff, window, rule) < OUTPUT_UINT8_MAX * int(window)


_CUTOFFS_AT_ONCE = 8  # cutoffs compared with a stream's window sums at a time in `pymicro_count_sweep`


def _rising_edges(above: np.ndarray) -> np.ndarray:
    """Indices where a boolean condition turns true (last axis)."""
    before = np.zeros_like(above)
    before[..., 1:] = above[..., :-1]
    return above & ~before


def pymicro_detect(probs: ArrayLike, cutoff: float, window: int) -> list[int]:
    """Invocations at which pymicro-wakeword's detection starts on one stream (its rising edges)."""
    p = probabilities_to_uint8(probs).astype(np.int64)
    threshold = window_sum_threshold(cutoff, window, "pymicro")
    return np.flatnonzero(_rising_edges(window_sums(p, int(window)) > threshold)).tolist()


def detect_with_rule(
    probs: ArrayLike,
    cutoff: float,
    window: int,
    rule: str,
    *,
    stride: int = STREAMING_STRIDE,
    armed_at_start: bool = False,
) -> list[int]:
    """Detections of one stream under `rule`: the ESP32's detector or pymicro-wakeword's (which has no
    start-up suppression, so `armed_at_start` does not apply to it)."""
    if check_rule(rule) == "esphome":
        return detect(probs, cutoff, window, stride=stride, armed_at_start=armed_at_start)
    return pymicro_detect(probs, cutoff, window)


def _thresholds(grid: np.ndarray, window: int) -> np.ndarray:
    """pymicro-wakeword's window-sum threshold at every cutoff of `grid`."""
    return np.array([window_sum_threshold(c, window, "pymicro") for c in grid.tolist()])


def pymicro_count_sweep(probs: ArrayLike, cutoffs: ArrayLike, windows: Sequence[int]) -> np.ndarray:
    """pymicro-wakeword's events on one stream for every (window, cutoff): int64 [windows, cutoffs]."""
    p = probabilities_to_uint8(probs).astype(np.int64)
    grid = np.asarray(cutoffs, dtype=np.float64)
    counts = np.zeros((len(windows), grid.size), dtype=np.int64)
    for wi, window in enumerate(windows):
        sums, thresholds = window_sums(p, int(window)), _thresholds(grid, window)
        for first in range(0, grid.size, _CUTOFFS_AT_ONCE):  # a few cutoffs at a time: bounded memory
            rows = slice(first, first + _CUTOFFS_AT_ONCE)
            counts[wi, rows] = _rising_edges(sums[None, :] > thresholds[rows, None]).sum(axis=1)
    return counts


def pymicro_first_sweep(
    streams: Sequence[ArrayLike], cutoffs: ArrayLike, windows: Sequence[int]
) -> np.ndarray:
    """First pymicro-wakeword detection of each stream for every (window, cutoff), -1 where none:
    int64 [n_streams, n_windows, n_cutoffs]."""
    grid = np.asarray(cutoffs, dtype=np.float64)
    thresholds = [_thresholds(grid, window) for window in windows]  # once, not per stream
    result = np.full((len(streams), len(windows), grid.size), -1, dtype=np.int64)
    for si, stream in enumerate(streams):
        p = probabilities_to_uint8(stream).astype(np.int64)
        for wi, window in enumerate(windows):
            above = window_sums(p, int(window))[None, :] > thresholds[wi][:, None]
            result[si, wi] = np.where(above.any(axis=1), above.argmax(axis=1), -1)
    return result


def rules_disagree(cutoff: float, window: int) -> str | None:
    """Why the two runtimes read this cutoff differently in a way a user would notice, or None.

    Near the top of the range one of them cannot fire at all: from 255/256 up pymicro-wakeword never
    fires while the ESP32 still fires on a window of saturated outputs, and at 1.0 neither fires.
    """
    esp, ha = can_fire(cutoff, window, "esphome"), can_fire(cutoff, window, "pymicro")
    if esp and not ha:
        top = OUTPUT_UINT8_MAX / _DEQUANT
        return (
            f"probability_cutoff {cutoff:g} never fires in Home Assistant's pymicro-wakeword (its mean of "
            f"q/256 is at most {OUTPUT_UINT8_MAX}/{_DEQUANT} = {top:.4f}) but fires on the ESP32 whenever "
            f"every output in the window is {OUTPUT_UINT8_MAX}; use a cutoff of at most {MAX_SHIPPED_CUTOFF}"
        )
    if not esp and not ha:
        return f"probability_cutoff {cutoff:g} never fires on the ESP32 nor in pymicro-wakeword"
    return None
