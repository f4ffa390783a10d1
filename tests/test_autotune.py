"""mww-autotune (`mww.autotune`; its decisions in `mww.tune_decision`): the decision function, every
auto_tuning key, bad input, dry run, Ctrl-C, and tuning an under-trained demo checkpoint confirmed on
the held-out test split."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import dataset_paths, tone, write
from mww.autotune import CSV_COLUMNS, ITERATIONS_CSV, REPORT_NAME, TUNED_NAME, AutoTuner
from mww.cli.autotune import main
from mww.config import config_from_dict, deep_merge, dump_config, load_full_config
from mww.config_schema import AutoTuningConfig
from mww.metrics import OPERATING_POINT_WINDOWS
from mww.tune_decision import (
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
from test_train import TINY_MODEL

TARGET = TuneTarget(fah=0.3, recall=0.92)
COVERED: set[str] = set()


def covers(*keys: str):
    """Mark a test as the one that shows the effect of these auto_tuning keys."""
    COVERED.update(keys)
    return lambda test: test


def tuning(**changes) -> AutoTuningConfig:
    return dataclasses.replace(AutoTuningConfig(), **changes)


def state(pw=1.0, hw=40.0, **kw) -> TuneState:
    return TuneState(pw, hw, **kw)


def run_decide(st, point, tun=None, target=TARGET, max_iterations=100, patience=10):
    return decide(st, point, tun or tuning(), target, max_iterations=max_iterations, patience=patience)


def sweep_of(table: dict[int, list[tuple[float, float, float]]]) -> dict:
    """A sweep like measure(...)["sweep"]: {window: [(cutoff, recall, fah), ...]} on the 0.01 grid."""
    cutoffs = [round(c, 2) for c in np.linspace(0, 1, 101)]
    windows = {}
    for window in OPERATING_POINT_WINDOWS:
        recall, fah = [0.0] * len(cutoffs), [100.0] * len(cutoffs)
        for cutoff, r, f in table.get(window, []):
            i = cutoffs.index(cutoff)
            recall[i], fah[i] = r, f
        windows[str(window)] = {"recall": recall, "fah": fah}
    return {"cutoffs": cutoffs, "windows": windows}


# --------------------------------------------------------------------------- pure pieces


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
    assert choose_point(sweep, tuning(cutoff_max=0.98, cutoff_min=0.6), TARGET) == Point(0.0, 0.6, 0.96, 2)
    assert choose_point(sweep, tuning(cutoff_min=0.3, window_min=3), TARGET) == Point(0.0, 0.8, 0.55, 6)
    assert choose_point(sweep, tuning(cutoff_min=0.5, window_max=5), TARGET) == Point(0.0, 0.6, 0.96, 2)
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
    sweep = sweep_of({1: [(0.15, 0.4, 0.0), (0.12, 0.5, 7.2), (0.5, 0.0, 0.0), (0.99, 0.0, 0.0)]})
    default = AutoTuningConfig()
    assert default.cutoff_min <= 0.1
    assert choose_point(sweep, default, TARGET) == Point(0.0, 0.4, 0.15, 1)
    assert choose_point(sweep, tuning(cutoff_min=0.5), TARGET).recall == 0.0


def test_window_range_matches_the_evaluation_sweep():
    field = {f.name: f for f in dataclasses.fields(AutoTuningConfig)}
    assert field["window_max"].metadata["max"] == max(OPERATING_POINT_WINDOWS)
    assert field["window_min"].metadata["min"] == min(OPERATING_POINT_WINDOWS)


# --------------------------------------------------------------------------- a tiny tone dataset

SPEAKERS = 12
RECALL_TOLERANCE = 0.05  # the configured "not worse": under one positive clip of the 15 in the test split
FAH_TOLERANCE = 1.0  # below what one false activation in the test audio adds: no extra false activation


def everyday(seconds: float, seed: int) -> np.ndarray:
    """Everyday sound: tones of the negative range one after another, with short pauses."""
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(int(seconds / 1.5)):
        parts += [tone(1.2, float(rng.uniform(900, 1200)), seed=seed + k), np.zeros(4800, np.float32)]
    return np.concatenate(parts)


def build_wake_tones(root: Path) -> None:
    """The wake word is a low tone (300-400 Hz, every speaker across the range), the rest 900-1200 Hz.

    Negatives are said by the speakers (so they follow them into their split); four long everyday
    recordings are training negatives, and two ambient recordings of the same kind are in each of
    the validation and test splits.
    """
    for s in range(SPEAKERS):
        for i in range(5):
            write(
                root / "positive" / f"spk{s:02d}" / f"{i}.wav",
                tone(1.0, 300 + 25 * i + 2 * s, seed=s * 10 + i),
            )
    for i in range(60):
        write(
            root / "negative" / f"spk{i % SPEAKERS:02d}" / f"n{i}.wav", tone(1.2, 900 + 5 * i, seed=1000 + i)
        )
    for k, speaker in enumerate(("spk00", "spk03", "spk04", "spk07")):
        write(root / "negative" / speaker / f"long{k}.wav", everyday(20.0, 5000 + 100 * k))
    for i in range(4):
        write(root / "ambient" / f"amb{i}.wav", everyday(30.0, 3000 + 100 * i))


@pytest.fixture(scope="module")
def wake(tmp_path_factory):
    """The tone dataset, its config (as a dict) and a checkpoint of 10 training steps that hears nothing."""
    from mww.train import Trainer

    root = tmp_path_factory.mktemp("autotune_tones")
    build_wake_tones(root / "data")
    base = {
        "hardware": {"clip_duration_ms": 500},
        "paths": {**dataset_paths(root / "data", root / "processed"), "checkpoint_dir": str(root / "ckpt")},
        "data": {
            "validation_speakers": ["spk01", "spk05", "spk09"],
            "test_speakers": ["spk02", "spk06", "spk10"],
        },
        "model": TINY_MODEL,
        "augmentation": {"enabled": False, "augmentation_duration_s": 1.5},
        "training": {"training_steps": [10, 1], "learning_rates": [0.01, 0.001], "batch_size": 16},
        "performance": {
            "num_workers": 1,
            "tensorboard_enabled": False,
            "tensorboard_log_dir": str(root / "logs"),
        },
        "hard_negative_mining": {"enabled": False},
        "auto_tuning": {
            "burst_steps": 25,
            "burst_learning_rate": 0.005,
            "positive_weight_step": 2.0,
            "recall_tolerance": RECALL_TOLERANCE,
            "fah_tolerance": FAH_TOLERANCE,
        },
    }
    base["training"]["eval_step_interval"] = 11
    result = Trainer(config_from_dict(base), progress=False, out=io.StringIO()).train()
    assert result.best_checkpoint is not None
    return root, base, result.best_checkpoint


def tone_config(wake, **auto_tuning):
    _, base, _ = wake
    return config_from_dict(deep_merge(base, {"auto_tuning": auto_tuning}))


def config_file(wake, tmp_path, **changes) -> str:
    _, base, _ = wake
    return str(dump_config(config_from_dict(deep_merge(base, changes)), tmp_path / "cfg.yaml"))


def open_session(cfg, checkpoint, output_dir):
    from mww.train import Trainer

    tuner = AutoTuner(cfg, TARGET, output_dir=output_dir, out=io.StringIO())
    trainer = Trainer(cfg, progress=False, out=io.StringIO())
    trainer._tensorflow()
    return tuner, tuner._open(trainer, Path(checkpoint))


@covers("burst_steps", "seed")
def test_burst_runs_burst_steps_steps_with_batches_of_the_seed(wake, tmp_path):
    cfg = tone_config(wake, burst_steps=4, seed=0)
    tuner, session = open_session(cfg, wake[2], tmp_path)
    seen = []

    def record(x, y, w):
        seen.append(np.asarray(x).copy())
        return 0.0, 1.0

    session.train_step = record

    def burst(**changes):
        for key, value in changes.items():
            setattr(cfg.auto_tuning, key, value)
        seen.clear()
        session.step = cfg.training.total_steps
        tuner._burst(session, TuneState(1.0, 4.0))
        return list(seen)

    first = burst()
    assert len(first) == 4 and session.step == cfg.training.total_steps + 4
    assert len(burst(burst_steps=2)) == 2
    same, other = burst(burst_steps=4, seed=0), burst(seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, same, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@covers("burst_learning_rate")
def test_burst_learning_rate_is_the_optimizers(wake, tmp_path):
    for rate in (0.002, 0.0003):
        tuner, session = open_session(
            tone_config(wake, burst_learning_rate=rate, burst_steps=1), wake[2], tmp_path
        )
        assert float(np.asarray(session.optimizer.learning_rate)) == pytest.approx(rate)
        tuner._burst(session, TuneState(1.0, 4.0, learning_rate_scale=0.25))  # after a drift
        assert float(np.asarray(session.optimizer.learning_rate)) == pytest.approx(rate * 0.25)


@covers("mining_fp_threshold", "mining_max_samples")
def test_mining_threshold_and_size(wake, tmp_path):
    cfg = tone_config(wake, mining_fp_threshold=0.0, mining_max_samples=3)
    tuner, session = open_session(cfg, wake[2], tmp_path)
    assert tuner._mine(session) == 3 and len(session.mined) == 3
    assert "mined" in [s.name for s in session.trainer.sampler.sources]
    cfg.auto_tuning.mining_max_samples = 5
    assert tuner._mine(session) == 2 and len(session.mined) == 5  # fresh windows are added to the known
    saved = json.loads((tmp_path / "mined_hard_negatives.json").read_text())["windows"]
    assert len(saved) == 5
    cfg.auto_tuning.mining_fp_threshold = 1.0
    session.mined = []
    assert tuner._mine(session) == 0  # nothing of an under-trained model scores 1.0


def test_every_auto_tuning_key_is_shown_to_have_an_effect():
    assert {f.name for f in dataclasses.fields(AutoTuningConfig)} == COVERED


# --------------------------------------------------------------------------- the command


def test_dry_run_checks_everything_and_writes_nothing(wake, tmp_path, capsys):
    out = tmp_path / "tuning"
    cfg = config_file(wake, tmp_path)
    assert main(["--checkpoint", str(wake[2]), "--config", cfg, "--output-dir", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    print(printed)
    for text in (
        "dry run",
        "loads into the config's model",
        "validation (decisions)",
        "test (confirmation only)",
    ):
        assert text in printed
    assert (
        "FA/h <= 0.3 and recall >= 0.92" in printed
        and "up to 100 iterations of 25 fine-tuning steps" in printed
    )
    assert not out.exists()


def test_bad_input_exits_2_with_one_paragraph(wake, tmp_path, capsys):
    from mww.model import build_model

    cfg = config_file(wake, tmp_path)
    ckpt = str(wake[2])
    others = {}
    for name, model in (("dnn", {"architecture": "dnn"}), ("wider", {"pointwise_filters": "12,12"})):
        others[name] = tmp_path / f"{name}.weights.h5"
        other = config_from_dict({"hardware": {"clip_duration_ms": 500}, "model": {**TINY_MODEL, **model}})
        build_model(other.model, (66, 40)).save_weights(others[name])
    broken = tmp_path / "broken.weights.h5"
    broken.write_bytes(wake[2].read_bytes()[:500])
    empty_test = config_file(
        wake,
        tmp_path / "empty",
        data={"test_speakers": [], "test_fraction": 0.0},
        paths={"processed_dir": str(tmp_path / "p")},
    )
    cases = [
        (["--checkpoint", str(tmp_path / "missing.weights.h5")], "does not exist"),
        (["--checkpoint", str(others["dnn"])], "different model"),  # another architecture
        (["--checkpoint", str(others["wider"])], "different model"),  # the same one, other sizes
        (["--checkpoint", str(broken)], "truncated or corrupt"),
        (["--checkpoint", ckpt, "--target-recall", "1.5"], "--target-recall 1.5 is out of range"),
        (["--checkpoint", ckpt, "--target-fah", "-1"], "--target-fah -1.0 is out of range"),
        (["--checkpoint", ckpt, "--max-iterations", "0"], "--max-iterations 0 is out of range"),
        (["--checkpoint", ckpt, "--output-dir", str(wake[2].parent)], "folder of the starting checkpoint"),
        (["--checkpoint", ckpt, "--config", empty_test], "test split has no positive clips"),
    ]
    for dry in (True, False):
        for argv, expected in cases:
            if "--config" not in argv:
                argv = [*argv, "--config", cfg]
            argv = [*argv, "--output-dir", str(tmp_path / "t")] if "--output-dir" not in argv else argv
            assert main(argv + (["--dry-run"] if dry else [])) == 2, argv
            err = capsys.readouterr().err
            assert expected in err and "Traceback" not in err, err
            assert err.startswith("mww-autotune: error: ") and err.count("\n") == 1
    assert not (tmp_path / "t").exists()


def test_a_run_writes_the_best_report_and_one_line_per_iteration(wake, tmp_path, capsys):
    out = tmp_path / "tuning"
    cfg = config_file(wake, tmp_path)
    argv = ["--checkpoint", str(wake[2]), "--config", cfg, "--output-dir", str(out), "--max-iterations", "2"]
    assert main([*argv, "--target-fah", "0", "--target-recall", "1.0"]) == 0
    printed = capsys.readouterr().out
    print(printed)
    report = json.loads((out / REPORT_NAME).read_text())
    rows = list(csv.DictReader((out / ITERATIONS_CSV).open()))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == report["iterations"] <= 3
    assert [int(r["iteration"]) for r in rows] == list(range(len(rows)))
    assert sum(line.startswith("iteration ") for line in printed.splitlines()) == len(rows)
    assert "validation (tuned on)" in printed and "test (held out)" in printed
    assert f"next: mww-export --checkpoint {out / TUNED_NAME}" in printed
    tuned = report["tuned"]
    assert set(tuned["validation"]) >= {"recall", "fah"} and set(tuned["test"]) >= {"recall", "fah"}
    assert "held out" in report["note"] and not report["interrupted"]
    _check_exportable(load_full_config(cfg), out, tuned)
    assert not list(out.glob(".*"))  # no temp files left behind


def _check_exportable(config, out: Path, tuned: dict) -> None:
    """What mww-export reads: the weights load into the config's model, the calibration is the tuned one."""
    from mww.export import load_calibration, load_checkpoint

    load_checkpoint(out / TUNED_NAME, config)
    calibration = load_calibration(config, out / TUNED_NAME)
    assert calibration.source == str(out / "calibration.json")
    assert calibration.probability_cutoff == tuned["probability_cutoff"]
    assert calibration.sliding_window_size == tuned["sliding_window_size"]
    sidecar = json.loads((out / "tuned_weights.json").read_text())
    assert (
        sidecar["probability_cutoff"] == tuned["probability_cutoff"] and sidecar["architecture"] == "mixednet"
    )


