"""Choosing the cutoff and window a model ships with, so that it holds on audio it has not heard.

The validation split decides the manifest's ``probability_cutoff`` and ``sliding_window_size``. Picking
the best point of one noisy sweep overfits it: a cutoff that meets the FA/h target only exactly where it
was measured, on a third of an hour of ambient audio, fires dozens of times an hour elsewhere. So a
point is shipped only when:

* it is a cutoff both runtimes can fire at (at most `MAX_SHIPPED_CUTOFF`) and a window of at least
  `MIN_WINDOW` (one output alone is one noisy frame);
* both runtimes' rules (the ESP32's integer sum and Home Assistant's float mean,
  `mww.device.pymicro`) give the same events on the validation audio: the same number of false
  activations and of positives detected, so the manifest means one thing;
* the FA/h target also holds `MARGIN_STEPS` grid steps below the chosen cutoff (a margin against the
  next hour of audio being a little different);
* the model's output on digital silence (a muted microphone) stays at or below the cutoff, so it
  never fires on silence (and positives streamed with silence around them are not counted as
  detected in the silence);
* the validation data can support it: at least `MIN_HOURS` of ambient audio (one false activation is
  then at most 0.5 per hour) and `MIN_POSITIVES` positive clips, and the target is met.

A choice that fails the last test is still reported, with the reasons, as ``supported: false``; the
export then falls back and says so, rather than shipping a cutoff the data could not check. The fallback
is the config's cutoff and window, unless the audio and positives are enough: then a fallback point
(`_conservative`: within the target if some point meets it, else the highest cutoff with the fewest
false activations) is shipped instead when it fires less than the config's on the same audio (a
confident model fires at 0.97 on ambient speech that 0.98 over a longer window rejects).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mww.device.detection import format_cutoff
from mww.device.pymicro import MAX_SHIPPED_CUTOFF
from mww.train.metrics import CALIBRATION_CUTOFFS, OperatingPoint, RecallFahCurve

MIN_WINDOW = 3
MARGIN_STEPS = 2
MIN_HOURS = 2.0
MIN_POSITIVES = 20
# Checkpoint selection (`training.maximization_metric: recall_at_2_fah`) compares the best recall at
# this many false activations per hour over the points calibration may ship. On two hours of validation
# audio the budget holds four events, so one confusable phrase the model fires on does not decide it;
# the shipped cutoff is still calibrated to `training.target_minimization`.
SELECTION_FAH = 2.0
# The fallback prefers points where the runtimes count the same false activations and their recalls
# differ by at most this much (near 0.995 Home Assistant needs every output of the window at 255).
FALLBACK_RECALL_GAP = 0.02
SELECTION_RECALL = f"recall_at_{SELECTION_FAH:g}_fah"


@dataclass(frozen=True)
class CalibrationChoice:
    """The shipped operating point, whether the validation data supports it, and why not."""

    point: OperatingPoint
    supported: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)
    candidates: int = 0  # points that passed the rule, window and margin tests
    # When the choice is unsupported on enough audio: `_conservative`'s point, if it fires less than
    # the config's point.
    fallback: OperatingPoint | None = None

    def to_dict(self) -> dict[str, Any]:
        """What calibration.json records beside the cutoff and window."""
        data: dict[str, Any] = {
            "probability_cutoff": self.point.cutoff,
            "sliding_window_size": self.point.window,
            "recall": self.point.recall,
            "fah": self.point.fah,
            "meets_target": self.point.meets_target,
            "supported": self.supported,
            "reasons": list(self.reasons),
        }
        if self.fallback is not None:
            data["fallback"] = {
                "probability_cutoff": self.fallback.cutoff,
                "sliding_window_size": self.fallback.window,
                "fah": self.fallback.fah,
            }
        return data


def _by_window(curves: Sequence[RecallFahCurve]) -> dict[int, RecallFahCurve]:
    return {c.window: c for c in curves}


def _eligible(curve: RecallFahCurve, i: int, min_window: int) -> bool:
    cutoff = float(curve.cutoffs[i])
    return (
        curve.window >= min_window
        and cutoff <= MAX_SHIPPED_CUTOFF
        and bool(np.isin(cutoff, CALIBRATION_CUTOFFS))
    )


def shippable_recall_at(
    curves: Sequence[RecallFahCurve], max_fah: float, silence_u8: int = 0, min_window: int = MIN_WINDOW
) -> float:
    """The best recall with FA/h at most `max_fah` over the points calibration may ship: windows of at
    least `min_window`, cutoffs up to `MAX_SHIPPED_CUTOFF` and not below the output on silence."""
    best = 0.0
    for curve in curves:
        for i in range(curve.cutoffs.size):
            shippable = _eligible(curve, i, min_window) and int(curve.cutoffs_u8[i]) >= silence_u8
            if shippable and float(curve.fah[i]) <= max_fah:
                best = max(best, float(curve.recall[i]))
    return best


def _rules_agree(esp: RecallFahCurve, ha: RecallFahCurve | None, i: int) -> bool:
    if ha is None:
        return False
    return int(esp.ambient_events[i]) == int(ha.ambient_events[i]) and float(esp.recall[i]) == float(
        ha.recall[i]
    )


def _margin_holds(curve: RecallFahCurve, i: int, target: float, steps: int) -> bool:
    """The target also holds at the `steps` grid cutoffs below index i (none below: not held)."""
    if i - steps < 0:
        return False
    return bool(np.all(curve.fah[i - steps : i] <= target))


def _point(curve: RecallFahCurve, i: int, meets: bool) -> OperatingPoint:
    return OperatingPoint(
        window=curve.window,
        cutoff=float(curve.cutoffs[i]),
        cutoff_u8=int(curve.cutoffs_u8[i]),
        recall=float(curve.recall[i]),
        fah=float(curve.fah[i]),
        ambient_events=int(curve.ambient_events[i]),
        meets_target=meets,
    )


def calibrate(
    esphome_curves: Sequence[RecallFahCurve],
    pymicro_curves: Sequence[RecallFahCurve],
    target_fah: float,
    n_positives: int,
    *,
    min_window: int = MIN_WINDOW,
    margin_steps: int = MARGIN_STEPS,
    min_hours: float = MIN_HOURS,
    min_positives: int = MIN_POSITIVES,
    silence_u8: int = 0,
    default: tuple[float, int] | None = None,
) -> CalibrationChoice:
    """The operating point to ship from sweeps of the same streams under both rules (same grid and
    windows). Highest recall among the safe points within the target; ties go to the higher cutoff,
    then the lower FA/h, then the smaller window. When no safe point meets the target, the safe point
    with the lowest FA/h (then highest recall) is returned as not meeting it; when no point is safe at
    all, the eligible point with the lowest FA/h under the ESP32's rule. `silence_u8`: the model's
    highest uint8 output on digital silence; no cutoff below it is safe. `default`: the config's cutoff
    and window, which the export ships when the choice is unsupported, unless `fallback` fires less."""
    target = float(target_fah)
    ha = _by_window(pymicro_curves)
    safe: list[tuple[RecallFahCurve, int]] = []
    eligible: list[tuple[RecallFahCurve, int]] = []
    for curve in esphome_curves:
        for i in range(curve.cutoffs.size):
            if not _eligible(curve, i, min_window):
                continue
            eligible.append((curve, i))
            if (
                _rules_agree(curve, ha.get(curve.window), i)
                and _margin_holds(curve, i, target, margin_steps)
                and int(curve.cutoffs_u8[i]) >= silence_u8
            ):
                safe.append((curve, i))
    if not eligible:
        raise ValueError(
            f"no operating point to calibrate: the sweep needs windows of at least {min_window} and cutoffs "
            f"up to {MAX_SHIPPED_CUTOFF}"
        )
    within = [(c, i) for c, i in safe if c.fah[i] <= target]
    if within:
        curve, i = max(
            within,
            key=lambda ci: (ci[0].recall[ci[1]], ci[0].cutoffs_u8[ci[1]], -ci[0].fah[ci[1]], -ci[0].window),
        )
        point = _point(curve, i, True)
    else:
        pool = safe or eligible
        curve, i = min(
            pool,
            key=lambda ci: (ci[0].fah[ci[1]], -ci[0].recall[ci[1]], -ci[0].cutoffs_u8[ci[1]], ci[0].window),
        )
        point = _point(curve, i, False)
    limits = {"min_hours": min_hours, "min_positives": min_positives, "min_window": min_window}
    reasons = unsupported_reasons(
        point, curve.duration_hours, n_positives, target, bool(safe), silence_u8=silence_u8, **limits
    )
    fallback = None
    if not point.meets_target and curve.duration_hours >= min_hours and n_positives >= min_positives:
        quiet = [(c, i) for c, i in eligible if int(c.cutoffs_u8[i]) >= silence_u8]
        fallback = _conservative(quiet, ha, target, _fah_at(esphome_curves, default), margin_steps)
    return CalibrationChoice(
        point=point, supported=not reasons, reasons=tuple(reasons), candidates=len(safe), fallback=fallback
    )


def _conservative(
    points: list[tuple[RecallFahCurve, int]],
    ha: dict[int, RecallFahCurve],
    target: float,
    default_fah: float | None,
    margin_steps: int,
) -> OperatingPoint | None:
    """The fallback among `points` (not below silence), counting false activations under the rule that
    counts more of them, within the target where some point meets it, else at the fewest there are;
    preferring points where that also holds `margin_steps` cutoffs below, then those where both rules
    count the same events and nearly the same recall (`FALLBACK_RECALL_GAP`). Within the target the
    highest recall wins (as in calibration); past it the highest cutoff (the validation audio cannot
    tell apart the cutoffs that let the same few events through, and new audio fires more at the
    lower ones). None unless it hears positives and fires less than the config's point (FA/h
    `default_fah`, the ESP32's rule)."""
    if not points or default_fah is None:
        return None

    def fah(curve: RecallFahCurve, i: int) -> float:
        other = ha.get(curve.window)
        return max(float(curve.fah[i]), float(other.fah[i]) if other is not None else 0.0)

    def agree(curve: RecallFahCurve, i: int) -> bool:
        other = ha.get(curve.window)
        if other is None or int(other.ambient_events[i]) != int(curve.ambient_events[i]):
            return False
        return abs(float(other.recall[i]) - float(curve.recall[i])) <= FALLBACK_RECALL_GAP

    limit = max(target, min(fah(c, i) for c, i in points))
    within = [(c, i) for c, i in points if fah(c, i) <= limit]
    held = [
        (c, i)
        for c, i in within
        if i >= margin_steps and all(fah(c, j) <= limit for j in range(i - margin_steps, i))
    ]
    if limit <= target:
        key = lambda ci: (agree(*ci), ci[0].recall[ci[1]], ci[0].cutoffs_u8[ci[1]], -ci[0].window)  # noqa: E731
    else:
        key = lambda ci: (agree(*ci), ci[0].cutoffs_u8[ci[1]], ci[0].recall[ci[1]], -ci[0].window)  # noqa: E731
    curve, i = max(held or within, key=key)
    if float(curve.recall[i]) == 0.0 or not fah(curve, i) < default_fah:
        return None
    return _point(curve, i, fah(curve, i) <= target)


