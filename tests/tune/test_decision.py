"""mww-autotune's decisions (`mww.tune.decision`): targets, operating points, the Pareto front, and
what to do after each evaluation. Pure functions: no training, no TensorFlow."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from mww.config.schema import AutoTuningConfig
from mww.train.metrics import DEFAULT_CUTOFFS, OPERATING_POINT_WINDOWS
from mww.tune.decision import (
    ACTIONS,
    AutoTuneError,
    Point,
    TuneState,
    TuneTarget,
    acceptable,
    check_limits,
    check_search_ranges,
    choose_point,
    decide,
    operating_points,
    pareto_front,
)
from tests.conftest import covers

TARGET = TuneTarget(fah=0.3, recall=0.92)


def tuning(**changes) -> AutoTuningConfig:
    """The defaults with `changes`; without a cutoff margin unless one is given (its own test below):
    the hand-made sweeps list a few settings and leave every other cutoff at 100 FA/h."""
    return dataclasses.replace(AutoTuningConfig(), **{"cutoff_margin": 0.0, **changes})


def state(pw=1.0, hw=40.0, **kw) -> TuneState:
    return TuneState(pw, hw, **kw)


def run_decide(st, point, tun=None, target=TARGET, max_iterations=100, patience=10):
    return decide(st, point, tun or tuning(), target, max_iterations=max_iterations, patience=patience)


def sweep_of(table: dict[int, list[tuple[float, float, float]]]) -> dict:
    """A sweep like measure(...)["sweep"]: {window: [(cutoff, recall, fah), ...]} on the evaluation's grid."""
    cutoffs = DEFAULT_CUTOFFS.tolist()
    windows = {}
    for window in OPERATING_POINT_WINDOWS:
        recall, fah = [0.0] * len(cutoffs), [100.0] * len(cutoffs)
        for cutoff, r, f in table.get(window, []):
            i = cutoffs.index(cutoff)
            recall[i], fah[i] = r, f
        windows[str(window)] = {"recall": recall, "fah": fah}
    return {"cutoffs": cutoffs, "windows": windows}


def test_targets_and_limits_are_checked():
    TuneTarget(0.0, 1.0).check()
    for bad in (TuneTarget(-0.1, 0.9), TuneTarget(float("nan"), 0.9), TuneTarget(float("inf"), 0.9)):
        with pytest.raises(AutoTuneError, match="--target-fah"):
            bad.check()
    for bad in (TuneTarget(0.3, 0.0), TuneTarget(0.3, 1.01), TuneTarget(0.3, float("nan"))):
        with pytest.raises(AutoTuneError, match="--target-recall"):
            bad.check()
    check_limits(1, 1)
    with pytest.raises(AutoTuneError, match="--max-iterations 0"):
        check_limits(0, 3)
    with pytest.raises(AutoTuneError, match="--patience -1"):
        check_limits(3, -1)


def test_decision_stops_at_targets_max_iterations_and_patience():
    met = run_decide(state(), Point(0.1, 0.95, 0.9, 5))
    assert met.stop and met.improved and "targets met" in met.detail and met.state.best.recall == 0.95
    last = run_decide(state(iteration=7), Point(5.0, 0.5, 0.9, 5), max_iterations=7)
    assert last.stop and "--max-iterations 7" in last.detail
    start = Point(5.0, 0.5, 0.9, 5)
    st = state(start=start, best=start, front=(start,), stale=2, iteration=3)
    tired = run_decide(st, Point(6.0, 0.4, 0.9, 5, 3), patience=3)
    assert tired.stop and not tired.improved and "--patience" in tired.detail
    fresh = run_decide(st, Point(4.0, 0.5, 0.9, 5, 3), patience=3)
    assert not fresh.stop and fresh.improved and fresh.state.stale == 0 and fresh.state.iteration == 4
    assert all(d.action in ACTIONS for d in (met, last, tired, fresh))


