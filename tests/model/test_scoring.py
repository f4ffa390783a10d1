import numpy as np

from mww.device.detection import probabilities_to_uint8
from mww.model.scoring import score_windows, stream_windows, window_ends, window_scorer


def test_windows_are_the_last_frames_before_each_invocation():
    features = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    ends = window_ends(40, input_frames=10, stride=3)
    assert ends.tolist() == list(range(12, 40, 3))  # the first invocation with a full window is n=4
    windows = stream_windows(features, 10, 3)
    for end, window in zip(ends, windows, strict=True):
        assert np.array_equal(window, features[end - 10 : end])
    assert stream_windows(features[:9], 10, 3).shape == (0, 10, 3)


def test_window_scorer_scores_each_invocations_window_of_every_stream():
    features = np.zeros((30, 2), np.float32)
    features[:, 0] = np.linspace(0, 1, 30)

    def predict(x):
        return x[:, -1, 0]  # the newest frame's first value

    scores, short = window_scorer(predict, input_frames=5, stride=5)([features, features[:4]])
    assert short.shape == (0,)  # no full window
    out = probabilities_to_uint8(scores)  # quantized like the device output
    expected = np.clip(np.round(features[[4, 9, 14, 19, 24, 29], 0] * 256), 0, 255)
    assert out.tolist() == expected.astype(int).tolist()
    assert score_windows(predict, np.zeros((0, 5, 2), np.float32)).shape == (0,)
