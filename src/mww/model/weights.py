"""Trained weights read from a Keras model by layer name, with BatchNorm folded into the convolutions.

The streaming and sequence forms of a layer (`mww.model.layers`) run on constants: the kernels of the
trained model, each convolution followed by BatchNorm scaled by its inference-time factor and the
BatchNorm's offset turned into a bias, so the device graph has no BatchNorm op.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np


def fold_batch_norm(
    kernels: Sequence[np.ndarray], bn_weights: Sequence[np.ndarray], epsilon: float
) -> tuple[list[np.ndarray], np.ndarray]:
    """Fold BatchNorm (gamma, beta, moving mean, moving variance) into bias-free conv kernels.

    `kernels` are the convolutions whose outputs are concatenated (in order) before the BatchNorm;
    their last axis is the output channel. Returns (kernels, bias) with
    `concat(conv(x, k) for k in kernels) + bias == bn(concat(conv(x, original k)))` at inference.
    """
    gamma, beta, mean, variance = (np.asarray(w, dtype=np.float64) for w in bn_weights)
    scale = gamma / np.sqrt(variance + epsilon)
    folded, start = [], 0
    for kernel in kernels:
        width = kernel.shape[-1]
        folded.append(
            (np.asarray(kernel, dtype=np.float64) * scale[start : start + width]).astype(np.float32)
        )
        start += width
    if start != scale.shape[0]:
        raise ValueError(f"kernels have {start} output channels, the BatchNorm has {scale.shape[0]}")
    return folded, (beta - mean * scale).astype(np.float32)


class Weights:
    """A trained Keras model's weights as float32 arrays, looked up by layer name."""

    def __init__(self, model: keras.Model) -> None:
        self._model = model

    def kernel(self, name: str) -> np.ndarray:
        """The kernel of the bias-free convolution `name`."""
        return np.asarray(self._model.get_layer(name).get_weights()[0], dtype=np.float32)

    def folded(self, convs: Sequence[str], bn: str) -> tuple[list[np.ndarray], np.ndarray]:
        """The kernels of `convs` (concatenated before BatchNorm `bn`) with `bn` folded in, and its bias."""
        layer = self._model.get_layer(bn)
        return fold_batch_norm([self.kernel(c) for c in convs], layer.get_weights(), float(layer.epsilon))

    def dense(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Kernel and bias of the dense layer `name`."""
        kernel, bias = self._model.get_layer(name).get_weights()
        return np.asarray(kernel, dtype=np.float32), np.asarray(bias, dtype=np.float32)