def test_decision_mines_and_raises_weights_by_what_is_missed():
    too_loud = run_decide(state(), Point(2.0, 0.95, 0.9, 5))
    assert too_loud.action == "raise_hard_negative" and too_loud.mine
    assert too_loud.state.hard_negative_weight == 60.0 and too_loud.state.positive_weight == 1.0
    too_deaf = run_decide(state(), Point(0.0, 0.5, 0.9, 5))
    assert too_deaf.action == "raise_positive" and not too_deaf.mine
    assert too_deaf.state.positive_weight == 1.25 and too_deaf.state.hard_negative_weight == 40.0
    # FA/h above target while recall has fallen below the start: recall gets the weight, still mining
    start = Point(2.0, 0.8, 0.9, 5)
    st = state(start=start, best=start, front=(start,), iteration=1)
    fell = run_decide(st, Point(1.0, 0.6, 0.99, 5, 1))
    assert fell.action == "raise_positive" and fell.mine and fell.state.positive_weight == 1.25


def test_a_result_that_drifted_beyond_the_tolerances_goes_back_to_the_best():
    start, best = Point(5.0, 0.5, 0.9, 5, 0), Point(2.0, 0.6, 0.9, 5, 2)
    st = state(start=start, best=best, front=(best, start), iteration=3)
    drifted = run_decide(st, Point(40.0, 0.7, 0.95, 5, 3))  # FA/h far above the best's
    assert drifted.revert and not drifted.improved and "back to the best weights" in drifted.detail
    assert drifted.action == "raise_hard_negative" and drifted.mine
    near = run_decide(st, Point(2.05, 0.58, 0.9, 5, 3))  # within the tolerances of both, not better
    assert not near.revert and not near.improved
    # Within the start's tolerances but not the best's: worse than what is kept, so back to it.
    assert run_decide(st, Point(4.0, 0.5, 0.9, 5, 3)).revert
    assert not run_decide(st, Point(1.0, 0.6, 0.9, 5, 3)).revert  # better: the new best
    stop = run_decide(replace(st, stale=9), Point(40.0, 0.7, 0.95, 5, 3))
    assert stop.stop and not stop.revert


def test_a_burst_that_helped_is_repeated_with_the_same_class_weights():
    start = Point(0.0, 0.2, 0.9, 5, 0)
    st = state(pw=2.0, hw=60.0, start=start, best=start, front=(start,), iteration=1)
    better = run_decide(st, Point(0.0, 0.4, 0.8, 5, 1))  # recall still below target
    assert better.improved and better.action == "train" and not better.mine and "train on" in better.detail
    assert (better.state.positive_weight, better.state.hard_negative_weight) == (2.0, 60.0)
    assert better.state.best_class_weights == (2.0, 60.0)
    loud = Point(9.0, 0.8, 0.9, 5, 0)
    st = state(pw=2.0, hw=60.0, start=loud, best=loud, front=(loud,), iteration=1)
    quieter = run_decide(st, Point(3.0, 0.8, 0.9, 5, 1))  # FA/h still above target: mine on
    assert quieter.improved and quieter.action == "mine" and quieter.mine
    assert quieter.state.hard_negative_weight == 60.0
    # Not better (but within the tolerances): progress stalled, so a weight changes.
    stalled = run_decide(st, Point(9.0, 0.8, 0.9, 5, 1))
    assert not stalled.improved and stalled.action == "raise_hard_negative"
    assert stalled.state.hard_negative_weight == 90.0


