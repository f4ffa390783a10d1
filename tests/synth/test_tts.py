"""Offline speech synthesis through libespeak-ng (espeakng-loader): real synthesis, no network."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from mww.device.constants import SAMPLE_RATE_HZ
from mww.synth import tts

pytest.importorskip("espeakng_loader")

TEXT = "hey computer"


def _seconds(samples: np.ndarray) -> float:
    return samples.size / SAMPLE_RATE_HZ


def test_synthesis_is_float32_speech_at_the_device_rate():
    audio = tts.synthesize(TEXT, "en-us+f3")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.4 < _seconds(audio) < 2.5
    assert 0.05 < float(np.max(np.abs(audio))) <= 1.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01
    # trimmed: no long silence at either end, but about 50 ms of pad is kept
    edge = int(0.2 * SAMPLE_RATE_HZ)
    assert np.max(np.abs(audio[:edge])) > 0.01 and np.max(np.abs(audio[-edge:])) > 0.01
    assert np.max(np.abs(audio[: int(0.01 * SAMPLE_RATE_HZ)])) < 0.05


def test_the_same_call_gives_the_same_samples():
    first = tts.synthesize(TEXT, "en-gb-x-rp+m3", rate_wpm=160, pitch=45)
    tts.synthesize("something else in between", "en-us+whisper")
    second = tts.synthesize(TEXT, "en-gb-x-rp+m3", rate_wpm=160, pitch=45)
    assert np.array_equal(first, second)


def test_synthesis_is_the_same_in_a_fresh_process():
    audio = tts.synthesize(TEXT, "en-us+klatt", rate_wpm=190, pitch=60)
    code = (
        "import hashlib; from mww.synth import tts; "
        "a = tts.synthesize('hey computer', 'en-us+klatt', rate_wpm=190, pitch=60); "
        "print(hashlib.sha256(a.tobytes()).hexdigest())"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == hashlib.sha256(audio.tobytes()).hexdigest()


def test_voices_pitch_and_rate_change_the_audio():
    base = tts.synthesize(TEXT, "en-us+f3")
    other_voice = tts.synthesize(TEXT, "en-gb-scotland+m1")
    higher = tts.synthesize(TEXT, "en-us+f3", pitch=90)
    assert not np.array_equal(base[: other_voice.size], other_voice[: base.size])
    assert not np.array_equal(base[: higher.size], higher[: base.size])
    slow = tts.synthesize(TEXT, "en-us", rate_wpm=100)
    fast = tts.synthesize(TEXT, "en-us", rate_wpm=350)
    assert _seconds(slow) > 1.5 * _seconds(fast)


def test_english_voices_combine_accents_and_variants():
    voices = tts.list_english_voices()
    assert voices == sorted(voices) and len(voices) == len(set(voices))
    assert {"en-us", "en-us+f3", "en-us+m1", "en-gb-x-rp+klatt"} <= set(voices)
    assert all(v.startswith("en") and not v.startswith("en-shaw") for v in voices)
    accents = {v.partition("+")[0] for v in voices}
    variants = {v.partition("+")[2] for v in voices}
    assert len(accents) >= 5 and len(variants) > 50
    for voice in ("en+f1", "en-029+croak", "en-us-nyc"):  # a few from the list really speak
        assert voice in voices and tts.synthesize("hello", voice).size > 0


@pytest.mark.parametrize(
    ("text", "voice", "kwargs", "match"),
    [
        ("", "en-us", {}, "empty"),
        ("hello", "en-us+nosuchvariant", {}, "variant"),
        ("hello", "xx-nowhere", {}, "unknown espeak voice"),
        ("hello", "en-us", {"rate_wpm": 5}, "rate_wpm"),
        ("hello", "en-us", {"pitch": 101}, "pitch"),
    ],
)
def test_bad_arguments_are_refused(text, voice, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tts.synthesize(text, voice, **kwargs)


def test_phonemes_identify_sound_alikes():
    hey, hay, commuter = tts.phonemize(["hey computer", "hay computer", "hey commuter"])
    assert hey and hey == hay and hey != commuter


def test_a_missing_library_is_a_clear_runtime_error(monkeypatch, tmp_path):
    import espeakng_loader

    monkeypatch.setattr(espeakng_loader, "get_library_path", lambda: str(tmp_path / "libespeak-ng.so"))
    tts._library_files.cache_clear()
    tts._english_voices.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="espeakng-loader") as info:
            tts.synthesize("hello", "en-us")
        assert isinstance(info.value, tts.TTSUnavailableError)
        with pytest.raises(tts.TTSUnavailableError):
            tts.list_english_voices()
    finally:
        monkeypatch.undo()
        tts._library_files.cache_clear()
        tts._english_voices.cache_clear()
    assert tts.synthesize("hello", "en-us").size > 0
