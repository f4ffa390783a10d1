"""The two runtimes' detection rules on hand-made uint8 output sequences: the ESP32's integer sum and
pymicro-wakeword's float mean (`mww.device.pymicro`)."""

from __future__ import annotations

import statistics
from collections import deque

import numpy as np
import pytest

from mww.device.detection import detect
from mww.device.pymicro import (
    MAX_SHIPPED_CUTOFF,
    can_fire,
    check_rule,
    detect_with_rule,
    pymicro_count_sweep,
    pymicro_detect,
    pymicro_first_sweep,
    rules_disagree,
    window_sum_threshold,
)


def pymicro_reference(outputs: list[int], cutoff: float, window: int) -> list[int]:
    """pymicro-wakeword's own arithmetic, step by step: float32 dequantization (q - 0) * (1/256), a deque
    of the last `window` values, statistics.mean, and `prob <= cutoff` is no detection. Rising edges."""
    probs: deque[float] = deque(maxlen=window)
    fired, edges = False, []
    for k, q in enumerate(outputs):
        probs.append((np.float32(q) - 0) * np.float32(1 / 256))
        prob = 0.0 if len(probs) < window else statistics.mean(float(v) for v in probs)
        now = prob > cutoff
        if now and not fired:
            edges.append(k)
        fired = now
    return edges


def test_thresholds_of_both_rules():
    # 0.97: the ESP32 compares with int(0.97 * 255) = 247 per output; pymicro with 0.97 * 256 = 248.32.
    assert window_sum_threshold(0.97, 5, "esphome") == 247 * 5
    assert window_sum_threshold(0.97, 5, "pymicro") == 1241
    assert window_sum_threshold(0.5, 1, "pymicro") == 128
    with pytest.raises(ValueError, match="esphome, pymicro"):
        check_rule("wyoming")
    with pytest.raises(ValueError, match="whole number"):
        window_sum_threshold(0.5, 0, "esphome")


def test_a_cutoff_of_0_998_with_window_1_means_two_different_things():
    saturated = [0] * 40 + [255] * 3 + [0] * 40
    # The ESP32 fires on a saturated output (255 > int(0.998 * 255) = 254) ...
    assert detect(saturated, 0.998, 1) == [40]
    # ... Home Assistant never does: 255 / 256 = 0.99609 is not above 0.998.
    assert pymicro_detect(saturated, 0.998, 1) == []
    assert pymicro_reference(saturated, 0.998, 1) == []
    assert can_fire(0.998, 1, "esphome") and not can_fire(0.998, 1, "pymicro")
    reason = rules_disagree(0.998, 1)
    assert reason is not None and "never fires in Home Assistant" in reason and "0.995" in reason
    print(
        f"0.998, window 1: ESP32 {detect(saturated, 0.998, 1)}, pymicro {pymicro_detect(saturated, 0.998, 1)}"
    )
    # The highest cutoff calibration ships fires in both on saturated outputs.
    assert rules_disagree(MAX_SHIPPED_CUTOFF, 1) is None and rules_disagree(MAX_SHIPPED_CUTOFF, 5) is None
    assert pymicro_detect(saturated, MAX_SHIPPED_CUTOFF, 1) == [40]
    assert rules_disagree(1.0, 3) is not None and rules_disagree(0.97, 5) is None


def test_a_window_sum_between_the_thresholds_fires_on_the_esp32_only():
    # Window 5 at 0.97: sums 1236..1241 pass the ESP32's test (> 1235) but not pymicro's (> 1241.6).
    between = [0] * 40 + [248, 248, 248, 248, 245] + [0] * 40  # sum 1237
    assert detect(between, 0.97, 5, armed_at_start=True) == [44]
    assert pymicro_detect(between, 0.97, 5) == []
    above = [0] * 40 + [249] * 5 + [0] * 40  # sum 1245: both
    assert detect(above, 0.97, 5, armed_at_start=True) == [44]
    assert pymicro_detect(above, 0.97, 5) == [44]


@pytest.mark.parametrize("seed", range(6))
def test_pymicro_rule_matches_its_own_arithmetic(seed):
    rng = np.random.default_rng(seed)
    outputs = np.clip(rng.normal(200, 60, 400), 0, 255).astype(np.uint8).tolist()
    for cutoff in (0.5, 0.8, 0.97, 0.99, MAX_SHIPPED_CUTOFF, 0.998):
        for window in (1, 3, 5, 10):
            assert pymicro_detect(outputs, cutoff, window) == pymicro_reference(outputs, cutoff, window)


def test_sweeps_equal_single_runs():
    rng = np.random.default_rng(7)
    streams = [np.clip(rng.normal(150, 90, n), 0, 255).astype(np.uint8) for n in (3, 60, 200)]
    cutoffs = [0.1, 0.5, 0.9, 0.97, 0.995]
    windows = [1, 3, 5]
    first = pymicro_first_sweep(streams, cutoffs, windows)
    for si, stream in enumerate(streams):
        counts = pymicro_count_sweep(stream, cutoffs, windows)
        for wi, window in enumerate(windows):
            for ci, cutoff in enumerate(cutoffs):
                events = pymicro_detect(stream, cutoff, window)
                assert counts[wi, ci] == len(events)
                assert first[si, wi, ci] == (events[0] if events else -1)


def test_detect_with_rule_dispatches():
    stream = [0] * 50 + [255] * 6 + [0] * 50
    assert detect_with_rule(stream, 0.9, 3, "esphome") == detect(stream, 0.9, 3)
    assert detect_with_rule(stream, 0.9, 3, "pymicro") == [52]
    with pytest.raises(ValueError, match="detection rule"):
        detect_with_rule(stream, 0.9, 3, "device")
