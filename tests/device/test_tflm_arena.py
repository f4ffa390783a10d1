"""Running a model in TFLite Micro (`mww.device.tflm_arena`): the smallest arena, the declared margin, and
the device-like inputs the verifier streams."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pytest

from mww.device import constants as C
from mww.device.tflm_arena import (
    ARENA_MARGIN_BYTES,
    AllocationError,
    declared_arena_size,
    device_inputs,
    measure_tensor_arena,
    stream_features,
)


def official_dir() -> Path:
    return Path(str(importlib.resources.files("pymicro_wakeword") / "models"))


def test_measured_arena_is_the_minimum():
    data = (official_dir() / "hey_jarvis.tflite").read_bytes()
    arena = measure_tensor_arena(data)
    print(f"\nhey_jarvis minimum arena {arena} B")
    assert measure_tensor_arena(data, upper=arena) == arena
    with pytest.raises(AllocationError, match="does not allocate"):
        measure_tensor_arena(data, upper=arena - 1)


def test_declared_arena_adds_ten_percent_and_a_kib_aligned_to_16():
    assert ARENA_MARGIN_BYTES == 1024
    assert declared_arena_size(10_000) == 12_032  # 11 000 + 1024 = 12 024, rounded up to 16
    assert declared_arena_size(16_000) == 18_624  # 17 600 + 1024, already a multiple of 16
    assert declared_arena_size(0) == 1024


def test_device_inputs_are_the_device_formula_applied_to_streamed_features():
    from mww.device.features import dequantize_input, quantize_uint16

    inputs, what = device_inputs([1, 3, C.MEL_BINS], np.int8, steps=5)
    expected = quantize_uint16(stream_features(15))
    assert len(inputs) == 5 and all(x.shape == (1, 3, C.MEL_BINS) and x.dtype == np.int8 for x in inputs)
    assert np.array_equal(np.concatenate([x[0] for x in inputs]), expected)
    assert "3 frames per call" in what and "synthetic" in what
    floats, _ = device_inputs([1, 3, C.MEL_BINS], np.float32, steps=2)
    assert np.allclose(floats[0][0], dequantize_input(expected[:3]))
    other, what = device_inputs([1, 7], np.uint8, steps=3)
    assert [x.shape for x in other] == [(1, 7)] * 3 and other[0].dtype == np.uint8


def test_stream_features_are_one_continuous_front_end_run():
    features = stream_features(250)
    assert features.shape == (250, C.MEL_BINS) and features.dtype == np.uint16
    assert features.max() > 0 and not np.array_equal(features[:50], features[50:100])
    assert np.array_equal(stream_features(100), features[:100])  # a longer stream starts the same
