"""The device's detector (mww.device.detection) on hand-computed streams, and its fast paths against the
slice-by-slice transliteration of ESPHome's code."""

from __future__ import annotations

import numpy as np
import pytest

from mww.device.constants import DETECTION_REFRACTORY_SLICES, STREAMING_STRIDE
from mww.device.detection import (
    DeviceDetector,
    count_detections_sweep,
    cutoff_to_uint8,
    detect,
    false_activations_per_hour,
    first_detection_sweep,
    format_cutoff,
    probabilities_to_uint8,
    rearm_invocations,
    simulate_device_detector,
)

# Isolate the window rule: no start-up suppression, no refractory period.
NO_REFRACTORY = {"refractory_slices": 0, "armed_at_start": True}


def stream(length: int, highs: dict[int, int] | None = None, low: int = 0) -> np.ndarray:
    """`length` outputs of value `low`, with the given {index: value} set."""
    p = np.full(length, low, dtype=np.uint8)
    for k, v in (highs or {}).items():
        p[k] = v
    return p


# --------------------------------------------------------------------------- conversions


def test_cutoff_to_uint8_truncates_like_esphome():
    assert cutoff_to_uint8(0.97) == 247  # 247.35
    assert cutoff_to_uint8(0.9) == 229  # 229.5 truncated, not rounded
    assert cutoff_to_uint8(0.5) == 127
    assert cutoff_to_uint8(0.0) == 0
    assert cutoff_to_uint8(1.0) == 255
    assert all(cutoff_to_uint8(k / 255) == k for k in range(256))


def test_format_cutoff_keeps_the_digits_the_device_needs():
    assert [format_cutoff(c) for c in (0.97, 0.5, 0.995, 0.998, 1.0)] == [
        "0.97",
        "0.50",
        "0.995",
        "0.998",
        "1.00",
    ]
    assert cutoff_to_uint8(float(format_cutoff(0.998))) == 254


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf")])
def test_cutoff_outside_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match=r"cutoff must lie in \[0, 1\]"):
        cutoff_to_uint8(bad)
    with pytest.raises(ValueError, match=r"cutoff must lie in \[0, 1\]"):
        detect([0, 0, 0], bad, 1)


def test_float_probabilities_use_the_output_quantization():
    # q = clip(round(p * 256), 0, 255), half away from zero.
    p = [0.0, 1 / 256, 0.5 / 256, 0.5, 0.99, 0.998, 1.0]
    assert probabilities_to_uint8(p).tolist() == [0, 1, 1, 128, 253, 255, 255]
    assert probabilities_to_uint8(np.array([0, 7, 255], dtype=np.int32)).tolist() == [0, 7, 255]
    assert probabilities_to_uint8([]).dtype == np.uint8