@covers("drift_learning_rate_factor")
def test_a_drift_goes_back_to_the_class_weights_of_the_best_at_a_lower_learning_rate():
    start = Point(0.0, 0.2, 0.9, 5, 0)
    best = Point(0.0, 0.4, 0.9, 5, 1)
    st = state(
        pw=8.0, hw=40.0, start=start, best=best, front=(best,), iteration=2, best_class_weights=(2.0, 40.0)
    )
    fires = Point(300.0, 0.6, 0.99, 9, 2)  # the raised positive weight made it fire everywhere
    for factor in (0.5, 0.25):
        drifted = run_decide(st, fires, tuning(drift_learning_rate_factor=factor))
        assert drifted.revert and drifted.action == "raise_hard_negative" and drifted.mine
        assert drifted.state.positive_weight == 2.0 and drifted.state.hard_negative_weight == 60.0
        assert drifted.state.learning_rate_scale == factor and f"learning rate x{factor:g}" in drifted.detail
        again = run_decide(
            replace(drifted.state, stale=0),
            Point(200.0, 0.6, 0.99, 9, 3),
            tuning(drift_learning_rate_factor=factor),
        )
        assert again.revert and again.state.learning_rate_scale == factor * factor
        # the next better result keeps the lowered rate
        kept = run_decide(
            drifted.state, Point(0.0, 0.5, 0.9, 5, 3), tuning(drift_learning_rate_factor=factor)
        )
        assert kept.improved and kept.state.learning_rate_scale == factor
    assert run_decide(st, fires, tuning(drift_learning_rate_factor=1.0)).state.learning_rate_scale == 1.0


def test_impossible_targets_end_with_the_best_trade_off():
    """recall 1.0 at 0 FA/h that no point reaches: the loop ends by patience, the best is kept."""
    target = TuneTarget(0.0, 1.0)
    points = [Point(3.0, 0.9, 0.9, 5, 0), Point(1.0, 0.85, 0.95, 5, 1)] + [
        Point(2.0 + i, 0.5, 0.9, 5, i + 2) for i in range(200)
    ]
    st = state()
    for n, point in enumerate(points):  # noqa: B007 - n is checked after the loop
        decision = run_decide(st, point, tuning(recall_tolerance=0.1), target, max_iterations=50, patience=4)
        st = decision.state
        if decision.stop:
            break
    assert decision.stop and "--patience" in decision.detail and n == 5
    assert st.best == points[1] and not st.best.meets(target)
    assert pareto_front(points[: n + 1]) == st.front == (points[1], points[0])


def test_pareto_front_and_acceptance():
    a, b, c, d = (
        Point(0.0, 0.5, 0.9, 5),
        Point(1.0, 0.8, 0.8, 5),
        Point(1.0, 0.7, 0.8, 3),
        Point(0.0, 0.5, 0.7, 4),
    )
    assert pareto_front([a, b, c, d]) == (a, b)
    start = Point(1.0, 0.8, 0.9, 5)
    assert acceptable(Point(0.5, 0.79, 0.9, 5), start, tuning(recall_tolerance=0.02), TARGET)
    assert not acceptable(Point(0.5, 0.7, 0.9, 5), start, tuning(recall_tolerance=0.02), TARGET)
    assert acceptable(Point(0.1, 0.95, 0.9, 5), Point(0.0, 0.99, 0.9, 5), tuning(), TARGET)  # meets both


def test_choose_point_searches_cutoff_and_window_jointly():
    sweep = sweep_of({5: [(0.9, 0.8, 0.0), (0.6, 0.95, 2.0)], 3: [(0.7, 0.85, 0.2)], 8: [(0.99, 0.5, 0.0)]})
    assert choose_point(sweep, tuning(), TARGET) == Point(0.2, 0.85, 0.7, 3)
    # A start to stay close to: only settings not worse than it beyond the tolerances count.
    start = Point(2.0, 0.95, 0.6, 5)
    assert choose_point(sweep, tuning(), TARGET, (start,), 4) == Point(2.0, 0.95, 0.6, 5, 4)
    with pytest.raises(AutoTuneError, match="cutoff_min / cutoff_max"):
        operating_points(sweep, tuning(cutoff_min=0.555, cutoff_max=0.556))
    with pytest.raises(AutoTuneError, match="hold no cutoff the evaluation measures"):
        check_search_ranges(tuning(cutoff_min=0.555, cutoff_max=0.556))
    check_search_ranges(tuning(cutoff_min=0.55, cutoff_max=0.55))