def test_ctrl_c_keeps_the_best_so_far(wake, tmp_path, capsys, monkeypatch):
    real_burst = AutoTuner._burst
    calls = []

    def burst_then_interrupt(self, session, st):
        calls.append(session.step)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_burst(self, session, st)

    monkeypatch.setattr(AutoTuner, "_burst", burst_then_interrupt)
    out = tmp_path / "tuning"
    cfg = config_file(wake, tmp_path, auto_tuning={"burst_steps": 3})  # too few to meet the targets
    argv = ["--checkpoint", str(wake[2]), "--config", cfg, "--output-dir", str(out), "--target-recall", "1.0"]
    assert main([*argv, "--target-fah", "0"]) == 130
    printed = capsys.readouterr().out
    print(printed)
    assert len(calls) == 2 and "interrupted" in printed
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["interrupted"] and report["stopped"] == "interrupted (Ctrl-C)" and report["iterations"] == 2
    assert "test" not in report["tuned"] and "mww-evaluate" in report["note"]
    assert len(list(csv.DictReader((out / ITERATIONS_CSV).open()))) == 2
    _check_exportable(load_full_config(cfg), out, report["tuned"])
    sidecar = json.loads((out / "tuned_weights.json").read_text())
    assert sidecar["metrics"]["iteration"] == report["tuned"]["iteration"]  # the best so far, not the last
    assert not list(out.glob(".*"))


