"""A model's outputs over an evaluation set: where each clip is decided."""

from __future__ import annotations

import numpy as np

from mww.data.sources import EvalData
from mww.evaluate.outputs import Outputs, decision_outputs


def test_clip_scores_are_read_where_training_decides_not_at_the_end_of_the_recording():
    stream = np.array([0, 10, 250, 240, 5, 5, 5], dtype=np.uint8)  # fires, then trailing silence
    data = EvalData(
        windows=np.zeros((2, 1, 40), np.float32),
        labels=np.array([1.0, 0.0]),
        kinds=["positive", "negative"],
        positive_streams=[],
        positive_paths=[],
        negative_streams=[],
        hard_negative_streams=[],
        ambient_streams=[],
        ambient_paths=[],
        ambient_seconds=1.0,
        silence_after=[3, 0],
    )
    out = Outputs(positives=[stream], negatives=[stream], hard_negatives=[], ambient=[])
    assert decision_outputs(data, out) == [240, 5]
    data.silence_after = [99, 0]  # more silence than stream: its first output
    assert decision_outputs(data, out) == [0, 5]
    data.silence_after = []  # not known: the end of every stream
    assert decision_outputs(data, out) == [5, 5]