# --------------------------------------------------------------------------- every auto_tuning key


@covers("positive_weight_step", "max_positive_weight")
def test_positive_weight_step_and_cap():
    deaf = Point(0.0, 0.5, 0.9, 5)
    assert run_decide(state(pw=1.0), deaf, tuning(positive_weight_step=2.0)).state.positive_weight == 2.0
    assert run_decide(state(pw=1.0), deaf, tuning(positive_weight_step=1.5)).state.positive_weight == 1.5
    assert run_decide(state(pw=6.0), deaf, tuning(positive_weight_step=2.0)).state.positive_weight == 8.0
    capped = tuning(positive_weight_step=2.0, max_positive_weight=20.0)
    assert run_decide(state(pw=6.0), deaf, capped).state.positive_weight == 12.0
    at_cap = run_decide(state(pw=8.0), deaf, tuning(max_positive_weight=8.0))
    assert at_cap.action == "train" and at_cap.state.positive_weight == 8.0


@covers("hard_negative_weight_step", "max_hard_negative_weight", "mining_max_samples")
def test_hard_negative_weight_step_cap_and_mining_switch():
    loud = Point(5.0, 0.9, 0.9, 5)
    for step in (2.0, 1.1):
        raised = run_decide(state(hw=40.0), loud, tuning(hard_negative_weight_step=step))
        assert raised.action == "raise_hard_negative" and raised.state.hard_negative_weight == pytest.approx(
            40 * step
        )
    capped = run_decide(state(hw=150.0), loud, tuning(max_hard_negative_weight=160.0))
    assert capped.state.hard_negative_weight == 160.0
    at_cap = run_decide(state(hw=160.0), loud, tuning(max_hard_negative_weight=160.0))
    assert at_cap.action == "mine" and at_cap.mine and at_cap.state.hard_negative_weight == 160.0
    no_mining = run_decide(
        state(hw=160.0), loud, tuning(max_hard_negative_weight=160.0, mining_max_samples=0)
    )
    assert no_mining.action == "train" and not no_mining.mine


@covers("recall_tolerance", "fah_tolerance")
def test_tolerances_decide_what_counts_as_not_worse():
    start = Point(10.0, 0.5, 0.9, 5)
    st = state(start=start, best=start, front=(start,), iteration=1)
    lower_fah_less_recall = Point(5.0, 0.47, 0.9, 5, 1)
    assert run_decide(st, lower_fah_less_recall, tuning(recall_tolerance=0.05)).improved
    assert not run_decide(st, lower_fah_less_recall, tuning(recall_tolerance=0.02)).improved
    quiet = Point(0.0, 0.5, 0.9, 5)
    st = state(start=quiet, best=quiet, front=(quiet,), iteration=1)
    more_recall_more_fah = Point(0.2, 0.7, 0.8, 5, 1)  # still within the 0.3 FA/h target
    assert run_decide(st, more_recall_more_fah, tuning(fah_tolerance=0.25)).improved
    assert not run_decide(st, more_recall_more_fah, tuning(fah_tolerance=0.1)).improved


@covers("cutoff_min", "cutoff_max", "window_min", "window_max")
def test_search_ranges_bound_the_chosen_setting():
    sweep = sweep_of({2: [(0.4, 0.9, 0.0), (0.96, 0.6, 0.0)], 6: [(0.55, 0.8, 0.0), (0.99, 0.7, 0.0)]})
    assert choose_point(sweep, tuning(cutoff_min=0.3, window_min=1), TARGET) == Point(0.0, 0.9, 0.4, 2)
    assert choose_point(sweep, tuning(cutoff_min=0.5, window_min=1), TARGET) == Point(0.0, 0.8, 0.55, 6)
    assert choose_point(sweep, tuning(cutoff_min=0.6, window_min=1), TARGET) == Point(0.0, 0.7, 0.99, 6)
    assert choose_point(sweep, tuning(cutoff_max=0.98, cutoff_min=0.6, window_min=1), TARGET) == Point(
        0.0, 0.6, 0.96, 2
    )
    assert choose_point(sweep, tuning(cutoff_min=0.3, window_min=3), TARGET) == Point(0.0, 0.8, 0.55, 6)
    assert choose_point(sweep, tuning(cutoff_min=0.5, window_min=1, window_max=5), TARGET) == Point(
        0.0, 0.6, 0.96, 2
    )
    points = operating_points(sweep, tuning(cutoff_min=0.9, cutoff_max=0.95, window_min=4, window_max=6))
    assert {p.window for p in points} == {4, 5, 6} and {p.cutoff for p in points} == {
        0.9,
        0.91,
        0.92,
        0.93,
        0.94,
        0.95,
    }


