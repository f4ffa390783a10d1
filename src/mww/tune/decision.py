"""mww-autotune's decisions: targets, operating points, "better", the Pareto front and the next step.

Pure functions and frozen records, no TensorFlow: `mww.tune.autotune` measures, trains and writes; this
module says what a measurement means and what to do next. After every evaluation `decide` picks:

* both targets met: stop;
* the last burst made the model better: train on with the same class weights (and mine fresh hard
  negatives while FA/h is above target); a class weight changes only when progress stalls;
* FA/h above target: mine fresh hard negatives from the training negatives (`mww.train.mining`) and raise
  the hard-negative class weight, or raise the positive weight instead when recall has fallen
  beyond `recall_tolerance` below the start;
* recall below target (FA/h within it): raise the positive class weight; the cutoff search then
  lowers the cutoff as far as the FA/h target allows;
* stop after `patience` evaluations without a better result, or after `max_iterations` bursts.

"Better" ranks as checkpoint selection does: within the FA/h target, more recall; above it, less
FA/h. A result replaces the best only when it is not worse than the starting checkpoint nor the best
so far beyond the tolerances (or meets both targets); a result worse than those has drifted (a
raised weight that made the model fire everywhere, say), and the next burst starts again from the
best weights (and optimizer state) with the class weights that led to them, changed by the decision,
at `drift_learning_rate_factor` times the learning rate of the burst that drifted.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mww.config.schema import AutoTuningConfig, MwwConfig
from mww.errors import MwwError
from mww.train.metrics import CUTOFF_GRID_TEXT, DEFAULT_CUTOFFS

ACTIONS = ("stop", "raise_hard_negative", "raise_positive", "mine", "train")


class AutoTuneError(MwwError):
    """Tuning cannot start or go on; the message (one paragraph) says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


# --------------------------------------------------------------------------- targets and points


@dataclass(frozen=True)
class TuneTarget:
    """What the tuner aims for on the validation split: FA/h at most `fah`, recall at least `recall`."""

    fah: float = 0.3
    recall: float = 0.92

    def check(self) -> None:
        """AutoTuneError when a target is out of range."""
        fah, recall = self.fah, self.recall
        if isinstance(fah, bool) or not isinstance(fah, int | float) or not math.isfinite(fah) or fah < 0:
            raise AutoTuneError(
                f"--target-fah {fah!r} is out of range: it is the most false activations per hour the tuned "
                "model may have, a number of at least 0 (0.3 suits a home assistant; 0 asks for none at "
                "all). Pass for example --target-fah 0.5."
            )
        if (
            isinstance(recall, bool)
            or not isinstance(recall, int | float)
            or not math.isfinite(recall)
            or not 0 < recall <= 1
        ):
            raise AutoTuneError(
                f"--target-recall {recall!r} is out of range: it is the share of wake words the tuned model "
                "must detect, a number above 0 and at most 1 (0.92 = 92 %). Pass for example "
                "--target-recall 0.9."
            )


