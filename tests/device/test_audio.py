import numpy as np
import pytest
import soundfile as sf

from mww.device.audio import TRIM_KEEP_S, AudioError, load_audio, resample, sound_end, to_pcm16, write_wav
from mww.device.constants import SAMPLE_RATE_HZ
from tests.conftest import tone, write


def test_resample_44k1_keeps_duration_and_frequency(tmp_path):
    path = write(tmp_path / "a.wav", tone(1.0, 1000.0, rate=44100), rate=44100)
    samples = load_audio(path)
    assert samples.dtype == np.float32
    assert abs(samples.size - SAMPLE_RATE_HZ) <= 1
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE_HZ / samples.size
    assert abs(peak_hz - 1000.0) < 2.0


def test_resample_is_antialiased():
    # 7 kHz at 48 kHz is above the 8 kHz Nyquist? no: keep it below; 12 kHz must vanish.
    x = tone(1.0, 12000.0, rate=48000, amp=0.5)
    y = resample(x, 48000)
    assert np.sqrt(np.mean(y**2)) < 0.01


def test_stereo_is_mixed_to_mono(tmp_path):
    left = tone(0.5, 300.0)
    right = -left
    path = tmp_path / "st.wav"
    sf.write(str(path), np.stack([left, right], axis=1), SAMPLE_RATE_HZ, subtype="PCM_16")
    mono = load_audio(path)
    assert mono.ndim == 1
    assert np.max(np.abs(mono)) < 1e-3  # opposite channels cancel


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_int_and_float_files_read_the_same(tmp_path, subtype):
    x = tone(0.3, 500.0)
    path = write(tmp_path / f"{subtype}.wav", x, subtype=subtype)
    assert np.max(np.abs(load_audio(path) - x)) < 1e-3


def test_flac_and_ogg_are_read(tmp_path):
    x = tone(0.5, 500.0)
    for ext in ("flac", "ogg"):
        path = tmp_path / f"a.{ext}"
        sf.write(
            str(path), x, SAMPLE_RATE_HZ, format=ext.upper(), subtype="VORBIS" if ext == "ogg" else "PCM_16"
        )
        assert abs(load_audio(path).size - x.size) < 2000


def test_corrupt_file_raises_audio_error(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert info.value.reason == "unreadable"


def test_write_wav_is_atomic_and_pcm16(tmp_path):
    target = write_wav(tmp_path / "sub" / "x.wav", tone(0.2))
    assert sf.info(str(target)).subtype == "PCM_16"
    assert [p.name for p in target.parent.iterdir()] == ["x.wav"]  # no temp file left


def test_to_pcm16_clips_and_undoes_reading_16_bit_audio_as_floats():
    assert to_pcm16(np.array([2.0, 1.0, -1.0, -2.0, 0.0], np.float32)).tolist() == [
        32767,
        32767,
        -32768,
        -32768,
        0,
    ]
    every = np.arange(-32768, 32768, dtype=np.int16)
    np.testing.assert_array_equal(to_pcm16(every.astype(np.float32) / 32768), every)


def _phrase_then(silence_s: float, noise_rms: float = 0.0, seed: int = 0) -> tuple[np.ndarray, int]:
    """0.2 s of quiet lead-in, a 0.6 s "phrase" (a tone whose last 0.1 s fades), then silence;
    returns the audio and the sample where the phrase ends."""
    rng = np.random.default_rng(seed)
    phrase = tone(0.6, 440.0, amp=0.3)
    phrase[-1600:] *= np.linspace(1.0, 0.0, 1600)
    audio = np.concatenate([np.zeros(3200), phrase, np.zeros(round(silence_s * SAMPLE_RATE_HZ))])
    audio = audio + rng.normal(0.0, noise_rms, audio.size) if noise_rms else audio
    return audio.astype(np.float32), 3200 + phrase.size


@pytest.mark.parametrize("noise_rms", [0.0, 1e-4, 3e-3], ids=["digital silence", "quiet room", "noisy room"])
@pytest.mark.parametrize("silence_s", [0.0, 0.4, 1.7])
def test_sound_end_finds_where_the_phrase_stops_whatever_silence_follows(silence_s, noise_rms):
    audio, phrase_end = _phrase_then(silence_s, noise_rms)
    end = sound_end(audio)
    keep = round(TRIM_KEEP_S * SAMPLE_RATE_HZ)
    after_ms = (end - phrase_end) * 1000 / SAMPLE_RATE_HZ
    print(f"\n{silence_s} s of silence, noise rms {noise_rms}: sound ends {after_ms:.0f} ms after the phrase")
    if silence_s == 0.0:
        assert end == audio.size
    else:  # the fading tail counts as sound until it is 40 dB down (or 10 dB above the noise)
        assert phrase_end - 1600 <= end <= phrase_end + keep + 160


def test_sound_end_leaves_clips_it_cannot_read_alone():
    rng = np.random.default_rng(1)
    hiss = rng.normal(0.0, 0.05, SAMPLE_RATE_HZ * 3 // 2)
    loud_noise = (tone(1.5, 440.0, amp=0.05) + hiss).astype(np.float32)
    assert sound_end(loud_noise) == loud_noise.size  # noise floor within 20 dB of the peak
    assert sound_end(np.zeros(100, np.float32)) == 100  # shorter than two frames
    audio, phrase_end = _phrase_then(1.0)
    assert sound_end(audio[: phrase_end + 50]) == phrase_end + 50  # nothing after it to trim
