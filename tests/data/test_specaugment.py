import sys
from types import SimpleNamespace

import numpy as np
import pytest

from mww.config.load import load_preset
from mww.data.specaugment import (
    apply_masks,
    draw_masks,
    get_spec_augment,
    gpu_available,
    phase_mask_settings,
    spec_augment_cupy,
    spec_augment_numpy,
    to_tensorflow,
)

SHAPE = (16, 60, 12)
SETTINGS = {"time_mask_max_size": 7, "time_mask_count": 2, "freq_mask_max_size": 4, "freq_mask_count": 3}


def ones(shape=SHAPE):
    return np.ones(shape, dtype=np.float32)


def reference(batch, draws):
    """The semantics written out with loops: every mask zeroes [start, start + width) of its axis."""
    out = batch.copy()
    for b in range(batch.shape[0]):
        for start, width in zip(draws.time_start[b], draws.time_width[b], strict=True):
            out[b, start : start + width, :] = 0
        for start, width in zip(draws.freq_start[b], draws.freq_width[b], strict=True):
            out[b, :, start : start + width] = 0
    return out


def test_masks_differ_between_batches():
    rng = np.random.default_rng(0)
    first = spec_augment_numpy(ones(), rng=rng, **SETTINGS)
    second = spec_augment_numpy(ones(), rng=rng, **SETTINGS)
    assert (first == 0).any() and (second == 0).any()
    assert not np.array_equal(first, second)


def test_same_seed_reproduces_the_masks():
    batch = np.random.default_rng(5).random(SHAPE, dtype=np.float32)

    def three_batches(seed):
        rng = np.random.default_rng(seed)
        return [spec_augment_numpy(batch, rng=rng, **SETTINGS) for _ in range(3)]

    for x, y in zip(three_batches(7), three_batches(7), strict=True):
        assert np.array_equal(x, y)
    assert not np.array_equal(three_batches(7)[0], three_batches(8)[0])


def test_mask_counts_and_widths_stay_within_bounds():
    rng = np.random.default_rng(1)
    for _ in range(20):
        draws = draw_masks(SHAPE, rng=rng, **SETTINGS)
        assert draws.time_start.shape == draws.time_width.shape == (SHAPE[0], SETTINGS["time_mask_count"])
        assert draws.freq_start.shape == draws.freq_width.shape == (SHAPE[0], SETTINGS["freq_mask_count"])
        assert draws.time_width.min() >= 0 and draws.time_width.max() <= SETTINGS["time_mask_max_size"]
        assert draws.freq_width.min() >= 0 and draws.freq_width.max() <= SETTINGS["freq_mask_max_size"]
        assert draws.time_start.min() >= 0 and (draws.time_start + draws.time_width).max() <= SHAPE[1]
        assert draws.freq_start.min() >= 0 and (draws.freq_start + draws.freq_width).max() <= SHAPE[2]

    out = spec_augment_numpy(ones(), rng=np.random.default_rng(2), **SETTINGS)
    masked_frames = (out == 0).all(axis=2).sum(axis=1)
    masked_bins = (out == 0).all(axis=1).sum(axis=1)
    assert masked_frames.max() <= SETTINGS["time_mask_count"] * SETTINGS["time_mask_max_size"]
    assert masked_bins.max() <= SETTINGS["freq_mask_count"] * SETTINGS["freq_mask_max_size"]
    # Every zero belongs to a fully masked frame or a fully masked bin.
    zero = out == 0
    assert np.array_equal(zero, (out == 0).all(axis=2)[:, :, None] | (out == 0).all(axis=1)[:, None, :])


def test_widths_cover_zero_to_max_and_cap_at_axis_length():
    draws = draw_masks((2000, 5, 40), 8, 1, 3, 1, np.random.default_rng(3))
    assert set(np.unique(draws.time_width)) == {0, 1, 2, 3, 4, 5}  # capped at the 5 frames
    assert set(np.unique(draws.freq_width)) == {0, 1, 2, 3}


def test_vectorised_masks_equal_the_loop_reference():
    batch = np.random.default_rng(4).random(SHAPE, dtype=np.float32) + 1
    draws = draw_masks(SHAPE, rng=np.random.default_rng(9), **SETTINGS)
    expected = reference(batch, draws)
    assert np.array_equal(spec_augment_numpy(batch, rng=np.random.default_rng(9), **SETTINGS), expected)
    # The generic path (the one CuPy runs: a fused `where`) gives the same cells, here on NumPy.
    generic = SimpleNamespace(arange=np.arange, asarray=np.asarray, where=np.where, zeros=np.zeros)
    assert np.array_equal(apply_masks(generic, batch, draws), expected)


def test_zero_counts_or_sizes_are_the_identity_and_input_is_untouched():
    batch = np.random.default_rng(6).random(SHAPE, dtype=np.float32)
    before = batch.copy()
    for settings in (
        dict.fromkeys(SETTINGS, 0),
        {**SETTINGS, "time_mask_count": 0, "freq_mask_count": 0},
        {**SETTINGS, "time_mask_max_size": 0, "freq_mask_max_size": 0},
    ):
        out = spec_augment_numpy(batch, rng=np.random.default_rng(0), **settings)
        assert np.array_equal(out, batch)
        assert out is not batch
    masked = spec_augment_numpy(batch, rng=np.random.default_rng(0), **SETTINGS)
    assert masked.dtype == np.float32
    assert np.array_equal(batch, before)


def test_no_gpu_is_never_an_error(monkeypatch):
    assert get_spec_augment(prefer_gpu=False) is spec_augment_numpy
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now raises ImportError
    assert gpu_available() is False
    assert get_spec_augment(prefer_gpu=True) is spec_augment_numpy


def test_phase_settings_come_from_the_training_section():
    training = load_preset("max_quality").training
    assert phase_mask_settings(training, 1) == {
        "time_mask_max_size": 5,
        "time_mask_count": 2,
        "freq_mask_max_size": 3,
        "freq_mask_count": 2,
    }


def test_numpy_batch_to_tensorflow():
    batch = spec_augment_numpy(ones(), rng=np.random.default_rng(0), **SETTINGS)
    assert np.array_equal(to_tensorflow(batch).numpy(), batch)


def test_cupy_path_equals_numpy_for_the_same_seed():
    cupy = pytest.importorskip("cupy")
    if not gpu_available():
        pytest.skip("CuPy is installed but no CUDA device is usable")
    batch = np.random.default_rng(8).random((128, 204, 40), dtype=np.float32)
    rng_gpu, rng_cpu = np.random.default_rng(11), np.random.default_rng(11)
    for _ in range(3):  # fresh masks every batch, the same on both paths
        gpu = spec_augment_cupy(cupy.asarray(batch), rng=rng_gpu, **SETTINGS)
        cpu = spec_augment_numpy(batch, rng=rng_cpu, **SETTINGS)
        assert isinstance(gpu, cupy.ndarray)
        assert np.array_equal(cupy.asnumpy(gpu), cpu)
    assert get_spec_augment(prefer_gpu=True) is spec_augment_cupy
    assert np.array_equal(to_tensorflow(gpu).numpy(), cpu)