def check_limits(max_iterations: int, patience: int) -> None:
    """AutoTuneError when the iteration limit or the patience is not a whole number of at least 1."""
    for flag, value in (("--max-iterations", max_iterations), ("--patience", patience)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AutoTuneError(
                f"{flag} {value!r} is out of range: it counts fine-tuning iterations and must be a whole "
                f"number of at least 1. Pass for example {flag} 10."
            )


@dataclass(frozen=True)
class Point:
    """One model at one detector setting, measured on the validation split."""

    fah: float
    recall: float
    cutoff: float
    window: int
    iteration: int = 0
    # The most FA/h at the cutoffs down to cutoff - cutoff_margin (None: fah). Derived from the same
    # sweep as fah, so it does not take part in comparing two points.
    margin_fah: float | None = field(default=None, compare=False)

    @property
    def guarded_fah(self) -> float:
        """FA/h with the cutoff margin: the most at this cutoff or up to `cutoff_margin` below it."""
        return self.fah if self.margin_fah is None else max(self.fah, self.margin_fah)

    def meets_fah(self, target: TuneTarget) -> bool:
        """FA/h at or below the target, also `cutoff_margin` below the cutoff."""
        return self.guarded_fah <= target.fah

    def meets(self, target: TuneTarget) -> bool:
        """Both targets met (FA/h with the cutoff margin)."""
        return self.meets_fah(target) and self.recall >= target.recall

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view with the manifest's key names."""
        return {
            "iteration": self.iteration,
            "fah": self.fah,
            "fah_within_margin": self.guarded_fah,
            "recall": self.recall,
            "probability_cutoff": self.cutoff,
            "sliding_window_size": self.window,
        }


def score(point: Point, target: TuneTarget) -> tuple[Any, ...]:
    """How good a point is (higher is better): within the FA/h target more recall, above it less FA/h."""
    if point.meets_fah(target):
        return (1, point.recall >= target.recall, point.recall, -point.guarded_fah)
    return (0, False, -point.guarded_fah, point.recall)


def rank(point: Point, target: TuneTarget) -> tuple[Any, ...]:
    """How the settings of one model are ordered (higher is better).

    Settings that meet both targets: the safest one, with the fewest false activations, then the
    highest cutoff and the longest window (margin for audio the validation split does not hold),
    then the most recall. Otherwise `score`, ties broken towards the higher cutoff, smaller window.
    """
    head = score(point, target)
    if point.meets(target):
        return (*head[:2], -point.guarded_fah, point.cutoff, point.window, point.recall)
    return (*head, point.cutoff, -point.window)


def acceptable(point: Point, start: Point, tuning: AutoTuningConfig, target: TuneTarget) -> bool:
    """Not worse than the start beyond the tolerances in either figure (or both targets met)."""
    if point.meets(target):
        return True
    return (
        point.guarded_fah <= start.guarded_fah + tuning.fah_tolerance
        and point.recall >= start.recall - tuning.recall_tolerance
    )


def dominates(a: Point, b: Point) -> bool:
    """`a` is at least as good as `b` in FA/h and recall, and better in one."""
    return a.fah <= b.fah and a.recall >= b.recall and (a.fah < b.fah or a.recall > b.recall)


def pareto_front(points: Iterable[Point]) -> tuple[Point, ...]:
    """The points no other point dominates (one per distinct (FA/h, recall), the earliest), by FA/h."""
    unique: dict[tuple[float, float], Point] = {}
    for p in points:
        unique.setdefault((p.fah, p.recall), p)
    kept = [p for p in unique.values() if not any(dominates(q, p) for q in unique.values())]
    return tuple(sorted(kept, key=lambda p: (p.fah, -p.recall)))


def check_search_ranges(tuning: AutoTuningConfig) -> None:
    """AutoTuneError when the cutoff range holds no cutoff of the evaluation's grid."""
    if not any(tuning.cutoff_min - 1e-9 <= c <= tuning.cutoff_max + 1e-9 for c in DEFAULT_CUTOFFS.tolist()):
        raise AutoTuneError(
            f"auto_tuning.cutoff_min {tuning.cutoff_min} and cutoff_max {tuning.cutoff_max} hold no cutoff "
            f"the evaluation measures ({CUTOFF_GRID_TEXT}). Widen the range to hold at least one of them, "
            "for example cutoff_min 0.05 and cutoff_max 0.995."
        )


def operating_points(sweep: Mapping[str, Any], tuning: AutoTuningConfig, iteration: int = 0) -> list[Point]:
    """Every (cutoff, window) of an evaluation sweep (`measure(...)["sweep"]`) inside the search ranges.

    Each point also carries the most FA/h measured at the cutoffs from `cutoff - cutoff_margin` up to
    its own (the sweep's cutoffs ascend): the FA/h target must hold there too, so the chosen cutoff
    keeps that much headroom above the validation audio's loudest false activations.
    """
    cutoffs = [float(c) for c in sweep["cutoffs"]]
    # Per cutoff, the index of the lowest cutoff within the margin below it (the same for every window).
    lows = [bisect_left(cutoffs, cutoff - tuning.cutoff_margin - 1e-9) for cutoff in cutoffs]
    points = []
    for name, curve in sweep["windows"].items():
        window = int(name)
        if not tuning.window_min <= window <= tuning.window_max:
            continue
        for i, cutoff in enumerate(cutoffs):
            if tuning.cutoff_min - 1e-9 <= cutoff <= tuning.cutoff_max + 1e-9:
                margin_fah = max(float(f) for f in curve["fah"][lows[i] : i + 1])
                fah, recall = float(curve["fah"][i]), float(curve["recall"][i])
                points.append(Point(fah, recall, cutoff, window, iteration, margin_fah))
    if not points:
        raise AutoTuneError(
            "The cutoff and window search ranges of auto_tuning (cutoff "
            f"{tuning.cutoff_min}..{tuning.cutoff_max}, window {tuning.window_min}..{tuning.window_max}) "
            f"contain no setting the evaluation measures (cutoffs {CUTOFF_GRID_TEXT}, windows "
            f"{', '.join(sweep['windows'])}). Widen auto_tuning.cutoff_min / cutoff_max to hold at least "
            "one of those cutoffs."
        )
    return points


def choose_point(
    sweep: Mapping[str, Any],
    tuning: AutoTuningConfig,
    target: TuneTarget,
    references: Sequence[Point] = (),
    iteration: int = 0,
) -> Point:
    """The operating point of one evaluation: the best-ranked setting not worse than the references.

    The references are the start and the best so far; a setting must be acceptable to each. Without
    references (the first evaluation), or when no setting is acceptable, the best-ranked of all.
    """
    points = operating_points(sweep, tuning, iteration)
    allowed = [p for p in points if all(acceptable(p, r, tuning, target) for r in references)]
    return max(allowed or points, key=lambda p: rank(p, target))


def resolution_note(split: str, fah_hours: float, target_fah: float) -> str | None:
    """A warning when one false activation in a split's audio is already more than the FA/h target."""
    if fah_hours <= 0 or 1.0 / fah_hours <= target_fah:
        return None
    return (
        f"the {split} split holds {fah_hours * 60:.1f} min of audio for false activations, so one false "
        f"activation is {1.0 / fah_hours:.1f} FA/h and the target of {target_fah:g} FA/h means none at all; "
        "longer ambient recordings (paths.ambient_dir) measure FA/h more finely"
    )


# --------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class TuneState:
    """Everything the decision depends on, between two evaluations."""

    positive_weight: float
    hard_negative_weight: float
    iteration: int = 0  # fine-tuning bursts done before the current evaluation
    start: Point | None = None
    best: Point | None = None
    front: tuple[Point, ...] = ()
    stale: int = 0  # evaluations since the best last improved
    learning_rate_scale: float = 1.0  # the next burst runs at burst_learning_rate times this
    best_class_weights: tuple[float, float] | None = None  # (positive, hard negative) that led to the best


@dataclass(frozen=True)
class Decision:
    """What to do after one evaluation; `state` holds the weights for the next burst."""

    state: TuneState
    action: str  # one of ACTIONS
    detail: str  # the human-readable action, as printed
    improved: bool  # this evaluation is the new best
    mine: bool  # mine fresh hard negatives before the next burst
    revert: bool = False  # the next burst starts again from the best weights

    @property
    def stop(self) -> bool:
        """Tuning ends here."""
        return self.action == "stop"


def initial_state(config: MwwConfig) -> TuneState:
    """Class weights of the last training phase; nothing measured yet."""
    t = config.training
    return TuneState(t.positive_class_weight[-1], t.hard_negative_class_weight[-1])


def _raised(weight: float, step: float, cap: float) -> float:
    return weight if weight >= cap else min(weight * step, cap)


@dataclass(frozen=True)
class _Step:
    """The next action, as printed, and the class weights it changes."""

    action: str  # one of ACTIONS
    detail: str
    mine: bool = False
    weights: Mapping[str, float] = field(default_factory=dict)  # TuneState fields to set


def _state_after(
    state: TuneState, point: Point, start: Point, improved: bool, revert: bool, tuning: AutoTuningConfig
) -> TuneState:
    """The state once `point` is measured: the best, the front and the staleness updated; after a
    drift, the class weights that led to the best and a lower learning rate."""
    best = point if improved else state.best
    assert best is not None
    pw, hw = state.positive_weight, state.hard_negative_weight
    scale = state.learning_rate_scale
    if revert:
        pw, hw = state.best_class_weights or (pw, hw)
        scale *= tuning.drift_learning_rate_factor
    return replace(
        state,
        iteration=state.iteration + 1,
        start=start,
        best=best,
        front=pareto_front((*state.front, point)),
        stale=0 if improved else state.stale + 1,
        positive_weight=pw,
        hard_negative_weight=hw,
        learning_rate_scale=scale,
        best_class_weights=(state.positive_weight, state.hard_negative_weight)
        if improved
        else state.best_class_weights,
    )


def _stop_reason(
    best: Point, iteration: int, stale: int, target: TuneTarget, max_iterations: int, patience: int
) -> str | None:
    """Why tuning ends after this evaluation; None when it goes on."""
    if best.meets(target):
        return "stop: both targets met on the validation split"
    if iteration >= max_iterations:
        return f"stop: reached --max-iterations {max_iterations}"
    if stale >= patience:
        return f"stop: no better result in {patience} iteration(s) (--patience)"
    return None


def _next_step(
    point: Point, start: Point, after: TuneState, helped: bool, tuning: AutoTuningConfig, target: TuneTarget
) -> _Step:
    """The next burst: the same again when the last one `helped`, else the class weight to raise."""
    pw, hw = after.positive_weight, after.hard_negative_weight
    mine = tuning.mining_max_samples > 0
    mining = "mine hard negatives, " if mine else ""
    if helped:
        if not point.meets_fah(target):
            detail = f"better, FA/h above target: {mining}same class weights, train on"
            return _Step("mine" if mine else "train", detail, mine)
        return _Step("train", "better, recall below target: same class weights, train on")
    if not point.meets_fah(target):
        recall_fell = point.recall < start.recall - tuning.recall_tolerance
        if recall_fell and pw < tuning.max_positive_weight:
            new = _raised(pw, tuning.positive_weight_step, tuning.max_positive_weight)
            detail = f"FA/h above target but recall fell: {mining}positive weight {pw:.4g} -> {new:.4g}"
            return _Step("raise_positive", detail, mine, {"positive_weight": new})
        if hw < tuning.max_hard_negative_weight:
            new = _raised(hw, tuning.hard_negative_weight_step, tuning.max_hard_negative_weight)
            detail = f"FA/h above target: {mining}hard-negative weight {hw:.4g} -> {new:.4g}"
            return _Step("raise_hard_negative", detail, mine, {"hard_negative_weight": new})
        detail = f"FA/h above target: {mining}hard-negative weight at its cap {hw:.4g}"
        return _Step("mine" if mine else "train", detail, mine)
    if pw < tuning.max_positive_weight:
        new = _raised(pw, tuning.positive_weight_step, tuning.max_positive_weight)
        detail = f"recall below target: positive weight {pw:.4g} -> {new:.4g} (cutoff search goes lower)"
        return _Step("raise_positive", detail, weights={"positive_weight": new})
    return _Step("train", f"recall below target: positive weight at its cap {pw:.4g}, train on")


def _decision(after: TuneState, step: _Step, improved: bool, revert: bool) -> Decision:
    """The Decision for `step`; a burst after a drift says that it starts again from the best weights."""
    going_back = revert and step.action != "stop"
    detail = step.detail
    if going_back:
        detail += (
            f"; back to the best weights (class weights positive {after.positive_weight:.4g}, "
            f"hard negative {after.hard_negative_weight:.4g}), learning rate x{after.learning_rate_scale:.4g}"
        )
    return Decision(replace(after, **step.weights), step.action, detail, improved, step.mine, going_back)


def decide(
    state: TuneState,
    point: Point,
    tuning: AutoTuningConfig,
    target: TuneTarget,
    *,
    max_iterations: int,
    patience: int,
) -> Decision:
    """Pure: the state after measuring `point` at `state.iteration`, and the next action.

    A point is the new best when it is not worse than the start nor the best beyond the tolerances
    and scores higher than the best. After a burst that made the model better, the next burst keeps
    its class weights (mining on while FA/h is above target): a weight changes only when progress
    stalls. A point worse than those beyond the tolerances has drifted: the next burst starts again
    from the best weights and the class weights that led to them (then changed as below), at
    `drift_learning_rate_factor` times the learning rate.
    """
    start = state.start or point
    references = (start,) if state.best is None else (start, state.best)
    fits = all(acceptable(point, r, tuning, target) for r in references)
    improved = state.best is None or (fits and score(point, target) > score(state.best, target))
    revert = not improved and not fits
    after = _state_after(state, point, start, improved, revert, tuning)
    best = after.best
    assert best is not None
    stop = _stop_reason(best, state.iteration, after.stale, target, max_iterations, patience)
    if stop is not None:
        return _decision(after, _Step("stop", stop), improved, revert)
    helped = improved and state.best is not None
    return _decision(after, _next_step(point, start, after, helped, tuning, target), improved, revert)