# --------------------------------------------------------------------------- does tuning help?


def _before_after(report: dict) -> str:
    start, tuned = report["start"], report["tuned"]
    lines = [f"targets FA/h <= {report['targets']['fah']}, recall >= {report['targets']['recall']}:"]
    for name, entry in (("start", start), ("tuned", tuned)):
        val, test = entry["validation"], entry["test"]
        lines.append(
            f"  {name}  cutoff {entry['probability_cutoff']:.2f} window {entry['sliding_window_size']:>2}: "
            f"validation (tuned on) FA/h {val['fah']:7.2f} recall {val['recall']:.3f} | TEST (held out) FA/h "
            f"{test['fah']:7.2f} recall {test['recall']:.3f}"
        )
    steps, stopped = report["fine_tuning_steps"], report["stopped"]
    lines.append(f"  ({report['iterations']} evaluations, {steps} fine-tuning steps; {stopped})")
    return "\n".join(lines)


@pytest.mark.slow
def test_autotune_improves_an_under_trained_checkpoint_on_the_test_split(wake, tmp_path, capsys):
    """The issue's test: from a checkpoint that misses the targets to better held-out numbers."""
    out = tmp_path / "tuning"
    cfg = config_file(wake, tmp_path)
    argv = ["--checkpoint", str(wake[2]), "--config", cfg, "--output-dir", str(out)]
    assert main([*argv, "--max-iterations", "8", "--patience", "4"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / REPORT_NAME).read_text())
    print(printed)
    print("\nautotune on an under-trained tone checkpoint, " + _before_after(report))
    _assert_better_on_the_test_split(report)


