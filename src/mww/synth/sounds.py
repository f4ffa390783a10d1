"""The sounds of the dataset, as float arrays at the device sample rate: spoken clips placed in silence,
coloured noise, mains hum, babble, their mixtures, room impulse responses, and long ambient stretches
of speech over noise. Every function draws only from the generator it is given, in a fixed order, so
a seed gives the same samples."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.signal import lfilter

from mww.device.constants import SAMPLE_RATE_HZ
from mww.synth import piper, tts

RATE_WPM = (130, 220)
PITCH = (25, 75)
PITCH_RANGE = (20, 80)
# Piper: slower or faster speech, and how much the voice and the phoneme timing vary (the voices'
# own defaults are 1.0, 0.667 and 0.8)
LENGTH_SCALE = (0.8, 1.3)
NOISE_SCALE = (0.4, 0.9)
NOISE_W = (0.5, 1.0)
PEAK_DBFS = (-12.0, -1.0)
BACKGROUND_RMS_DBFS = (-35.0, -15.0)
BACKGROUND_KINDS = ("white", "pink", "brown", "hum", "babble", "mixture")
BABBLE_TALKERS = (4, 8)
AMBIENT_GAP_SECONDS = (0.5, 5.0)
AMBIENT_SNR_DB = (5.0, 25.0)
AMBIENT_NOISE_RMS_DBFS = (-55.0, -42.0)
PEAK_LIMIT = 0.95


def _db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _unit_rms(x: np.ndarray) -> np.ndarray:
    level = _rms(x)
    return x / level if level > 0 else x


def _limit_peak(x: np.ndarray, peak: float = PEAK_LIMIT) -> np.ndarray:
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return x * (peak / top) if top > peak else x


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise with power falling as 1/f**exponent: 0 white, 1 pink, 2 brown (flat below 20 Hz)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE_HZ), 20.0)
    spectrum *= freqs ** (-exponent / 2.0)
    return _unit_rms(np.fft.irfft(spectrum, n))


def mains_hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS mains hum: 50 or 60 Hz and harmonics at random levels, over a faint noise floor."""
    base = float(rng.choice([50.0, 60.0]))
    t = np.arange(n) / SAMPLE_RATE_HZ
    hum = np.zeros(n)
    for harmonic in range(1, int(rng.integers(4, 9)) + 1):
        level = rng.uniform(0.1, 1.0) * harmonic ** -rng.uniform(0.3, 1.2)
        hum += level * np.sin(2 * np.pi * base * harmonic * t + rng.uniform(0, 2 * np.pi))
    return _unit_rms(_unit_rms(hum) + _db_to_gain(rng.uniform(-45.0, -25.0)) * rng.standard_normal(n))


