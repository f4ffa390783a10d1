"""Validation metrics (mww.train.metrics) on hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mww.device.detection import cutoff_to_uint8
from mww.train.metrics import (
    CALIBRATION_CUTOFFS,
    DEFAULT_CUTOFFS,
    accuracy,
    auc_roc,
    average_viable_recall,
    classification_metrics,
    compute_all_metrics,
    confusion_counts,
    equal_error_rate,
    f1_score,
    fah_from_events,
    precision,
    recall,
    recall_at_no_fa,
    recall_at_target_fah,
    recall_fah_curve,
    recommended_operating_point,
    sweep_recall_fah,
)

# --------------------------------------------------------------------------- clip level

LABELS = [1, 1, 1, 0, 0, 0, 0, 1]
SCORES = [0.9, 0.6, 0.4, 0.7, 0.2, 0.5, 0.1, 0.5]
# Predicted positive when score > 0.5: 0.9, 0.6 (true positives) and 0.7 (false positive); the positives
# at 0.4 and at exactly 0.5 are missed; 0.2, 0.5, 0.1 are true negatives.


def test_confusion_counts_and_threshold_metrics():
    assert confusion_counts(LABELS, SCORES) == confusion_counts(LABELS, SCORES, 0.5)
    c = confusion_counts(LABELS, SCORES)
    assert (c.tp, c.fp, c.tn, c.fn) == (2, 1, 3, 2)
    assert accuracy(LABELS, SCORES) == pytest.approx(5 / 8)
    assert precision(LABELS, SCORES) == pytest.approx(2 / 3)
    assert recall(LABELS, SCORES) == pytest.approx(1 / 2)
    assert f1_score(LABELS, SCORES) == pytest.approx(4 / 7)  # 2 * (2/3) * (1/2) / (2/3 + 1/2)
    # At threshold 0.3 the positive at 0.4 is caught too: tp 4, fp 2 (0.7, 0.5), tn 2.
    assert recall(LABELS, SCORES, 0.3) == 1.0
    assert precision(LABELS, SCORES, 0.3) == pytest.approx(4 / 6)


def test_zero_division_conventions():
    # Nothing predicted positive: precision 0, recall 0, F1 0.
    assert precision([1, 0], [0.1, 0.2]) == 0.0
    assert recall([1, 0], [0.1, 0.2]) == 0.0
    assert f1_score([1, 0], [0.1, 0.2]) == 0.0
    assert accuracy([1, 0], [0.1, 0.2]) == 0.5
    # No positive label: recall 0 (precision 0 too: the prediction is a false positive).
    assert recall([0, 0], [0.9, 0.1]) == 0.0
    assert precision([0, 0], [0.9, 0.1]) == 0.0
    # One class only: AUC and EER are chance.
    assert auc_roc([1, 1], [0.2, 0.9]) == 0.5
    assert equal_error_rate([0, 0], [0.2, 0.9]) == 0.5


def test_auc_roc_with_ties():
    assert auc_roc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # Positives {0.5, 0.9}, negatives {0.5, 0.2}: pairs 0.5~0.5 tie (1/2), the other three won: 3.5 / 4.
    assert auc_roc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    assert auc_roc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == pytest.approx(0.5)
    assert auc_roc([0, 1], [0.9, 0.1]) == 0.0
    # Against the pairwise definition on random scores with many ties.
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = rng.integers(0, 8, 200) / 8
    pairs = [(a, b) for a, b in itertools.product(s[y == 1], s[y == 0])]
    expected = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert auc_roc(y, s) == pytest.approx(expected)


def test_equal_error_rate():
    # Perfect separation.
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    # At t = 0.4: FPR 1/2 (0.6 > 0.4), FNR 1/2 (0.4 is not > 0.4).
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == pytest.approx(0.5)
    # At t = 0.2: FPR 1/3, FNR 0; at t = 0.25: FPR 1/3, FNR 1. The lines cross where FNR = 1/3.
    assert equal_error_rate([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.25]) == pytest.approx(1 / 3)


def test_classification_metrics_dict():
    m = classification_metrics(LABELS, SCORES)
    print("clip-level metrics:", {k: round(v, 4) for k, v in m.items()})
    assert set(m) == {"accuracy", "precision", "recall", "f1", "auc_roc", "eer"}
    assert m["accuracy"] == pytest.approx(0.625)


def test_bad_clip_inputs_are_refused():
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match="differ in length"):
        accuracy([1, 0], [0.5])
    with pytest.raises(ValueError, match="labels must be 0"):
        accuracy([2, 0], [0.5, 0.5])
    with pytest.raises(ValueError, match="finite"):
        auc_roc([1, 0], [float("nan"), 0.5])


# --------------------------------------------------------------------------- FA/h and the recall curve


def test_fah_from_events_scaling():
    assert fah_from_events(3, 0.5) == 6.0  # 3 events in 30 minutes
    assert fah_from_events(0, 2.0) == 0.0
    assert fah_from_events(12, 24.0) == 0.5
    with pytest.raises(ValueError, match="positive number of hours"):
        fah_from_events(3, 0.0)
    with pytest.raises(ValueError, match="missing"):
        fah_from_events(3, None)


RECALL = [0.2, 0.5, 0.7, 0.9, 0.95]
FAH = [0.0, 0.0, 0.3, 1.2, 4.0]


def test_recall_at_no_fa_and_at_target():
    assert recall_at_no_fa(RECALL, FAH) == 0.5
    assert recall_at_target_fah(RECALL, FAH, 0.5) == 0.7
    assert recall_at_target_fah(RECALL, FAH, 1.2) == 0.9  # the target itself is allowed
    assert recall_at_target_fah(RECALL, FAH, 0.0) == 0.5
    assert recall_at_target_fah(RECALL, FAH, 10.0) == 0.95
    # No point meets it: 0.
    assert recall_at_no_fa([0.4, 0.9], [0.1, 3.0]) == 0.0
    with pytest.raises(ValueError, match="target_fah"):
        recall_at_target_fah(RECALL, FAH, -1.0)


def test_average_viable_recall_on_a_hand_drawn_curve():
    # Points (FA/h, recall): (0, .5), (.5, .7), (1.0, .6), (1.5, .9), (3.0, 1.0).
    # Best recall at FA/h <= x: 0.5 on [0, 0.5), 0.7 on [0.5, 1.5) (0.6 at 1.0 does not raise it),
    # 0.9 on [1.5, 2]; the point at 3.0 lies beyond 2.
    # Area = 0.5 * 0.5 + 1.0 * 0.7 + 0.5 * 0.9 = 0.25 + 0.7 + 0.45 = 1.4; divided by 2: 0.7.
    avr = average_viable_recall([0.5, 0.7, 0.6, 0.9, 1.0], [0.0, 0.5, 1.0, 1.5, 3.0])
    print("average_viable_recall of the hand-drawn curve:", avr)
    assert avr == pytest.approx(0.7)
    # No zero-FA point: recall 0 on [0, 0.4), 0.8 on [0.4, 1.0), 1.0 on [1.0, 2]:
    # area = 0.6 * 0.8 + 1.0 * 1.0 = 1.48; divided by 2: 0.74. Point order does not matter.
    assert average_viable_recall([1.0, 0.8], [1.0, 0.4]) == pytest.approx(0.74)
    assert average_viable_recall([1.0], [0.0]) == 1.0
    assert average_viable_recall([1.0, 0.9], [2.5, 3.0]) == 0.0
    assert average_viable_recall([0.5, 1.0], [0.0, 1.0], max_fah=4.0) == pytest.approx((0.5 * 1 + 3.0) / 4)


def test_recommended_operating_point_breaks_ties_toward_the_higher_cutoff():
    # 10 positive clips, 5 hours of ambient audio. Cutoffs 0.5 .. 0.8:
    # recall 0.9, 0.9, 0.9, 0.8; events 5, 2, 2, 0 -> FA/h 1.0, 0.4, 0.4, 0.0.
    detected = np.ones((10, 4), dtype=bool)
    detected[0, :] = False
    detected[1, 3] = False
    curve = recall_fah_curve(detected, np.array([5, 2, 2, 0]), 5.0, [0.5, 0.6, 0.7, 0.8], window=5)
    assert curve.recall.tolist() == pytest.approx([0.9, 0.9, 0.9, 0.8])
    assert curve.fah.tolist() == pytest.approx([1.0, 0.4, 0.4, 0.0])
    point = recommended_operating_point(curve, target_fah=0.5)
    assert (point.cutoff, point.cutoff_u8, point.recall, point.fah) == (0.7, 178, 0.9, 0.4)
    assert point.meets_target and point.window == 5
    # A target nothing but the last point meets.
    assert recommended_operating_point(curve, 0.0).cutoff == 0.8
    # No point meets the target: the lowest FA/h, flagged.
    noisy = recall_fah_curve(detected, np.array([9, 8, 7, 6]), 1.0, [0.5, 0.6, 0.7, 0.8], window=3)
    fallback = recommended_operating_point(noisy, 0.5)
    assert (fallback.cutoff, fallback.fah, fallback.meets_target) == (0.8, 6.0, False)
    # Across windows: same recall and cutoff, the lower FA/h wins.
    other = recall_fah_curve(detected, np.array([5, 2, 1, 0]), 5.0, [0.5, 0.6, 0.7, 0.8], window=7)
    best = recommended_operating_point([curve, other], 0.5)
    assert (best.window, best.cutoff, best.fah) == (7, 0.7, pytest.approx(0.2))


def test_recall_fah_curve_refuses_misaligned_input():
    with pytest.raises(ValueError, match="3 cutoffs"):
        recall_fah_curve(np.ones((2, 2), dtype=bool), np.array([0, 0, 0]), 1.0, [0.1, 0.2, 0.3], 5)
    with pytest.raises(ValueError, match="at least one clip"):
        recall_fah_curve(np.ones((0, 3), dtype=bool), np.array([0, 0, 0]), 1.0, [0.1, 0.2, 0.3], 5)
    with pytest.raises(ValueError, match="positive number of hours"):
        recall_fah_curve(np.ones((2, 3), dtype=bool), np.array([0, 0, 0]), 0.0, [0.1, 0.2, 0.3], 5)
    with pytest.raises(ValueError, match=r"cutoff must lie in \[0, 1\]"):
        recall_fah_curve(np.ones((2, 3), dtype=bool), np.array([0, 0, 0]), 1.0, [0.1, 0.2, 1.3], 5)


# --------------------------------------------------------------------------- streams end to end

AMBIENT_INVOCATIONS = 120_000  # 120 000 invocations x 3 slices x 10 ms = 3600 s
AMBIENT_SECONDS = 3600.05  # measured: the front end's first window and a short tail come on top


def burst(length: int, start: int, size: int, height: int) -> np.ndarray:
    p = np.zeros(length, dtype=np.uint8)
    p[start : start + size] = height
    return p


def ambient_hour() -> np.ndarray:
    """One hour of outputs with three bursts of 6 outputs, heights 255, 230 and 180."""
    p = np.zeros(AMBIENT_INVOCATIONS, dtype=np.uint8)
    for start, height in ((10_000, 255), (50_000, 230), (90_000, 180)):
        p[start : start + 6] = height
    return p


def positive_clips() -> list[np.ndarray]:
    """40 outputs of lead-in (the start-up suppression needs 33), then a burst of 8: 255, 255, 220, 150."""
    return [burst(60, 40, 8, h) for h in (255, 255, 220, 150)]


def test_sweep_recall_fah_on_known_streams():
    curves = sweep_recall_fah(positive_clips(), [ambient_hour()], AMBIENT_SECONDS / 3600, windows=[1, 5])
    assert [c.window for c in curves] == [1, 5]
    curve = curves[1]
    u8 = curve.cutoffs_u8
    # A clip / burst fires when its height is above the integer cutoff (the windows are full of it).
    expected_recall = np.select([u8 == 0, u8 < 150, u8 < 220, u8 < 255], [0.0, 1.0, 0.75, 0.5], 0.0)
    expected_events = np.select([u8 == 0, u8 < 180, u8 < 230, u8 < 255], [0, 3, 2, 1], 0)
    assert curve.recall.tolist() == expected_recall.tolist()
    assert curve.ambient_events.tolist() == expected_events.tolist()
    assert curve.fah == pytest.approx(expected_events * 3600 / AMBIENT_SECONDS)
    assert curves[0].recall.tolist() == curve.recall.tolist()


def test_compute_all_metrics_end_to_end():
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    scores = [0.99, 0.95, 0.8, 0.4, 0.1, 0.6, 0.2, 0.3]
    metrics = compute_all_metrics(
        labels,
        scores,
        positive_clips(),
        [ambient_hour()],
        ambient_duration_hours=AMBIENT_SECONDS / 3600,
        target_fah=1.0,
        cutoff=0.97,
        window=5,
    )
    print("compute_all_metrics:", metrics)
    hours = AMBIENT_SECONDS / 3600
    # Clip level: tp 3, fp 1 (0.6), fn 1 (0.4), tn 3.
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["precision"] == pytest.approx(0.75)
    assert metrics["recall"] == pytest.approx(0.75)
    assert metrics["f1"] == pytest.approx(0.75)
    assert metrics["auc_roc"] == pytest.approx(15 / 16)  # only 0.4 < 0.6 is lost
    # At cutoff 0.97 (247) and window 5: only the 255 burst fires; the two 255 clips are detected.
    assert metrics["ambient_false_activations"] == 1
    assert metrics["ambient_false_positives_per_hour"] == pytest.approx(1 / hours)
    assert metrics["streaming_recall"] == 0.5
    assert metrics["probability_cutoff_u8"] == 247
    # Window-5 curve, FA/h in units of one = 1/hours (hours slightly above 1, so one < 1.0):
    # (0, 0) at cutoffs 0.00 and 1.00; (one, .5) for cutoff_u8 230..254; (2 one, .5); (2 one, .75);
    # (3 one, .75); (3 one, 1.0). Best recall at FA/h <= x: 0 below one, 0.5 up to 2 one, 0.75 from
    # 2 one to 2 (3 one lies beyond). Area = 0.5 * one + 0.75 * (2 - 2 one), divided by 2.
    one = 1 / hours
    assert metrics["recall_at_no_fa"] == 0.0
    assert metrics["recall_at_target_fah"] == 0.5
    assert metrics["average_viable_recall"] == pytest.approx((0.5 * one + 0.75 * (2 - 2 * one)) / 2)
    # Recall 0.5 within 1.0 FA/h from cutoff 0.91 (232) to 0.998 (254): the tie goes to 0.998.
    assert metrics["operating_point_cutoff"] == 0.998
    assert metrics["operating_point_window"] == 5
    assert metrics["operating_point_recall"] == 0.5
    assert metrics["operating_point_fah"] == pytest.approx(one)
    assert metrics["operating_point_meets_target"] is True

    # Over windows 1, 5 and 10: a window of 10 holds 8 clip outputs (fires when 8 h > 10 c) but only 6
    # of an ambient burst (6 h > 10 c). For cutoff_u8 153..175 the 255, 255 and 220 clips fire and no
    # ambient burst does: recall 0.75 at 0 FA/h; the highest such grid cutoff is 0.69 (175).
    wide = compute_all_metrics(
        labels,
        scores,
        positive_clips(),
        [ambient_hour()],
        ambient_duration_hours=hours,
        target_fah=1.0,
        operating_point_windows=[1, 5, 10],
    )
    assert (wide["operating_point_window"], wide["operating_point_cutoff"]) == (10, 0.69)
    assert (wide["operating_point_recall"], wide["operating_point_fah"]) == (0.75, 0.0)
    assert wide["recall_at_no_fa"] == 0.0  # the curve metrics stay those of the configured window 5
    # A target nothing with recall above 0 meets: recall 0, the highest cutoff (1.00), smallest window.
    strict = compute_all_metrics(
        labels,
        scores,
        positive_clips(),
        [ambient_hour()],
        ambient_duration_hours=hours,
        target_fah=0.5,
        operating_point_windows=[1, 5],
    )
    assert strict["recall_at_target_fah"] == 0.0
    assert (strict["operating_point_cutoff"], strict["operating_point_window"]) == (1.0, 1)
    assert set(DEFAULT_CUTOFFS.tolist()) >= {0.0, 0.5, 0.97, 1.0}


def test_the_calibration_grid_reaches_the_top_device_cutoffs():
    """Every grid cutoff is a different device cutoff, up to 254: 0 and 255 (never fire) are left out."""
    u8 = [cutoff_to_uint8(c) for c in CALIBRATION_CUTOFFS.tolist()]
    assert u8 == sorted(set(u8)) and u8[0] > 0 and u8[-3:] == [252, 253, 254]
    assert DEFAULT_CUTOFFS[0] == 0.0 and DEFAULT_CUTOFFS[-1] == 1.0
    assert DEFAULT_CUTOFFS[1:-1].tolist() == CALIBRATION_CUTOFFS.tolist()


def test_outputs_crowding_at_the_top_still_find_a_setting_without_false_activations():
    """Positives at 255, an ambient burst at 254: only the device cutoff 254 (0.998) separates them."""
    positives = [burst(60, 40, 8, 255) for _ in range(4)]
    ambient = ambient_hour()
    ambient[ambient > 0] = 254
    metrics = compute_all_metrics(
        [1, 0],
        [0.9, 0.1],
        positives,
        [ambient],
        ambient_duration_hours=AMBIENT_SECONDS / 3600,
        target_fah=0.0,
        operating_point_windows=[5],
    )
    print("top of the grid:", {k: v for k, v in metrics.items() if k.startswith("operating_point")})
    assert metrics["recall_at_no_fa"] == 1.0
    assert (metrics["operating_point_cutoff"], metrics["operating_point_fah"]) == (0.998, 0.0)
    assert metrics["operating_point_meets_target"] is True


def test_positive_streams_start_suppressed_unless_armed():
    early = [burst(30, 5, 8, 255)]  # the wake word inside the first second of a fresh stream
    ambient = [np.zeros(1200, dtype=np.uint8)]  # 36 s
    curve = sweep_recall_fah(early, ambient, 36 / 3600, cutoffs=[0.5], windows=[5])[0]
    assert curve.recall.tolist() == [0.0]
    armed = sweep_recall_fah(
        early, ambient, 36 / 3600, cutoffs=[0.5], windows=[5], positives_armed_at_start=True
    )
    assert armed[0].recall.tolist() == [1.0]


def test_compute_all_metrics_refuses_bad_input():
    clips, ambient = positive_clips(), [np.zeros(1200, dtype=np.uint8)]  # 36 s of ambient
    ok = {"ambient_duration_hours": 36 / 3600}
    args = ([1, 0], [0.9, 0.1])
    with pytest.raises(ValueError, match="ambient_duration_hours is missing"):
        compute_all_metrics(*args, clips, ambient)
    with pytest.raises(ValueError, match="positive number of hours"):
        compute_all_metrics(*args, clips, ambient, ambient_duration_hours=0.0)
    with pytest.raises(ValueError, match="positive_streams is empty"):
        compute_all_metrics(*args, [], ambient, **ok)
    with pytest.raises(ValueError, match="ambient_streams is empty"):
        compute_all_metrics(*args, clips, [], **ok)
    with pytest.raises(
        ValueError, match=r"window \(sliding_window_size\) must be a whole number of at least 1"
    ):
        compute_all_metrics(*args, clips, ambient, window=0, **ok)
    with pytest.raises(ValueError, match=r"cutoff must lie in \[0, 1\]"):
        compute_all_metrics(*args, clips, ambient, cutoff=1.5, **ok)
    # A configured duration instead of the measured one.
    with pytest.raises(ValueError, match="much longer than the audio"):
        compute_all_metrics(*args, clips, ambient, ambient_duration_hours=1.0)
    with pytest.raises(ValueError, match="shorter than the audio"):
        compute_all_metrics(*args, clips, ambient, ambient_duration_hours=30 / 3600)
    # The check can be turned off for audio trimmed on purpose.
    assert compute_all_metrics(*args, clips, ambient, ambient_duration_hours=1.0, check_duration=False)[
        "ambient_duration_hours"
    ] == pytest.approx(1.0)
