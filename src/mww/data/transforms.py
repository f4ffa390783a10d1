"""The waveform augmentation chain: audiomentations transforms run at the device sample rate.

`build_augmenter` turns the augmentation section into a callable waveform -> waveform: a parametric
EQ, distortion, pitch shift, band-stop filter, coloured noise, background noise from recordings, gain
and room impulse responses, each with its configured probability, in that order. Noise SNRs can be
held against the signal alone when it is padded with silence (`snr_shift_db`). Background noise and
room impulse responses are skipped, with a warning, where there are no files for them.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mww.config.schema import AugmentationConfig
from mww.device.constants import SAMPLE_RATE_HZ

logger = logging.getLogger(__name__)

# Ranges of the transforms whose ranges the config does not set (openWakeWord / microWakeWord values).
TRANSFORM_RANGES: dict[str, Any] = {
    "eq_gain_db": 6.0,
    "tanh_distortion": [0.0001, 0.10],
    "pitch_semitones": 3.0,
    "color_noise_snr_db": [10.0, 30.0],
    "gain_db": [-12.0, 0.0],
}


class _Augmenter:
    """An audiomentations Compose applied at the device sample rate, its warnings silenced."""

    def __init__(self, compose: Any) -> None:
        import audiomentations as am

        self.compose = compose
        noises = (am.AddBackgroundNoise, am.AddColorNoise)
        self.noise = [t for t in compose.transforms if isinstance(t, noises)]

    def __call__(self, samples: np.ndarray, signal_samples: int | None = None) -> np.ndarray:
        """Augment `samples`. With `signal_samples`, noise SNRs are against the power of the signal
        alone (that many samples; the rest is silence), not of the whole input."""
        x = np.asarray(samples, dtype=np.float32)
        shift = snr_shift_db(x.shape[0], signal_samples)
        bounds = [(t.min_snr_db, t.max_snr_db) for t in self.noise]
        for t in self.noise:
            t.min_snr_db, t.max_snr_db = t.min_snr_db - shift, t.max_snr_db - shift
        try:
            with warnings.catch_warnings():
                # "too silent to be added as noise" and resampling notes, once per clip otherwise.
                warnings.simplefilter("ignore")
                out = self.compose(samples=x, sample_rate=SAMPLE_RATE_HZ)
        finally:
            for t, (low, high) in zip(self.noise, bounds, strict=True):
                t.min_snr_db, t.max_snr_db = low, high
        return np.asarray(out, dtype=np.float32)


def snr_shift_db(total_samples: int, signal_samples: int | None) -> float:
    """How much lower an SNR against the power of `total_samples` (the signal padded with silence)
    is than the same noise against the power of the `signal_samples` of signal alone."""
    if not signal_samples or signal_samples >= total_samples:
        return 0.0
    return 10.0 * math.log10(total_samples / signal_samples)


def _identity(samples: np.ndarray, signal_samples: int | None = None) -> np.ndarray:
    return np.asarray(samples, dtype=np.float32)


def missing_source_warnings(
    aug_cfg: AugmentationConfig, background_files: Sequence[Path], rir_files: Sequence[Path]
) -> list[str]:
    """One message per enabled transform that is skipped because it has no files."""
    if not aug_cfg.enabled:
        return []
    messages = []
    if aug_cfg.AddBackgroundNoise > 0 and not background_files:
        messages.append(
            f"AddBackgroundNoise (probability {aug_cfg.AddBackgroundNoise}) is skipped: no background audio "
            "was found in paths.background_dir or augmentation.background_paths. Add ambient noise "
            "recordings there to train a model that copes with noise."
        )
    if aug_cfg.RIR > 0 and not rir_files:
        messages.append(
            f"RIR (probability {aug_cfg.RIR}) is skipped: no room impulse responses were found in "
            "paths.rir_dir or augmentation.impulse_paths. Add impulse responses there to simulate rooms."
        )
    return messages


def build_augmenter(
    aug_cfg: AugmentationConfig,
    background_files: Sequence[str | Path],
    rir_files: Sequence[str | Path],
    *,
    warn: bool = True,
) -> Callable[..., np.ndarray]:
    """A callable float32 waveform -> augmented waveform (same length) for the config's settings.

    Its optional second argument, the number of samples of actual signal in a waveform padded with
    silence, makes noise SNRs hold against that signal's power (see `_Augmenter`).

    Each transform runs with its configured probability; background noise and room impulse
    responses are skipped, with a logged warning, when there are no files for them.
    `enabled: false` gives the identity.
    """
    if not aug_cfg.enabled:
        return _identity
    import audiomentations as am

    p = aug_cfg.probabilities()
    r = TRANSFORM_RANGES
    transforms: list[Any] = [
        am.SevenBandParametricEQ(
            min_gain_db=-r["eq_gain_db"], max_gain_db=r["eq_gain_db"], p=p["SevenBandParametricEQ"]
        ),
        am.TanhDistortion(
            min_distortion=r["tanh_distortion"][0],
            max_distortion=r["tanh_distortion"][1],
            p=p["TanhDistortion"],
        ),
        am.PitchShift(
            min_semitones=-r["pitch_semitones"], max_semitones=r["pitch_semitones"], p=p["PitchShift"]
        ),
        am.BandStopFilter(p=p["BandStopFilter"]),
        am.AddColorNoise(
            min_snr_db=r["color_noise_snr_db"][0],
            max_snr_db=r["color_noise_snr_db"][1],
            p=p["AddColorNoise"],
        ),
    ]
    if background_files:
        transforms.append(
            am.AddBackgroundNoise(
                sounds_path=[str(path) for path in background_files],
                min_snr_db=aug_cfg.background_min_snr_db,
                max_snr_db=aug_cfg.background_max_snr_db,
                p=p["AddBackgroundNoise"],
            )
        )
    transforms.append(am.Gain(min_gain_db=r["gain_db"][0], max_gain_db=r["gain_db"][1], p=p["Gain"]))
    if rir_files:
        transforms.append(
            am.ApplyImpulseResponse(
                ir_path=[str(path) for path in rir_files], p=p["RIR"], leave_length_unchanged=True
            )
        )
    if warn:
        for message in missing_source_warnings(aug_cfg, list(background_files), list(rir_files)):
            logger.warning(message)
    return _Augmenter(am.Compose(transforms, p=1.0, shuffle=False))
