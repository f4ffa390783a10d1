"""The float streaming twin computes exactly what the non-streaming training model computes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mww.config.load import config_from_dict
from mww.device.constants import FEATURE_MAX_FLOAT, MEL_BINS
from mww.model.builder import build_model
from mww.model.plan import receptive_field_frames, training_input_frames
from mww.model.scoring import window_ends, window_scorer
from mww.model.streaming import StreamingModel, sequence_scorer
from tests.model.test_builder import ARCHITECTURES

FLOAT_TOLERANCE = 1e-5


def fresh_model(cfg, seed: int = 0, random_batch_norm: bool = True) -> keras.Model:
    """A freshly initialised model (seeded); with `random_batch_norm` its BatchNorm statistics and
    scales are random instead of the identity, so that BN folding is exercised and the network's
    activations and output vary much more with the input."""
    keras.utils.set_random_seed(seed)
    frames = training_input_frames(cfg.hardware, cfg.model)
    model = build_model(cfg.model, (frames, MEL_BINS))
    if not random_batch_norm:
        return model
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.get_weights()[0].shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, shape),
                    rng.normal(0.0, 0.2, shape),
                    rng.normal(0.0, 0.3, shape),
                    rng.uniform(0.5, 2.0, shape),
                ]
            )
    return model


def stream_vs_keras(
    model: keras.Model, stride: int, streamed: np.ndarray, features: np.ndarray
) -> np.ndarray:
    """|streamed output - Keras output on the last `frames` frames| for every call after the window filled."""
    frames = int(model.input_shape[1])
    steps = [n for n in range(1, len(streamed) + 1) if n * stride >= frames]
    windows = np.stack([features[n * stride - frames : n * stride] for n in steps])
    expected = model.predict(windows, verbose=0)[:, 0]
    return np.abs(np.asarray(streamed)[np.array(steps) - 1] - expected)


CASES = {"mixednet-default": {}, **ARCHITECTURES}


def float_streaming_deviation(overrides: dict) -> tuple[np.ndarray, np.ndarray]:
    """(|streamed - Keras| per call after the window filled, streamed outputs) for a fresh model."""
    cfg = config_from_dict({"model": overrides})
    model = fresh_model(cfg)
    streaming = StreamingModel(model, cfg.model)
    stride = cfg.model.stride
    frames = int(model.input_shape[1])
    features = np.random.default_rng(1).uniform(0, FEATURE_MAX_FLOAT, (frames + 50 * stride, MEL_BINS))
    features = features.astype(np.float32)
    streamed = streaming.run(features)
    assert streamed.shape == (features.shape[0] // stride,)
    deviation = stream_vs_keras(model, stride, streamed, features)
    assert deviation.size >= 50
    print(f"\n{cfg.model.architecture} {overrides}: float streaming max |diff| {deviation.max():.2e}")
    return deviation, streamed


@pytest.mark.parametrize("overrides", list(CASES.values()), ids=list(CASES))
def test_float_streaming_model_matches_keras(overrides):
    deviation, _ = float_streaming_deviation(overrides)
    assert deviation.max() <= FLOAT_TOLERANCE


@pytest.mark.parametrize("overrides", list(CASES.values()), ids=list(CASES))
def test_sequence_scorer_gives_every_window_of_the_non_streaming_model(overrides, monkeypatch):
    """One pass per stream equals the model on each invocation's window: long streams cut in pieces,
    equal-length pieces batched, streams shorter than a window give nothing."""
    import mww.model.streaming

    cfg = config_from_dict({"model": overrides})
    model = fresh_model(cfg)
    frames, stride = int(model.input_shape[1]), cfg.model.stride
    rng = np.random.default_rng(1)
    long = rng.uniform(0, FEATURE_MAX_FLOAT, (frames + 100 * stride + 2, MEL_BINS)).astype(np.float32)
    streams = [long, long[7:], long[: frames + 9 * stride], long[-frames - 9 * stride :], long[: frames - 1]]
    reference = window_scorer(lambda x: model(x, training=False).numpy()[:, 0], frames, stride)(streams)
    assert [r.size for r in reference] == [window_ends(f.shape[0], frames, stride).size for f in streams]
    assert reference[0].size == 1 + (100 * stride + 2) // stride and reference[-1].size == 0
    assert reference[0].std() > 10 * FLOAT_TOLERANCE  # the output really moves
    whole = sequence_scorer(model, cfg.model)(streams)
    monkeypatch.setattr(mww.model.streaming, "SEQUENCE_CHUNK_WINDOWS", 20)  # pieces of up to 20 invocations
    pieces = sequence_scorer(model, cfg.model)(streams)
    worst = max(float(np.abs(a - b).max(initial=0.0)) for a, b in zip(whole, reference, strict=True))
    print(
        f"\n{cfg.model.architecture} {overrides}: sequence vs windows over {sum(r.size for r in reference)} "
        f"invocations: max |diff| {worst:.2e}; outputs {reference[0].min():.3f}..{reference[0].max():.3f}"
    )
    for got in (whole, pieces):
        assert [g.shape for g in got] == [r.shape for r in reference]
        for g, r in zip(got, reference, strict=True):
            np.testing.assert_allclose(g, r, rtol=0, atol=FLOAT_TOLERANCE)


def test_streaming_does_not_depend_on_models_built_before_in_the_process():
    """Models built earlier in the same process (other architectures, dropout, L2 regularization) advance
    Keras' global name counters and random state; the streaming twin must still read its own model's
    weights and compute what that model computes, the same as before the others were built."""
    target = CASES["first-kernel-equals-stride"]
    _, alone = float_streaming_deviation(target)
    for name in ("dnn", "cnn", "mixednet-residual-mixed-repeats"):
        deviation, _ = float_streaming_deviation(CASES[name])
        assert deviation.max() <= FLOAT_TOLERANCE, name
    deviation, after_others = float_streaming_deviation(target)
    assert deviation.max() <= FLOAT_TOLERANCE
    np.testing.assert_allclose(after_others, alone, rtol=0, atol=FLOAT_TOLERANCE)


def test_reset_restores_the_initial_state():
    small = {"pointwise_filters": "8,8", "mixconv_kernel_sizes": "[3],[5]", "repeat_in_block": "1,1"}
    cfg = config_from_dict({"model": {**small, "residual_connection": "0,0"}})
    streaming = StreamingModel(fresh_model(cfg), cfg.model)
    features = np.random.default_rng(2).uniform(0, 12, (24 * cfg.model.stride, MEL_BINS)).astype(np.float32)
    first = streaming.run(features)
    assert any(float(np.abs(s.numpy()).max()) > 0 for s in streaming.states)
    streaming.reset()
    np.testing.assert_array_equal(streaming.run(features), first)
    assert receptive_field_frames(cfg.model) < features.shape[0]
