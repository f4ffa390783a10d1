"""BatchNorm folded into the convolutions before it."""

from __future__ import annotations

import numpy as np
import pytest

from mww.model.weights import fold_batch_norm


def test_fold_batch_norm_over_concatenated_convolutions():
    rng = np.random.default_rng(3)
    kernels = [rng.normal(size=(3, 1, 4, 2)), rng.normal(size=(5, 1, 4, 3))]
    gamma, beta = rng.uniform(0.5, 2, 5), rng.normal(size=5)
    mean, var = rng.normal(size=5), rng.uniform(0.5, 2, 5)
    folded, bias = fold_batch_norm(kernels, [gamma, beta, mean, var], 1e-3)
    conv_out = rng.normal(size=(7, 5))  # any pre-BN activations of the concatenated channels
    scale = gamma / np.sqrt(var + 1e-3)
    expected = (conv_out - mean) * scale + beta
    np.testing.assert_allclose(conv_out * scale + bias, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(folded[0], kernels[0] * scale[:2], rtol=1e-6)
    np.testing.assert_allclose(folded[1], kernels[1] * scale[2:], rtol=1e-6)
    with pytest.raises(ValueError):
        fold_batch_norm(kernels[:1], [gamma, beta, mean, var], 1e-3)
