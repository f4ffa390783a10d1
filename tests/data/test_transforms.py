"""Tests for mww.data.transforms: the audiomentations chain and its noise levels (the features it
gives, through the variant store: test_augment.py)."""

import dataclasses

import numpy as np
import pytest

from mww.config.schema import AUGMENTATION_NAMES
from mww.data.transforms import build_augmenter, snr_shift_db
from mww.device.constants import SAMPLE_RATE_HZ
from tests.conftest import tone, write
from tests.data.test_augment import config


def test_noise_in_a_padded_signal_is_as_loud_as_in_the_signal_alone(tmp_path):
    """SNRs against the signal's own power: padding it with silence must not make the noise quieter."""
    assert snr_shift_db(4000, 1000) == pytest.approx(10 * np.log10(4.0))
    assert snr_shift_db(4000, None) == snr_shift_db(4000, 4000) == 0.0
    rng = np.random.default_rng(0)
    noise_file = write(
        tmp_path / "noise.wav", (0.1 * rng.standard_normal(3 * SAMPLE_RATE_HZ)).astype(np.float32)
    )
    cfg = config(tmp_path, enabled=True, background_min_snr_db=10.0, background_max_snr_db=10.0)
    only_noise = {name: 0.0 for name in AUGMENTATION_NAMES} | {"AddBackgroundNoise": 1.0}
    augment = build_augmenter(
        dataclasses.replace(cfg.augmentation, **only_noise), [noise_file], [], warn=False
    )
    signal = tone(0.5, 500.0)
    padded = np.concatenate([np.zeros(3 * signal.shape[0], np.float32), signal])

    def noise_rms(samples: np.ndarray, signal_samples: int | None = None) -> float:
        mixed = augment(samples, signal_samples) if signal_samples else augment(samples)
        return float(np.sqrt(np.mean((mixed - samples) ** 2)))

    alone, diluted, held = noise_rms(signal), noise_rms(padded), noise_rms(padded, signal.shape[0])
    print(
        f"\nnoise RMS at 10 dB SNR: signal alone {alone:.4f}, padded to 4x {diluted:.4f}, padded with "
        f"signal_samples {held:.4f}"
    )
    assert held == pytest.approx(alone, rel=0.02)
    assert diluted == pytest.approx(alone / 2, rel=0.02)  # 4x the samples, a quarter of the power
    assert noise_rms(padded, signal.shape[0]) == pytest.approx(held, rel=0.02)  # the settings were restored
    assert augment.noise[0].min_snr_db == 10.0