def room_impulse_response(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A synthetic RIR: direct-path impulse, a few early reflections, an exponentially decaying tail.

    The tail is low-passed noise decaying by 60 dB over `rt60` seconds; the result has unit peak.
    """
    n = int((rt60 * 1.2 + 0.05) * SAMPLE_RATE_HZ)
    direct = int(rng.uniform(0.001, 0.004) * SAMPLE_RATE_HZ)
    after = np.maximum(np.arange(n) - direct, 0) / SAMPLE_RATE_HZ
    envelope = np.exp(-np.log(1000.0) * after / rt60) * (1.0 - np.exp(-after / rng.uniform(0.002, 0.008)))
    smoothing = rng.uniform(0.2, 0.7)  # air and wall absorption: the tail loses treble
    tail = lfilter([1.0 - smoothing], [1.0, -smoothing], rng.standard_normal(n)) * envelope
    direct_to_reverb_db = rng.uniform(-6.0, 9.0)
    tail *= math.sqrt(_db_to_gain(-direct_to_reverb_db) ** 2 / max(float(np.sum(tail**2)), 1e-12))
    response = tail
    response[direct] += 1.0
    for _ in range(int(rng.integers(3, 7))):
        delay = direct + int(rng.uniform(0.002, 0.035) * SAMPLE_RATE_HZ)
        if delay < n:
            response[delay] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.7)
    return response / np.max(np.abs(response))


def _voice_params(rng: np.random.Generator) -> dict[str, int]:
    return {
        "rate_wpm": int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1)),
        "pitch": int(rng.integers(PITCH[0], PITCH[1] + 1)),
        "pitch_range": int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
    }


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _piper_params(rng: np.random.Generator) -> dict[str, float]:
    return {
        "length_scale": float(rng.uniform(*LENGTH_SCALE)),
        "noise_scale": float(rng.uniform(*NOISE_SCALE)),
        "noise_w": float(rng.uniform(*NOISE_W)),
        "seed": int(rng.integers(2**31 - 1)),
    }


def _speak(rng: np.random.Generator, text: str, voice: str) -> np.ndarray:
    if piper.is_piper(voice):
        return piper.synthesize(text, voice, **_piper_params(rng)).astype(np.float64)
    return tts.synthesize(text, voice, **_voice_params(rng)).astype(np.float64)


def babble(rng: np.random.Generator, n: int, voices: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """Unit-RMS babble: 4-8 talkers with different voices, each speaking sentences back to back."""
    mix = np.zeros(n)
    talkers = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
    for voice in rng.choice(np.array(voices), size=min(talkers, len(voices)), replace=False):
        talker = np.zeros(n)
        position = -int(rng.uniform(0.0, 1.5) * SAMPLE_RATE_HZ)
        while position < n:
            speech = _speak(rng, _pick(rng, texts), str(voice))
            start, end = max(position, 0), min(position + speech.size, n)
            if end > start:
                talker[start:end] += speech[start - position : end - position]
            position += speech.size + int(rng.uniform(0.05, 0.4) * SAMPLE_RATE_HZ)
        mix += _unit_rms(talker) * _db_to_gain(rng.uniform(-6.0, 0.0))
    return _unit_rms(mix)


def _background(
    rng: np.random.Generator, kind: str, n: int, voices: Sequence[str], texts: Sequence[str]
) -> np.ndarray:
    if kind == "mixture":
        parts = rng.choice(np.array(BACKGROUND_KINDS[:-1]), size=int(rng.integers(2, 4)), replace=False)
        mix = sum(
            _background(rng, str(p), n, voices, texts) * _db_to_gain(rng.uniform(-12.0, 0.0)) for p in parts
        )
        return _unit_rms(np.asarray(mix))
    if kind == "hum":
        return mains_hum(rng, n)
    if kind == "babble":
        return babble(rng, n, voices, texts)
    return colored_noise(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])


def _place(
    rng: np.random.Generator, speech: np.ndarray, seconds: tuple[float, float], crop: bool
) -> np.ndarray:
    """Pad speech with silence to a random length in `seconds`; longer speech is cropped or kept whole."""
    shortest, longest = (int(s * SAMPLE_RATE_HZ) for s in seconds)
    if speech.size >= longest:
        if not crop:
            return speech
        fade = np.linspace(1.0, 0.0, SAMPLE_RATE_HZ // 50)
        clip = speech[:longest].copy()
        clip[-fade.size :] *= fade
        return clip
    total = int(rng.integers(max(shortest, speech.size), longest + 1))
    lead = int(rng.integers(0, total - speech.size + 1))
    clip = np.zeros(total)
    clip[lead : lead + speech.size] = speech
    return clip


def speech_clip(
    rng: np.random.Generator, text: str, voice: str, seconds: tuple[float, float], crop: bool
) -> np.ndarray:
    """`text` said by `voice` at a random rate and pitch, placed in silence (`_place`), peak in PEAK_DBFS."""
    speech = _speak(rng, text, voice)
    clip = _place(rng, speech, seconds, crop)
    clip *= _db_to_gain(rng.uniform(*PEAK_DBFS)) / max(float(np.max(np.abs(clip))), 1e-9)
    return clip


def background_clip(
    rng: np.random.Generator, kind: str, n: int, voices: Sequence[str], texts: Sequence[str]
) -> np.ndarray:
    """`n` samples of background `kind` (one of BACKGROUND_KINDS) at an RMS level in BACKGROUND_RMS_DBFS."""
    noise = _background(rng, kind, n, voices, texts)
    return _limit_peak(noise * _db_to_gain(rng.uniform(*BACKGROUND_RMS_DBFS)))


def ambient_audio(
    rng: np.random.Generator, n: int, voices: Sequence[str], texts: Sequence[str]
) -> np.ndarray:
    """`n` samples of a quiet room: a noise bed (sometimes with hum) and sentences from `texts` said by
    random `voices`, AMBIENT_GAP_SECONDS apart, AMBIENT_SNR_DB above the noise."""
    bed = colored_noise(rng, n, rng.uniform(0.5, 2.0))
    if rng.random() < 0.5:
        bed = _unit_rms(bed + mains_hum(rng, n) * _db_to_gain(rng.uniform(-20.0, -6.0)))
    noise_rms = _db_to_gain(rng.uniform(*AMBIENT_NOISE_RMS_DBFS))
    audio = bed * noise_rms
    position = int(rng.uniform(*AMBIENT_GAP_SECONDS) * SAMPLE_RATE_HZ)
    while position < n:
        speech = _speak(rng, str(rng.choice(np.array(texts))), str(rng.choice(np.array(voices))))
        if position + speech.size > n:
            break
        gain = noise_rms * _db_to_gain(rng.uniform(*AMBIENT_SNR_DB)) / max(_rms(speech), 1e-9)
        audio[position : position + speech.size] += speech * gain
        position += speech.size + int(rng.uniform(*AMBIENT_GAP_SECONDS) * SAMPLE_RATE_HZ)
    return _limit_peak(audio)