def test_bad_probability_streams_are_refused():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        probabilities_to_uint8([0.2, 1.5])
    with pytest.raises(ValueError, match=r"0\.\.255"):
        probabilities_to_uint8([0, 256])
    with pytest.raises(ValueError, match="one-dimensional"):
        probabilities_to_uint8(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        probabilities_to_uint8([0.1, float("nan")])


# --------------------------------------------------------------------------- the window rule


def test_sum_equal_to_cutoff_times_window_is_not_a_detection():
    # cutoff 0.5 -> 127; window 5 needs sum > 635.
    assert detect([127] * 5, 0.5, 5, **NO_REFRACTORY) == []  # sum 635 == 635
    assert detect([127, 127, 127, 127, 128], 0.5, 5, **NO_REFRACTORY) == [4]  # sum 636
    # Floats go through the output quantization first: 0.5 -> 128, so the same window fires.
    assert detect([0.5] * 5, 0.5, 5, **NO_REFRACTORY) == [4]


def test_a_detection_needs_a_full_window():
    # 255 * 3 = 765 > 635 already at invocation 2, but the window holds 5 outputs only at invocation 4.
    assert detect([255] * 5, 0.5, 5, **NO_REFRACTORY) == [4]
    # The device itself has no such test (its cleared ring holds zeros) ...
    bare = simulate_device_detector([255] * 5, 127, 5, require_full_window=False, **NO_REFRACTORY)
    assert bare == [2]
    # ... but with its refractory period the ring is always full again before it is re-armed.
    rng = np.random.default_rng(7)
    for _ in range(30):
        p = np.where(rng.random(250) < 0.2, 255, rng.integers(0, 256, 250))
        for window in (1, 5, 10, 33):
            for c in (1, 128, 247):
                assert simulate_device_detector(p, c, window) == simulate_device_detector(
                    p, c, window, require_full_window=False
                )


def test_cutoffs_zero_and_one_never_detect():
    p = stream(200, {k: 255 for k in range(50, 60)})
    assert detect(p, 1.0, 1) == []  # no sum exceeds 255 * window
    assert detect(p, 0.0, 1) == []  # p < 0 is never true, so the refractory counter never advances
    assert simulate_device_detector(p, 0, 1) == []


# --------------------------------------------------------------------------- start-up and refractory period


def test_rearm_invocations_from_the_device_numbers():
    # 100 slices; 2 slices pass before the first invocation, then 3 per output below the cutoff:
    # ceil(98 / 3) = 33 outputs. ESPHome's older 74 slices: ceil(72 / 3) = 24.
    assert DETECTION_REFRACTORY_SLICES == 100
    assert STREAMING_STRIDE == 3
    assert rearm_invocations() == 33
    assert rearm_invocations(74, 3) == 24
    assert rearm_invocations(0, 3) == 0


def test_start_up_suppression():
    # A single high output (window 1) fires only once 33 outputs below the cutoff were seen.
    assert detect(stream(60, {32: 255}), 0.5, 1) == []
    assert detect(stream(60, {33: 255}), 0.5, 1) == [33]
    # A high output does not count toward re-arming: with 10 high, the 33rd low output is 33.
    assert detect(stream(60, {10: 255, 33: 255}), 0.5, 1) == []
    assert detect(stream(60, {10: 255, 34: 255}), 0.5, 1) == [34]
    # A detector that has been listening for a while fires at once.
    assert detect(stream(60, {3: 255}), 0.5, 1, armed_at_start=True) == [3]


def test_refractory_period_counts_only_outputs_below_the_cutoff():
    # Window 1, cutoff 0.5. 10 is high during start-up (ignored, and not counted toward re-arming);
    # re-armed at 33; 40 fires. The detection lands on the first slice of 40's period, so 2 slices of
    # the zeroed ring count: 100 - 2 = 98 -> 33 outputs below the cutoff. Below after 40: 41..69 (29),
    # 71, 72, 73 (32), 75 (33) -> re-armed at 75: 70 and 74 are suppressed, 76 fires.
    p = stream(100, {10: 255, 40: 255, 70: 255, 74: 255, 76: 255})
    assert detect(p, 0.5, 1) == [40, 76]
    assert simulate_device_detector(p, 127, 1) == [40, 76]


def test_a_long_high_plateau_is_one_event():
    # While the newest output stays at or above the cutoff the refractory counter is frozen.
    p = stream(400, {k: 255 for k in range(50, 350)})
    assert detect(p, 0.97, 5) == [54]  # first full window of 255: 1275 > 247 * 5
    assert simulate_device_detector(p, 247, 5) == [54]


def test_an_interrupted_plateau_fires_once_per_refractory_period():
    # 40 low outputs, then 20 blocks of 10 high + 10 low. After each detection 33 low outputs are
    # needed: 3 low blocks + 3 outputs of the 4th, so the next high block after that fires: every 80.
    p = np.concatenate([np.zeros(40), np.tile(np.r_[np.full(10, 255), np.zeros(10)], 20)]).astype(np.uint8)
    events = detect(p, 0.5, 1)
    print("interrupted plateau events:", events)
    assert events == [40, 120, 200, 280, 360]
    assert simulate_device_detector(p, 127, 1) == events


# --------------------------------------------------------------------------- fast paths equal the reference


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sweeps_equal_detect_and_the_slice_simulator(seed):
    rng = np.random.default_rng(seed)
    cutoffs_u8 = np.array([0, 1, 64, 127, 128, 200, 247, 254, 255])
    windows = [1, 2, 5, 10]
    for trial in range(6):
        n = int(rng.integers(0, 300))
        if trial % 2:
            p = np.where(rng.random(n) < 0.15, rng.integers(180, 256, n), rng.integers(0, 80, n))
        else:
            p = np.repeat(rng.integers(0, 256, n // 6 + 1), 6)[:n]
        params = {
            "refractory_slices": int(rng.choice([0, 1, 3, 7, 100])),
            "stride": int(rng.choice([1, 2, 3])),
            "armed_at_start": bool(rng.integers(0, 2)),
        }
        counts = count_detections_sweep(p, cutoffs_u8, windows, **params)
        firsts = first_detection_sweep([p, p[: n // 3]], cutoffs_u8, windows, **params)
        for wi, window in enumerate(windows):
            for ci, c in enumerate(cutoffs_u8.tolist()):
                reference = simulate_device_detector(p, c, window, **params)
                assert detect(p, c / 255, window, **params) == reference
                assert counts[wi, ci] == len(reference)
                assert firsts[0, wi, ci] == (reference[0] if reference else -1)
                short = simulate_device_detector(p[: n // 3], c, window, **params)
                assert firsts[1, wi, ci] == (short[0] if short else -1)


def test_count_sweep_on_a_known_stream():
    # Three bursts of 6 outputs, far apart, of heights 255, 230 and 180.
    bursts = {k: h for start, h in ((100, 255), (250, 230), (400, 180)) for k in range(start, start + 6)}
    p = stream(600, bursts)
    cutoffs_u8 = np.array([0, 100, 179, 180, 229, 230, 254, 255])
    counts = count_detections_sweep(p, cutoffs_u8, [1, 5, 7])
    print(
        "window 5, detections per cutoff_u8:", dict(zip(cutoffs_u8.tolist(), counts[1].tolist(), strict=True))
    )
    expected = [0, 3, 3, 2, 2, 1, 1, 0]  # a burst fires when its height is above the cutoff
    assert counts[0].tolist() == expected
    assert counts[1].tolist() == expected
    # A window of 7 holds at most the 6 burst outputs and a 0: it fires when 6 * height > 7 * cutoff_u8,
    # i.e. height > 116.7 (c=100), > 208.8 (c=179), > 210 (c=180), > 267.2 (c=229: none).
    assert counts[2].tolist() == [0, 3, 2, 2, 0, 0, 0, 0]
    assert count_detections_sweep([], cutoffs_u8, [5]).tolist() == [[0] * 8]


# --------------------------------------------------------------------------- FA/h and bad input


def test_false_activations_per_hour_scaling():
    assert false_activations_per_hour(3, 1800.0) == 6.0  # 3 events in 30 minutes
    assert false_activations_per_hour(1, 3600.0) == 1.0
    assert false_activations_per_hour(0, 12.5) == 0.0
    assert false_activations_per_hour(5, 36000.0) == 0.5  # 5 events in 10 hours


@pytest.mark.parametrize("duration", [0.0, -1.0, float("nan"), float("inf")])
def test_false_activations_per_hour_needs_a_real_duration(duration):
    with pytest.raises(ValueError, match="measured length of the audio"):
        false_activations_per_hour(1, duration)


def test_bad_detector_arguments_are_refused():
    with pytest.raises(ValueError, match="window must be at least 1"):
        detect([0, 0], 0.5, 0)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        detect([0, 0], 0.5, 1, stride=0)
    with pytest.raises(ValueError, match="refractory_slices must be at least 0"):
        detect([0, 0], 0.5, 1, refractory_slices=-1)
    with pytest.raises(ValueError, match="window must be a whole number"):
        detect([0, 0], 0.5, 2.5)
    with pytest.raises(ValueError, match=r"cutoffs_u8 must hold integers 0\.\.255"):
        count_detections_sweep([0, 0], [256], [1])
    with pytest.raises(ValueError, match=r"cutoffs_u8 must hold integers 0\.\.255"):
        count_detections_sweep([0, 0], [0.5], [1])
    with pytest.raises(ValueError, match="at least one window"):
        count_detections_sweep([0, 0], [127], [])
    with pytest.raises(ValueError, match="sequence of probability streams"):
        first_detection_sweep(np.zeros(5, dtype=np.uint8), [127], [1])


# --------------------------------------------------------------------------- the incremental detector


def _pushed(p, detector: DeviceDetector) -> list[int]:
    return [k for k, value in enumerate(np.asarray(p).tolist()) if detector.push(value)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_device_detector_equals_detect_on_random_streams(seed):
    rng = np.random.default_rng(100 + seed)
    checked = fired = 0
    for trial in range(8):
        n = int(rng.integers(0, 400))
        if trial % 2:
            p = np.where(rng.random(n) < 0.15, rng.integers(180, 256, n), rng.integers(0, 80, n))
        else:
            p = np.repeat(rng.integers(0, 256, n // 6 + 1), 6)[:n]
        params = {
            "refractory_slices": int(rng.choice([0, 1, 3, 7, 74, 100])),
            "stride": int(rng.choice([1, 2, 3, 4])),
            "armed_at_start": bool(rng.integers(0, 2)),
        }
        for window in (1, 2, 5, 10):
            for c in (0, 1, 64, 127, 200, 247, 255):
                expected = detect(p, c / 255, window, **params)
                assert _pushed(p, DeviceDetector(c, window, **params)) == expected
                assert _pushed(p, DeviceDetector.for_cutoff(c / 255, window, **params)) == expected
                checked += 1
                fired += len(expected)
    print(f"seed {seed}: {checked} streams x settings, {fired} detections, DeviceDetector == detect()")
    assert fired > 0


def test_device_detector_reports_the_window_that_fired():
    # Window 5, cutoff 0.5 (127), re-armed at 33: the window [0, 0, 200, 255, 255] ending at 38 sums to
    # 710 > 635, so 38 fires (the ring is then cleared and the rest of the burst is suppressed).
    p = stream(60, {36: 200, 37: 255, 38: 255, 39: 255, 40: 255})
    detector = DeviceDetector(127, 5)
    assert detector.detection_sum is None and detector.detection_probability is None
    fired = _pushed(p, detector)
    assert fired == detect(p, 0.5, 5) == [38]  # 200 + 255 * 2 = 710 > 635 already at 38
    assert detector.detection_sum == 710
    assert detector.detection_probability == pytest.approx(710 / (255 * 5))
    assert detector.outputs_pushed == 60


def test_device_detector_refuses_bad_outputs_and_settings():
    detector = DeviceDetector(127, 5)
    for bad in (256, -1, 0.5, True):
        with pytest.raises(ValueError, match=r"uint8 integer 0\.\.255"):
            detector.push(bad)
    with pytest.raises(ValueError, match="cutoff_u8 must be at most 255"):
        DeviceDetector(256, 5)
    with pytest.raises(ValueError, match="window must be at least 1"):
        DeviceDetector(127, 0)
    with pytest.raises(ValueError, match=r"cutoff must lie in \[0, 1\]"):
        DeviceDetector.for_cutoff(1.5, 5)
