"""Validation metrics: clip-level classification, and recall against false activations per hour (FA/h)
measured the way the device measures them (pure NumPy).

Two families:

* clip-level metrics from labels y in {0, 1} and scores in [0, 1]: accuracy, precision, recall, F1 at a
  threshold (a clip is predicted positive when ``score > threshold``, strictly, like the device's
  compare), AUC-ROC (rank based, ties get their average rank) and the equal error rate;
* streaming metrics from per-clip / per-recording streams of model outputs (one output per invocation,
  uint8 or floats in [0, 1], as `mww.device.detection` takes them): each stream goes through the device's
  detector (`mww.device.detection`: sliding-window mean, integer cutoff, refractory period).
  A positive clip is
  detected when any detection fires in it; FA/h is the number of events on the ambient recordings
  divided by their real, measured duration in hours.

Zero-division conventions: precision with no predicted positive is 0; recall with no positive label is
0; F1 is 0 when precision + recall is 0; with only one class present AUC-ROC and the EER are 0.5 (no
ranking can be measured: chance level). Recall at no FA, or at a target FA/h, is 0 when no cutoff meets
it.

``average_viable_recall``: let R(x) be the best recall among the operating points whose FA/h is at most
x (0 where none is); R is a non-decreasing step function. It is the integral of R over x in [0, 2] FA/h,
divided by 2, so 1.0 means full recall with no false activation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mww.config.schema import ExportConfig, TrainingConfig
from mww.device.constants import DETECTION_REFRACTORY_SLICES, STREAMING_STRIDE, WINDOW_STEP_MS
from mww.device.detection import (
    SECONDS_PER_HOUR,
    count_detections_sweep,
    cutoff_to_uint8,
    false_activations_per_hour,
    first_detection_sweep,
    probabilities_to_uint8,
    rearm_invocations,
)
from mww.device.pymicro import check_rule, pymicro_count_sweep, pymicro_first_sweep

# Above 0.99 (uint8 252) the device still tells two cutoffs apart, 253 and 254: stricter settings for a
# model whose wake-word outputs sit at 255 (int(0.995 * 255) = 253, int(0.998 * 255) = 254).
TOP_CUTOFFS = (0.995, 0.998)
# The cutoff grid of sweeps: 0.00, 0.01, ..., 0.99, then the top cutoffs, then 1.00.
DEFAULT_CUTOFFS = np.concatenate([np.round(np.arange(100) / 100.0, 2), TOP_CUTOFFS, [1.0]])
DEFAULT_CUTOFFS.setflags(write=False)
# The same grid in words, for messages.
CUTOFF_GRID_TEXT = f"0.00, 0.01, ..., 0.99, {', '.join(f'{c:g}' for c in TOP_CUTOFFS)}, 1.00"
# Cutoffs 0.00 and 1.00 are degenerate on the device: at 0 the detector never re-arms after start-up
# (no output is below it) and at 1 nothing can exceed it. Calibration chooses between them.
CALIBRATION_CUTOFFS = DEFAULT_CUTOFFS[1:-1]
# The sliding windows calibration considers (ESPHome accepts any; official models use 5 to 10).
OPERATING_POINT_WINDOWS = tuple(range(1, 11))
# average_viable_recall integrates recall over FA/h from 0 to this many false activations per hour.
VIABLE_FAH_LIMIT = 2.0
# The measured ambient duration is at least what the streams cover (invocations x stride x 10 ms): the
# front end's first window and the tail short of a whole invocation come on top. It may exceed it by
# this fraction plus this many seconds per recording (trimmed warm-up, tails) and fall short of it by
# the shortfall fraction (resampling) before it is refused as not the duration of the streamed audio.
DURATION_TOLERANCE_FRACTION = 0.10
DURATION_TOLERANCE_PER_STREAM_S = 0.5
DURATION_SHORTFALL_FRACTION = 0.01

_EXPORT_DEFAULTS = ExportConfig()
_TRAINING_DEFAULTS = TrainingConfig()


# --------------------------------------------------------------------------- clip-level metrics


@dataclass(frozen=True)
class ConfusionCounts:
    """True/false positives and negatives at one threshold."""

    tp: int
    fp: int
    tn: int
    fn: int


def _labels_scores(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"labels and scores must be one-dimensional; got shapes {y.shape} and {s.shape}")
    if y.size == 0:
        raise ValueError("labels and scores are empty: there is nothing to measure")
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} labels, {s.size} scores")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (not the wake word) or 1 (the wake word)")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite numbers")
    return y.astype(bool), s


def confusion_counts(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> ConfusionCounts:
    """Counts with a clip predicted positive when ``score > threshold``."""
    y, s = _labels_scores(labels, scores)
    predicted = s > float(threshold)
    return ConfusionCounts(
        tp=int(np.sum(predicted & y)),
        fp=int(np.sum(predicted & ~y)),
        tn=int(np.sum(~predicted & ~y)),
        fn=int(np.sum(~predicted & y)),
    )


def accuracy(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> float:
    """Fraction of clips classified correctly."""
    c = confusion_counts(labels, scores, threshold)
    return (c.tp + c.tn) / (c.tp + c.fp + c.tn + c.fn)


def precision(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> float:
    """tp / (tp + fp); 0 when nothing is predicted positive."""
    c = confusion_counts(labels, scores, threshold)
    return c.tp / (c.tp + c.fp) if c.tp + c.fp else 0.0


def recall(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> float:
    """tp / (tp + fn); 0 when there is no positive clip."""
    c = confusion_counts(labels, scores, threshold)
    return c.tp / (c.tp + c.fn) if c.tp + c.fn else 0.0


def f1_score(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> float:
    """Harmonic mean of precision and recall; 0 when both are 0."""
    p = precision(labels, scores, threshold)
    r = recall(labels, scores, threshold)
    return 2 * p * r / (p + r) if p + r else 0.0


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def auc_roc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U); ties count half; 0.5 with one class only."""
    y, s = _labels_scores(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def equal_error_rate(labels: ArrayLike, scores: ArrayLike) -> float:
    """Where the false positive rate equals the false negative rate, interpolated between thresholds.

    Thresholds run over -inf and every score (predicted positive: ``score > t``); 0.5 with one class only.
    """
    y, s = _labels_scores(labels, scores)
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    if pos.size == 0 or neg.size == 0:
        return 0.5
    thresholds = np.concatenate(([-np.inf], np.unique(s)))
    fpr = 1.0 - np.searchsorted(neg, thresholds, side="right") / neg.size
    fnr = np.searchsorted(pos, thresholds, side="right") / pos.size
    diff = fpr - fnr  # falls from 1 at -inf to -1 at the highest score
    i = int(np.argmax(diff <= 0))
    if diff[i] == 0:
        return float(fpr[i])
    alpha = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + alpha * (fpr[i] - fpr[i - 1]))