def _fah_at(curves: Sequence[RecallFahCurve], point: tuple[float, int] | None) -> float | None:
    """FA/h of the sweep at (cutoff, window), or None when the sweep does not hold that point."""
    if point is None:
        return None
    cutoff, window = point
    curve = _by_window(curves).get(window)
    if curve is None:
        return None
    match = np.flatnonzero(np.isclose(curve.cutoffs, cutoff, rtol=0, atol=1e-6))
    return float(curve.fah[match[0]]) if match.size else None


def unsupported_reasons(
    point: OperatingPoint,
    hours: float,
    n_positives: int,
    target_fah: float,
    any_safe: bool = True,
    *,
    min_hours: float = MIN_HOURS,
    min_positives: int = MIN_POSITIVES,
    min_window: int = MIN_WINDOW,
    silence_u8: int = 0,
) -> list[str]:
    """Why the validation data (`hours` of audio for FA/h, `n_positives` clips) cannot vouch for
    shipping `point` (empty: it can); `silence_u8` is the model's output on digital silence."""
    cutoff, window = point.cutoff, point.window
    reasons = []
    if point.cutoff_u8 < silence_u8:
        reasons.append(
            f"the model's output on digital silence ({silence_u8}/255) is above cutoff "
            f"{format_cutoff(cutoff)} ({point.cutoff_u8}/255): it would fire on a muted microphone"
        )
    if hours < min_hours:
        per_event = 1 / hours if hours > 0 else float("inf")
        reasons.append(
            f"the cutoff was chosen on {hours:.2f} h of audio without the wake word; at least "
            f"{min_hours:g} h are needed before a false activation rate can be trusted (one event in "
            f"{hours:.2f} h is already {per_event:.1f} FA/h)"
        )
    if n_positives < min_positives:
        reasons.append(
            f"the cutoff was chosen on {n_positives} positive clips; at least {min_positives} are needed"
        )
    if cutoff > MAX_SHIPPED_CUTOFF:
        reasons.append(
            f"cutoffs above {MAX_SHIPPED_CUTOFF} are never shipped (Home Assistant cannot fire there)"
        )
    if window < min_window:
        reasons.append(
            f"a window of {window} output(s) is one noisy moment; at least {min_window} are shipped"
        )
    if not any_safe:
        reasons.append(
            "no cutoff gave the same events under the ESP32's and Home Assistant's rules with the FA/h "
            "target holding below it"
        )
    if not point.meets_target:
        reasons.append(
            f"no safe cutoff met the target of {target_fah:g} FA/h (the best, {format_cutoff(cutoff)} with "
            f"window {window}, gave {point.fah:.2f} FA/h)"
        )
    if point.recall == 0.0:
        reasons.append(f"no positive clip is detected at cutoff {format_cutoff(cutoff)}")
    return reasons
