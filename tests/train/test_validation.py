"""One validation: device-faithful metrics at the operating point, and the table that shows them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mww.config.load import config_from_dict
from mww.config.schema import HIGHER_IS_BETTER_METRICS, LOWER_IS_BETTER_METRICS
from mww.data.sources import EvalData, noise_key
from mww.train.runlog import validation_table
from mww.train.validation import Selection, calibration_of, validation_metrics
from tests.train.test_trainer import tiny_config


def test_validation_recall_in_noise_is_measured_at_the_operating_point(tmp_path):
    """A stand-in scorer: clean positives fire, so does one of the two 20 dB clips, no 10 dB clip."""
    frames = 40
    loud, quiet = np.ones((frames, 40), np.float32), np.zeros((frames, 40), np.float32)
    data = EvalData(
        windows=np.zeros((3, frames, 40), np.float32),
        labels=np.array([1, 1, 0], np.float32),
        kinds=["positive", "positive", "negative"],
        positive_streams=[loud, loud],
        positive_paths=[Path("p0.wav"), Path("p1.wav")],
        negative_streams=[quiet],
        hard_negative_streams=[quiet],
        ambient_streams=[np.zeros((600, 40), np.float32)],
        ambient_paths=[Path("a.wav")],
        ambient_seconds=6.0,
        noise_streams={20.0: [loud, quiet], 10.0: [quiet, quiet]},
    )

    def stream(streams):  # probability 0.99 all along a loud stream, 0 along a quiet one
        return [np.full(len(s) // 3, 0.99 * float(s.max())) for s in streams]

    config = tiny_config(tmp_path, tmp_path)
    metrics = validation_metrics(config, lambda windows: np.array([[0.9], [0.9], [0.1]]), data, stream)
    print(
        f"\noperating point {metrics['operating_point_cutoff']} / {metrics['operating_point_window']}: "
        f"recall {metrics['operating_point_recall']}, in noise {metrics[noise_key(20.0)]} at 20 dB, "
        f"{metrics[noise_key(10.0)]} at 10 dB"
    )
    assert metrics["operating_point_recall"] == 1.0
    assert metrics[noise_key(20.0)] == 0.5 and metrics[noise_key(10.0)] == 0.0
    # every metric the config lets checkpoint selection follow is one that validation measures
    assert set(LOWER_IS_BETTER_METRICS + HIGHER_IS_BETTER_METRICS) <= set(metrics)
    table = validation_table(metrics, 25, tty=False)
    assert table[-1] == "  operating point recall in noise: 20 dB SNR 0.5000, 10 dB SNR 0.0000"
    del metrics[noise_key(20.0)], metrics[noise_key(10.0)]  # no background audio: no such line
    assert "in noise" not in validation_table(metrics, 25, tty=False)[-1]


# The seed trainer's selection rule: ambient FA/h at the config's cutoff to 0.5, then average_viable_recall.
SEED_RULE = {
    "minimization_metric": "ambient_false_positives_per_hour",
    "maximization_metric": "average_viable_recall",
    "selection_target": None,
}


def test_selection_keeps_the_best_and_the_lowest_fah_and_survives_a_resume():
    training = config_from_dict({"training": SEED_RULE}).training
    selection = Selection()
    far = {"ambient_false_positives_per_hour": 5.0, "average_viable_recall": 0.9, "auc_roc": 0.9}
    near = {"ambient_false_positives_per_hour": 0.1, "average_viable_recall": 0.5, "auc_roc": 0.8}
    assert selection.add(10, far, training) == (True, True)
    assert selection.add(20, near, training) == (True, True)  # within target beats above target
    assert selection.add(30, far, training) == (False, False)
    assert selection.best.step == 20 and selection.best_fah == 0.1
    assert [h["step"] for h in selection.history] == [10, 20, 30]
    state = json.loads(json.dumps(selection.to_state()))
    assert list(state) == ["best", "best_fah", "history"]
    assert Selection.from_state(state) == selection


def test_selection_follows_the_smoothed_trend_not_one_lucky_validation():
    """One validation at 0.95 between two at 0.5 loses to a steady stretch at 0.8 when three are
    averaged; compared one at a time (smoothing 1) it wins."""
    recalls = [0.5, 0.95, 0.5, 0.8, 0.8, 0.8]

    def best_step(smoothing: int) -> int:
        training = config_from_dict({"training": {**SEED_RULE, "selection_smoothing": smoothing}}).training
        selection = Selection()
        for i, recall in enumerate(recalls):
            record = {"ambient_false_positives_per_hour": 0.0, "average_viable_recall": recall}
            selection.add(10 * (i + 1), record, training)
        assert selection.best.metrics["average_viable_recall"] == recalls[selection.best.step // 10 - 1]
        return selection.best.step

    print(f"\nrecall per validation {recalls}: best step {best_step(3)} (smoothed), {best_step(1)} (not)")
    assert best_step(3) == 60 and best_step(1) == 20


def test_the_calibration_a_validation_earns_carries_its_fallback():
    metrics = {
        "operating_point_cutoff": 0.96,
        "operating_point_window": 10,
        "operating_point_meets_target": False,
        "operating_point_supported": False,
        "operating_point_reasons": ["no safe cutoff met the target"],
        "operating_point_fallback": {"probability_cutoff": 0.98, "sliding_window_size": 10, "fah": 0.89},
    }
    calibration = calibration_of(metrics)
    assert calibration["fallback"] == metrics["operating_point_fallback"]
    assert "fallback" not in calibration_of({**metrics, "operating_point_fallback": None})