def test_the_default_range_measures_an_under_trained_start_where_it_detects_something():
    """An under-trained model scores its wake words low: at cutoffs from 0.5 up it detects nothing,
    so the start would be measured at recall 0 and lowering the cutoff could never buy recall."""
    low = [(round(0.05 + 0.01 * i, 2), 0.5, 7.2) for i in range(5)]  # 0.05..0.09: one false activation
    rest = [(round(0.10 + 0.01 * i, 2), 0.4 if i <= 10 else 0.0, 0.0) for i in range(90)]  # 0.10..0.99
    sweep = sweep_of({3: low + rest})
    default = AutoTuningConfig()
    assert default.cutoff_min <= 0.1 and default.window_min == 3
    assert choose_point(sweep, default, TARGET) == Point(0.0, 0.4, 0.2, 3)  # 0.15..0.20 within the margin
    assert choose_point(sweep, tuning(cutoff_min=0.5), TARGET).recall == 0.0


def test_window_range_matches_the_evaluation_sweep():
    field = {f.name: f for f in dataclasses.fields(AutoTuningConfig)}
    assert field["window_max"].metadata["max"] == max(OPERATING_POINT_WINDOWS)
    assert field["window_min"].metadata["min"] == min(OPERATING_POINT_WINDOWS)


@covers("cutoff_margin")
def test_cutoff_margin_keeps_headroom_below_the_chosen_cutoff():
    """A cutoff just above the loudest validation false activation is not chosen: the FA/h target must
    also hold `cutoff_margin` below it, or the point counts as above the FA/h target (and mines)."""
    # Window 3: no false activation from 0.50 up, 7.2 FA/h at 0.44..0.49 (every other window 100 FA/h).
    rows = [(round(0.44 + 0.01 * i, 2), 0.9 - 0.01 * i, 7.2 if i < 6 else 0.0) for i in range(56)]
    sweep = sweep_of({3: rows})
    for margin, cutoff in ((0.0, 0.5), (0.05, 0.55), (0.1, 0.6)):
        chosen = choose_point(sweep, tuning(cutoff_margin=margin, cutoff_min=0.45), TARGET)
        assert (chosen.cutoff, chosen.window, chosen.fah, chosen.guarded_fah) == (cutoff, 3, 0.0, 0.0)
        assert chosen.recall == pytest.approx(0.9 - (cutoff - 0.44)) and chosen.meets_fah(TARGET)
        assert chosen.as_dict()["fah_within_margin"] == 0.0
    # The edge of window 3 measured with a margin: 0 FA/h at its cutoff, 7.2 within the margin.
    at_edge = next(
        p
        for p in operating_points(sweep, tuning(cutoff_margin=0.05, cutoff_min=0.45))
        if (p.cutoff, p.window) == (0.5, 3)
    )
    assert at_edge.fah == 0.0 and at_edge.guarded_fah == 7.2
    easy = TuneTarget(0.3, 0.5)
    assert not at_edge.meets_fah(TARGET) and not at_edge.meets(easy)
    assert Point(0.0, 0.86, 0.5, 3).meets(easy)  # the same setting measured without a margin
    decision = run_decide(state(), at_edge, tuning(cutoff_margin=0.05))
    assert decision.action == "raise_hard_negative" and decision.mine