def _assert_better_on_the_test_split(report: dict) -> None:
    """The issue's criterion: from a start that misses the targets, a better held-out (TEST split) FA/h
    or recall, the other not worse beyond the configured tolerances; nor is the start better at the
    cutoff and window its training chose."""
    start, tuned, target = report["start"], report["tuned"], report["targets"]
    assert not (
        start["validation"]["fah"] <= target["fah"] and start["validation"]["recall"] >= target["recall"]
    )
    before, after = start["test"], tuned["test"]
    assert after["fah"] < before["fah"] or after["recall"] > before["recall"], "no better held-out figure"
    assert after["fah"] <= before["fah"] + FAH_TOLERANCE, "held-out FA/h got worse beyond the tolerance"
    assert after["recall"] >= before["recall"] - RECALL_TOLERANCE, (
        "held-out recall got worse beyond the tolerance"
    )
    calibrated = start["as_calibrated"]["test"]
    assert after["fah"] <= calibrated["fah"] + FAH_TOLERANCE, "worse FA/h than the start as calibrated"
    assert after["recall"] >= calibrated["recall"] - RECALL_TOLERANCE, (
        "worse recall than the start as calibrated"
    )


# --------------------------------------------------------------------------- the generated (espeak) demo

DEMO_COUNTS = {
    "positives": 240,
    "negatives": 240,
    "hard_negatives": 60,
    "background": 2,
    "rirs": 1,
    "ambient_seconds": 640.0,  # three recordings: two for validation, one for test
    "speakers": 40,  # eight held out (whole voice variants) for the test split
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small generated dataset and a checkpoint of 200 training steps that misses every target."""
    from mww.generate import generate_dataset
    from mww.train import Trainer

    root = tmp_path_factory.mktemp("autotune_demo")
    generate_dataset(root / "dataset", "hey computer", seed=3, progress=False, counts=DEMO_COUNTS, workers=1)
    override = yaml.safe_load((root / "dataset" / "demo_override.yaml").read_text())
    # The test split is the generator's held-out voices only; a fifth of the others validate.
    override["data"].update({"validation_fraction": 0.2, "test_fraction": 0.0})
    override = deep_merge(
        override,
        {
            "paths": {"processed_dir": str(root / "processed"), "checkpoint_dir": str(root / "ckpt")},
            "model": {
                "first_conv_filters": 16,
                "pointwise_filters": "24,24,24",
                "mixconv_kernel_sizes": "[5],[9],[13]",
                "repeat_in_block": "1,1,1",
                "residual_connection": "0,0,0",
            },
            "training": {"training_steps": [150, 50], "eval_step_interval": 200, "batch_size": 32},
            "performance": {
                "num_workers": 1,
                "tensorboard_enabled": False,
                "tensorboard_log_dir": str(root / "l"),
            },
            "hard_negative_mining": {"enabled": False},
            "auto_tuning": {
                "burst_steps": 100,
                "burst_learning_rate": 0.0005,
                "positive_weight_step": 2.0,
                "max_positive_weight": 32.0,
                "recall_tolerance": RECALL_TOLERANCE,
                "fah_tolerance": FAH_TOLERANCE,
                "mining_max_samples": 200,
            },
        },
    )
    path = root / "override.yaml"
    path.write_text(yaml.safe_dump(override))
    result = Trainer(load_full_config("fast_test", path), progress=False, out=io.StringIO()).train()
    assert result.best_checkpoint is not None
    return root, str(path), result.best_checkpoint


@pytest.mark.slow
def test_tuning_the_generated_demo_end_to_end_and_exporting_it(demo, capsys):
    """The whole path on espeak voices: mining, weights, the report, then mww-export takes the tuned settings.

    The test split holds the generator's held-out voices (variants never heard in training), but on
    so small a model and dataset the held-out effect of tuning depends on the seed, so what autotune
    guarantees is asserted here: the tuned result is not worse than the start on the split it was
    tuned on beyond the configured tolerances; the held-out improvement is asserted on the tone
    dataset above. Measured (not asserted) with this fixture, training/tuner seeds 0-5: four of six
    met the held-out criterion (seed 0, this test: 38.0 FA/h at recall 0.167 -> 0 FA/h at 0.354 on
    the test split), two found nothing better on validation and kept the start.
    """
    root, override, checkpoint = demo
    out = root / "tuning"
    argv = ["--checkpoint", str(checkpoint), "--config", "fast_test", "--override", override]
    assert main([*argv, "--output-dir", str(out), "--max-iterations", "5", "--patience", "3"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / REPORT_NAME).read_text())
    print(printed)
    print("\nautotune on the generated demo, " + _before_after(report))
    start, tuned = report["start"]["validation"], report["tuned"]["validation"]
    assert not (start["fah"] <= 0.3 and start["recall"] >= 0.92)
    assert (
        tuned["fah"] <= start["fah"] + FAH_TOLERANCE and tuned["recall"] >= start["recall"] - RECALL_TOLERANCE
    )
    for row in report["history"][:-1]:  # each evaluation but the last led to an action
        if row["fah"] > 0.3:
            assert "mine hard negatives" in row["action"] or "positive weight" in row["action"], row
        elif row["recall"] < 0.92:
            assert any(what in row["action"] for what in ("positive weight", "cutoff", "train on")), row

    from mww.cli.export import main as export_main

    models = root / "models"
    exported = ["--checkpoint", str(out / TUNED_NAME), "--config", "fast_test", "--override", override]
    assert export_main([*exported, "--output", str(models)]) == 0
    micro = json.loads((models / "wake_word.json").read_text())["micro"]
    assert micro["probability_cutoff"] == report["tuned"]["probability_cutoff"]
    assert micro["sliding_window_size"] == report["tuned"]["sliding_window_size"]


@pytest.mark.slow
def test_impossible_targets_report_the_best_achievable_trade_off(demo, capsys):
    root, override, checkpoint = demo
    out = root / "impossible"
    argv = ["--checkpoint", str(checkpoint), "--config", "fast_test", "--override", override, "-v"]
    argv += ["--output-dir", str(out), "--target-recall", "1.0", "--target-fah", "0", "--max-iterations", "3"]
    assert main([*argv, "--patience", "2"]) == 0
    printed = capsys.readouterr().out
    print(printed)
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["iterations"] <= 4 and not report["meets_targets"]["validation"]
    assert "the targets were not reached; the best achievable trade-off" in printed
    assert report["pareto_front"] and "burst: 100 steps" in printed  # -v prints the bursts
