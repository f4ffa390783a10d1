"""SpecAugment: zeroed time and frequency bands in a batch of features, fresh masks every batch.

Each example gets `time_mask_count` time masks and `freq_mask_count` frequency masks. A mask's
width is uniform in [0, max_size] (capped at the axis length) and its start uniform over the
positions where it fits; masked cells are set to 0. The random numbers always come from a NumPy
Generator (`draw_masks`), and the masks are built and applied by one vectorised function for any
array module, so the NumPy (CPU) and CuPy (GPU, the speed path) versions give identical results
for the same seed. No GPU is never an error: `get_spec_augment` falls back to NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from mww.config.schema import TrainingConfig

SpecAugmentFn = Callable[..., Any]


@dataclass(frozen=True)
class MaskDraws:
    """Starts and widths of every mask, each of shape [batch, count]."""

    time_start: np.ndarray
    time_width: np.ndarray
    freq_start: np.ndarray
    freq_width: np.ndarray


def _draw_axis(
    rng: np.random.Generator, batch: int, count: int, max_size: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    if count <= 0 or max_size <= 0 or length <= 0:
        empty = np.zeros((batch, 0), dtype=np.int64)
        return empty, empty
    width = rng.integers(0, min(max_size, length) + 1, size=(batch, count))
    start = np.floor(rng.random((batch, count)) * (length - width + 1)).astype(np.int64)
    return start, width


def draw_masks(
    shape: tuple[int, ...],
    time_mask_max_size: int,
    time_mask_count: int,
    freq_mask_max_size: int,
    freq_mask_count: int,
    rng: np.random.Generator,
) -> MaskDraws:
    """The random part of SpecAugment for a batch of `shape` [B, T, F], drawn from `rng`."""
    batch, frames, bins = shape
    time_start, time_width = _draw_axis(rng, batch, time_mask_count, time_mask_max_size, frames)
    freq_start, freq_width = _draw_axis(rng, batch, freq_mask_count, freq_mask_max_size, bins)
    return MaskDraws(time_start, time_width, freq_start, freq_width)


def _axis_mask(xp: ModuleType, start: Any, width: Any, length: int) -> Any:
    """[B, length] bool: True where any of the example's masks covers the position."""
    positions = xp.arange(length)[None, None, :]
    inside = (positions >= start[:, :, None]) & (positions < (start + width)[:, :, None])
    return inside.any(axis=1)


def masked_cells(xp: ModuleType, shape: tuple[int, ...], draws: MaskDraws) -> tuple[Any, Any]:
    """([B, T] masked frames, [B, F] masked bins) as `xp` bool arrays."""
    _, frames, bins = shape
    masked_time = _axis_mask(xp, xp.asarray(draws.time_start), xp.asarray(draws.time_width), frames)
    masked_freq = _axis_mask(xp, xp.asarray(draws.freq_start), xp.asarray(draws.freq_width), bins)
    return masked_time, masked_freq


def apply_masks(xp: ModuleType, batch: Any, draws: MaskDraws) -> Any:
    """Zero the masked cells of `batch` [B, T, F] (an `xp` array); returns a new array.

    NumPy zeroes whole masked rows of a copy by boolean indexing (a fifth of the time of a
    broadcast select on the CPU); other array modules use one fused `where`, which on a GPU runs
    as a single kernel without a device-to-host sync. Both set exactly the same cells to 0.
    """
    masked_time, masked_freq = masked_cells(xp, batch.shape, draws)
    if xp is np:
        out = batch.copy()
        out[masked_time] = 0
        out.transpose(0, 2, 1)[masked_freq] = 0
        return out
    masked = masked_time[:, :, None] | masked_freq[:, None, :]
    return xp.where(masked, xp.zeros((), dtype=batch.dtype), batch)


def spec_augment_numpy(
    batch: np.ndarray,
    time_mask_max_size: int,
    time_mask_count: int,
    freq_mask_max_size: int,
    freq_mask_count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """SpecAugment on the CPU: `batch` float32 [B, T, F] → a masked copy (the input is not changed)."""
    batch = np.asarray(batch)
    draws = draw_masks(
        batch.shape, time_mask_max_size, time_mask_count, freq_mask_max_size, freq_mask_count, rng
    )
    if draws.time_width.size == 0 and draws.freq_width.size == 0:
        return batch.copy()
    return apply_masks(np, batch, draws)


def spec_augment_cupy(
    batch: Any,
    time_mask_max_size: int,
    time_mask_count: int,
    freq_mask_max_size: int,
    freq_mask_count: int,
    rng: np.random.Generator,
) -> Any:
    """SpecAugment on the GPU: the same draws and semantics as `spec_augment_numpy`, masks built there.

    `batch` may be a CuPy or NumPy array; the result is a CuPy array on the current device.
    """
    import cupy

    gpu_batch = cupy.asarray(batch)
    draws = draw_masks(
        gpu_batch.shape, time_mask_max_size, time_mask_count, freq_mask_max_size, freq_mask_count, rng
    )
    if draws.time_width.size == 0 and draws.freq_width.size == 0:
        return gpu_batch.copy()
    return apply_masks(cupy, gpu_batch, draws)


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # no cupy, no driver, no device: all mean "use the CPU"
        return False


def get_spec_augment(prefer_gpu: bool = True) -> SpecAugmentFn:
    """`spec_augment_cupy` when asked for and a CUDA device is usable, else `spec_augment_numpy`."""
    if prefer_gpu and gpu_available():
        return spec_augment_cupy
    return spec_augment_numpy


def to_tensorflow(batch: Any) -> Any:
    """A tf.Tensor of `batch`: CuPy arrays go through DLPack (no host copy), others are converted.

    A TensorFlow that cannot take GPU memory (a CPU-only build) gets a host copy of a CuPy array.
    """
    import tensorflow as tf

    if type(batch).__module__.startswith("cupy"):
        try:
            capsule = batch.toDlpack() if hasattr(batch, "toDlpack") else batch.__dlpack__()
            return tf.experimental.dlpack.from_dlpack(capsule)
        except Exception:  # TensorFlow without GPU support rejects a CUDA capsule
            return tf.convert_to_tensor(batch.get())
    return tf.convert_to_tensor(batch)


def phase_mask_settings(training: TrainingConfig, phase: int) -> dict[str, int]:
    """The SpecAugment keyword arguments of one training phase (0-based)."""
    return {
        "time_mask_max_size": training.time_mask_max_size[phase],
        "time_mask_count": training.time_mask_count[phase],
        "freq_mask_max_size": training.freq_mask_max_size[phase],
        "freq_mask_count": training.freq_mask_count[phase],
    }
