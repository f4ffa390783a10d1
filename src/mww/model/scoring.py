"""Scoring feature streams with the non-streaming Keras model, the way the streaming model runs.

The streaming model is invoked after every `stride` new frames; its output after `n` invocations
equals the non-streaming model on the last `input_frames` frames, `features[n*stride - T : n*stride]`
(valid convolutions, see mww.model.layers). Invocations before the first full window are not scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

PredictFn = Callable[[np.ndarray], np.ndarray]  # float32 [B, T, 40] → probabilities [B]
# float feature streams [frames, 40] → for each, the probability of every invocation with a full window
# (one per `window_ends` entry)
StreamScorer = Callable[[Sequence[np.ndarray]], list[np.ndarray]]
CHUNK = 512  # windows per forward pass: bounded memory for hour-long recordings


def window_ends(n_frames: int, input_frames: int, stride: int) -> np.ndarray:
    """Frame counts (exclusive window ends) of the invocations that see a full window."""
    first = -(-input_frames // stride)  # the first invocation n with n * stride >= input_frames
    return np.arange(first, n_frames // stride + 1, dtype=np.int64) * stride


def stream_windows(features: np.ndarray, input_frames: int, stride: int) -> np.ndarray:
    """A strided view [n_invocations, T, 40] of every full window (no copy)."""
    if features.shape[0] < input_frames:
        return np.zeros((0, input_frames, features.shape[1]), dtype=features.dtype)
    view = np.lib.stride_tricks.sliding_window_view(features, input_frames, axis=0)  # [n, 40, T]
    starts = window_ends(features.shape[0], input_frames, stride) - input_frames
    return view[starts].transpose(0, 2, 1)


def window_scorer(predict: PredictFn, input_frames: int, stride: int) -> StreamScorer:
    """A StreamScorer that runs every full window through `predict` (any model that scores windows).

    For a model of `mww.model.builder`, `mww.model.streaming.sequence_scorer` gives the same
    probabilities much
    faster on long recordings.
    """
    return lambda streams: [score_windows(predict, stream_windows(f, input_frames, stride)) for f in streams]


def score_windows(predict: PredictFn, windows: np.ndarray) -> np.ndarray:
    """Float probabilities for a stack of windows [N, T, 40], in bounded chunks."""
    out = np.empty(windows.shape[0], dtype=np.float32)
    for start in range(0, windows.shape[0], CHUNK):
        chunk = np.ascontiguousarray(windows[start : start + CHUNK], dtype=np.float32)
        out[start : start + CHUNK] = np.asarray(predict(chunk)).reshape(-1)
    return out