def classification_metrics(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """accuracy, precision, recall, f1, auc_roc and eer of clip-level scores."""
    return {
        "accuracy": accuracy(labels, scores, threshold),
        "precision": precision(labels, scores, threshold),
        "recall": recall(labels, scores, threshold),
        "f1": f1_score(labels, scores, threshold),
        "auc_roc": auc_roc(labels, scores),
        "eer": equal_error_rate(labels, scores),
    }


# --------------------------------------------------------------------------- recall vs FA/h


def fah_from_events(n_events: float, duration_hours: float) -> float:
    """False activations per hour from an event count and hours of audio (3 events in 0.5 h = 6.0)."""
    _check_duration_hours(duration_hours)
    return false_activations_per_hour(n_events, float(duration_hours) * SECONDS_PER_HOUR)


def _check_duration_hours(duration_hours: float | None) -> float:
    if duration_hours is None:
        raise ValueError(
            "ambient_duration_hours is missing: pass the measured duration of the ambient audio that was "
            "streamed, in hours (FA/h is events divided by real hours, never by a configured constant)"
        )
    try:
        hours = float(duration_hours)
    except (TypeError, ValueError):
        raise ValueError(
            f"ambient_duration_hours must be a number of hours; got {duration_hours!r}"
        ) from None
    if not math.isfinite(hours) or hours <= 0.0:
        raise ValueError(
            f"ambient_duration_hours must be the measured duration of the ambient audio, a positive number "
            f"of hours; got {duration_hours!r}"
        )
    return hours


def _check_cutoffs(cutoffs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    grid = np.asarray(cutoffs, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError("cutoffs must be a non-empty one-dimensional list of probabilities in [0, 1]")
    return grid, np.array([cutoff_to_uint8(c) for c in grid.tolist()], dtype=np.int64)


@dataclass(frozen=True)
class OperatingPoint:
    """One (window, cutoff) setting with its recall on positives and its FA/h on ambient audio."""

    window: int
    cutoff: float
    cutoff_u8: int
    recall: float
    fah: float
    ambient_events: int
    meets_target: bool = True


@dataclass(frozen=True)
class RecallFahCurve:
    """Recall and FA/h of one sliding window at every cutoff of a grid (arrays aligned with `cutoffs`)."""

    window: int
    cutoffs: np.ndarray
    cutoffs_u8: np.ndarray
    recall: np.ndarray
    fah: np.ndarray
    ambient_events: np.ndarray
    duration_hours: float

    def points(self) -> list[OperatingPoint]:
        """The curve as operating points, in grid order."""
        return [
            OperatingPoint(
                window=self.window,
                cutoff=float(c),
                cutoff_u8=int(cu),
                recall=float(r),
                fah=float(f),
                ambient_events=int(e),
            )
            for c, cu, r, f, e in zip(
                self.cutoffs, self.cutoffs_u8, self.recall, self.fah, self.ambient_events, strict=True
            )
        ]


def recall_fah_curve(
    positive_detected: ArrayLike,
    ambient_events: ArrayLike,
    duration_hours: float,
    cutoffs: ArrayLike,
    window: int,
) -> RecallFahCurve:
    """Build the curve of one window from detections.

    `positive_detected`: bool [n_positive_clips, n_cutoffs], whether any detection fired in each clip;
    `ambient_events`: [n_cutoffs] events on all ambient audio; `duration_hours`: its measured duration.
    """
    hours = _check_duration_hours(duration_hours)
    grid, grid_u8 = _check_cutoffs(cutoffs)
    detected = np.asarray(positive_detected, dtype=bool)
    events = np.asarray(ambient_events)
    if detected.ndim != 2 or detected.shape[0] == 0:
        raise ValueError("positive_detected must be [n_positive_clips, n_cutoffs] with at least one clip")
    if detected.shape[1] != grid.size or events.shape != grid.shape:
        raise ValueError(
            f"{grid.size} cutoffs, but positive_detected has {detected.shape[1]} columns and "
            f"ambient_events has shape {events.shape}"
        )
    if not np.issubdtype(events.dtype, np.integer) or np.any(events < 0):
        raise ValueError("ambient_events must be non-negative whole numbers")
    return RecallFahCurve(
        window=int(window),
        cutoffs=grid,
        cutoffs_u8=grid_u8,
        recall=detected.mean(axis=0),
        fah=np.array([fah_from_events(int(e), hours) for e in events.tolist()]),
        ambient_events=events.astype(np.int64),
        duration_hours=hours,
    )


def _recall_fah_arrays(recall_values: ArrayLike, fah: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(recall_values, dtype=np.float64)
    f = np.asarray(fah, dtype=np.float64)
    if r.ndim != 1 or r.shape != f.shape or r.size == 0:
        raise ValueError(f"recall and fah must be non-empty and aligned; got shapes {r.shape} and {f.shape}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(f))) or np.any(f < 0) or np.any((r < 0) | (r > 1)):
        raise ValueError("recall must lie in [0, 1] and fah be finite and non-negative")
    return r, f


def recall_at_target_fah(recall_values: ArrayLike, fah: ArrayLike, target_fah: float) -> float:
    """Best recall among operating points with FA/h <= target; 0 when none is."""
    r, f = _recall_fah_arrays(recall_values, fah)
    if not math.isfinite(float(target_fah)) or float(target_fah) < 0:
        raise ValueError(f"target_fah must be a non-negative number; got {target_fah!r}")
    ok = f <= float(target_fah)
    return float(r[ok].max()) if ok.any() else 0.0


def recall_at_no_fa(recall_values: ArrayLike, fah: ArrayLike) -> float:
    """Best recall among operating points with no false activation; 0 when none is."""
    return recall_at_target_fah(recall_values, fah, 0.0)


def average_viable_recall(
    recall_values: ArrayLike, fah: ArrayLike, max_fah: float = VIABLE_FAH_LIMIT
) -> float:
    """Area under the best-recall-at-FA/h <= x step function for x in [0, max_fah], divided by max_fah."""
    r, f = _recall_fah_arrays(recall_values, fah)
    if not max_fah > 0:
        raise ValueError(f"max_fah must be positive; got {max_fah!r}")
    order = np.argsort(f, kind="stable")
    best = np.maximum.accumulate(r[order])  # R(x) on [f_i, f_i+1)
    edges = np.clip(np.append(f[order], max_fah), 0.0, max_fah)
    return float(np.sum(best * np.diff(edges)) / max_fah)


def recommended_operating_point(
    curves: RecallFahCurve | Sequence[RecallFahCurve], target_fah: float
) -> OperatingPoint:
    """Highest recall with FA/h <= target; ties go to the higher cutoff, then lower FA/h, then smaller window.

    When no point meets the target, the lowest-FA/h point (then highest recall, higher cutoff) is returned
    with ``meets_target=False``.
    """
    if isinstance(curves, RecallFahCurve):
        curves = [curves]
    points = [p for curve in curves for p in curve.points()]
    if not points:
        raise ValueError("no operating points: pass at least one recall/FA-h curve")
    target = float(target_fah)
    if not math.isfinite(target) or target < 0:
        raise ValueError(f"target_fah must be a non-negative number; got {target_fah!r}")
    feasible = [p for p in points if p.fah <= target]
    if feasible:
        return max(feasible, key=lambda p: (p.recall, p.cutoff_u8, p.cutoff, -p.fah, -p.window))
    best = min(points, key=lambda p: (p.fah, -p.recall, -p.cutoff_u8, -p.cutoff, p.window))
    return OperatingPoint(
        window=best.window,
        cutoff=best.cutoff,
        cutoff_u8=best.cutoff_u8,
        recall=best.recall,
        fah=best.fah,
        ambient_events=best.ambient_events,
        meets_target=False,
    )


# --------------------------------------------------------------------------- streams to curves


def negative_lead_in(stride: int = STREAMING_STRIDE) -> int:
    """Zero outputs put before each negative clip so the detector hears it armed (see below)."""
    return rearm_invocations(stride=stride) + 1


def false_activation_streams(
    ambient: Sequence[np.ndarray],
    negatives: Sequence[np.ndarray],
    ambient_seconds: float,
    stride: int = STREAMING_STRIDE,
    negative_seconds: float | None = None,
) -> tuple[list[np.ndarray], float]:
    """The streams FA/h is counted on and their duration in hours.

    Ambient recordings are device starts (start-up suppression applies) over their measured duration.
    Each negative clip is one utterance heard by a detector that has been listening: a lead-in of
    `negative_lead_in` zero outputs re-arms it, and the clips count for `negative_seconds` (the
    recordings' own duration, without silence an evaluation stream adds after them) or, if not
    given, for the time their outputs cover.
    Hard negatives are confusable on purpose and far rarer in a home than in a dataset, so they are
    not part of FA/h (they get their own false detection rate).
    """
    lead = np.zeros(negative_lead_in(stride), dtype=np.uint8)
    streams = [probabilities_to_uint8(a) for a in ambient]
    streams += [np.concatenate([lead, probabilities_to_uint8(n)]) for n in negatives]
    negative_s = (
        sum(len(n) for n in negatives) * stride * WINDOW_STEP_MS / 1000.0
        if negative_seconds is None
        else float(negative_seconds)
    )
    return streams, (float(ambient_seconds) + negative_s) / SECONDS_PER_HOUR


def _streams(streams: Sequence[ArrayLike], what: str) -> list[np.ndarray]:
    if streams is None or (isinstance(streams, np.ndarray) and streams.ndim == 1):
        raise ValueError(f"{what} must be a list of probability streams, one per clip or recording")
    arrays = [probabilities_to_uint8(s) for s in streams]
    if not arrays:
        raise ValueError(f"{what} is empty: at least one stream of model outputs is needed")
    return arrays


def _check_streamed_duration(
    ambient: list[np.ndarray], hours: float, stride: int, check_duration: bool
) -> None:
    """Refuse a duration that cannot be the length of the streamed audio."""
    if not check_duration:
        return
    covered_s = sum(a.size for a in ambient) * stride * WINDOW_STEP_MS / 1000.0
    given_s = hours * SECONDS_PER_HOUR
    if covered_s == 0:
        raise ValueError("the ambient streams hold no model output: nothing was streamed")
    slack = DURATION_TOLERANCE_FRACTION * covered_s + DURATION_TOLERANCE_PER_STREAM_S * len(ambient)
    if given_s < covered_s * (1.0 - DURATION_SHORTFALL_FRACTION):
        raise ValueError(
            f"ambient_duration_hours ({hours:.6g} h = {given_s:.1f} s) is shorter than the audio the ambient "
            f"streams cover ({covered_s:.1f} s at stride {stride}); pass the measured duration"
        )
    if given_s > covered_s + slack:
        raise ValueError(
            f"ambient_duration_hours ({hours:.6g} h = {given_s:.1f} s) is much longer than the audio the "
            f"ambient streams cover ({covered_s:.1f} s at stride {stride}); pass the measured duration of "
            "the audio that was streamed, not a configured value (or check_duration=False)"
        )


def sweep_recall_fah(
    positive_streams: Sequence[ArrayLike],
    ambient_streams: Sequence[ArrayLike],
    ambient_duration_hours: float,
    *,
    cutoffs: ArrayLike = DEFAULT_CUTOFFS,
    windows: Sequence[int] = (_EXPORT_DEFAULTS.sliding_window_size,),
    stride: int = STREAMING_STRIDE,
    refractory_slices: int = DETECTION_REFRACTORY_SLICES,
    positives_armed_at_start: bool = False,
    check_duration: bool = True,
    rule: str = "esphome",
) -> list[RecallFahCurve]:
    """Recall and FA/h for every window and cutoff, one curve per window.

    Every stream is one device start: the start-up suppression applies at its beginning. Positive clips
    therefore need about a second of lead-in before the wake word, or ``positives_armed_at_start=True``
    to model a detector that has been listening for a while. Ambient recordings are streamed one by one
    and their events summed; `ambient_duration_hours` is their measured total duration.
    ``rule="pymicro"`` counts with Home Assistant's detector instead (`mww.device.pymicro`: float mean,
    no start-up suppression, no refractory period; the stride and arming settings do not apply).
    """
    positives = _streams(positive_streams, "positive_streams")
    ambient = _streams(ambient_streams, "ambient_streams")
    hours = _check_duration_hours(ambient_duration_hours)
    _check_streamed_duration(ambient, hours, stride, check_duration)
    grid, grid_u8 = _check_cutoffs(cutoffs)
    wins = list(windows)
    if check_rule(rule) == "pymicro":
        first = pymicro_first_sweep(positives, grid, wins)
        ha_events = np.zeros((len(wins), grid.size), dtype=np.int64)
        for stream in ambient:
            ha_events += pymicro_count_sweep(stream, grid, wins)
        return [
            recall_fah_curve(first[:, wi, :] >= 0, ha_events[wi], hours, grid, window)
            for wi, window in enumerate(wins)
        ]
    first = first_detection_sweep(
        positives,
        grid_u8,
        wins,
        refractory_slices=refractory_slices,
        stride=stride,
        armed_at_start=positives_armed_at_start,
    )
    events = np.zeros((len(wins), grid.size), dtype=np.int64)
    for stream in ambient:
        events += count_detections_sweep(
            stream, grid_u8, wins, refractory_slices=refractory_slices, stride=stride
        )
    return [
        recall_fah_curve(first[:, wi, :] >= 0, events[wi], hours, grid, window)
        for wi, window in enumerate(wins)
    ]


def compute_all_metrics(
    labels: ArrayLike,
    scores: ArrayLike,
    positive_streams: Sequence[ArrayLike],
    ambient_streams: Sequence[ArrayLike],
    *,
    ambient_duration_hours: float | None = None,
    target_fah: float = _TRAINING_DEFAULTS.target_minimization,
    cutoff: float = _EXPORT_DEFAULTS.probability_cutoff,
    window: int = _EXPORT_DEFAULTS.sliding_window_size,
    cutoffs: ArrayLike = DEFAULT_CUTOFFS,
    operating_point_windows: Sequence[int] | None = None,
    stride: int = STREAMING_STRIDE,
    refractory_slices: int = DETECTION_REFRACTORY_SLICES,
    threshold: float = 0.5,
    positives_armed_at_start: bool = False,
    check_duration: bool = True,
) -> dict[str, float | int | bool]:
    """All validation metrics as one flat dict.

    Clip level (`labels`, `scores`, `threshold`): accuracy, precision, recall, f1, auc_roc, eer.
    Streaming, at the configured `cutoff` and `window`: ambient_false_positives_per_hour,
    ambient_false_activations, streaming_recall. From the sweep over `cutoffs` at `window`:
    recall_at_no_fa, recall_at_target_fah, average_viable_recall. The recommended operating point
    (over `operating_point_windows`, default just `window`): operating_point_cutoff, _window, _recall,
    _fah, _meets_target. `ambient_duration_hours` is required: the measured duration of the ambient
    audio behind `ambient_streams`. Defaults are the standard preset's target FA/h, cutoff and window.
    """
    hours = _check_duration_hours(ambient_duration_hours)
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window (sliding_window_size) must be a whole number of at least 1; got {window!r}")
    window = int(window)
    cutoff_u8 = cutoff_to_uint8(cutoff)
    result: dict[str, float | int | bool] = dict(classification_metrics(labels, scores, threshold))

    positives = _streams(positive_streams, "positive_streams")
    ambient = _streams(ambient_streams, "ambient_streams")
    _check_streamed_duration(ambient, hours, stride, check_duration)
    sweep_windows = sorted({window, *(operating_point_windows or ())})
    common = {
        "stride": stride,
        "refractory_slices": refractory_slices,
        "positives_armed_at_start": positives_armed_at_start,
        "check_duration": False,  # checked above
    }
    curves = sweep_recall_fah(positives, ambient, hours, cutoffs=cutoffs, windows=sweep_windows, **common)
    configured = sweep_recall_fah(positives, ambient, hours, cutoffs=[cutoff], windows=[window], **common)[0]
    curve = curves[sweep_windows.index(window)]
    chosen = recommended_operating_point(
        [c for c in curves if c.window in set(operating_point_windows or [window])], target_fah
    )
    result.update(
        {
            "ambient_false_positives_per_hour": float(configured.fah[0]),
            "ambient_false_activations": int(configured.ambient_events[0]),
            "ambient_duration_hours": hours,
            "streaming_recall": float(configured.recall[0]),
            "probability_cutoff": float(cutoff),
            "probability_cutoff_u8": cutoff_u8,
            "sliding_window_size": window,
            "recall_at_no_fa": recall_at_no_fa(curve.recall, curve.fah),
            "recall_at_target_fah": recall_at_target_fah(curve.recall, curve.fah, target_fah),
            "target_fah": float(target_fah),
            "average_viable_recall": average_viable_recall(curve.recall, curve.fah),
            "operating_point_cutoff": chosen.cutoff,
            "operating_point_window": chosen.window,
            "operating_point_recall": chosen.recall,
            "operating_point_fah": chosen.fah,
            "operating_point_meets_target": chosen.meets_target,
        }
    )
    return result
