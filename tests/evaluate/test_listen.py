"""mww-detect: the device's path on files and a (simulated) microphone, checked against pymicro-wakeword
on espeak speech of the official models' wake words, and every bad input refused in one paragraph."""

from __future__ import annotations

import importlib.resources
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from mww.atomic import atomic_write_bytes, atomic_write_json
from mww.cli.detect import main
from mww.device import constants as C
from mww.device.audio import to_pcm16, write_wav
from mww.device.runtime import (
    DeviceStream,
    invocation_seconds,
    load_wake_word_model,
    pcm16_outputs,
    read_device_pcm16,
    read_device_pcm16_blocks,
)
from mww.evaluate.listen import LiveDetector, detect_files, detect_pcm16

STEP_S = C.STREAMING_STRIDE * C.WINDOW_STEP_MS / 1000  # one invocation: 30 ms
LEAD_S = 1.5  # silence before the first phrase: the device does not detect in its first second
GAP_S = 3.0
NOISE = 0.003
# Voices whose espeak rendering the official model hears clearly (measured max window means 0.93-0.996).
SPOKEN = {
    "okay_nabu": ("okay nabu", ("en-us+m1", "en-us+m3", "en-gb-x-rp+m3")),
    "alexa": ("alexa", ("en-us+m1", "en-us+klatt", "en-gb-x-rp+f2")),
}


def official(name: str) -> Path:
    return Path(str(importlib.resources.files("pymicro_wakeword") / "models" / f"{name}.json"))


def speech(phrase: str, voices: tuple[str, ...], lead_s: float = LEAD_S, seed: int = 0) -> np.ndarray:
    """The phrase once per voice, after `lead_s` s and with GAP_S s between, in quiet white noise."""
    from mww.synth import tts

    rng = np.random.default_rng(seed)

    def noise(seconds: float) -> np.ndarray:
        return (NOISE * rng.standard_normal(round(seconds * C.SAMPLE_RATE_HZ))).astype(np.float32)

    parts = [noise(lead_s)]
    for voice in voices:
        spoken = tts.synthesize(phrase, voice, rate_wpm=160)
        parts += [spoken + noise(spoken.size / C.SAMPLE_RATE_HZ), noise(GAP_S)]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def spoken_wavs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("speech")
    return {
        name: write_wav(folder / f"{name}.wav", speech(phrase, voices))
        for name, (phrase, voices) in SPOKEN.items()
    }


def run(capsys, args: list[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, " ".join(captured.err.split())


def run_json(capsys, args: list[str]) -> dict:
    code, out, err = run(capsys, [*args, "--json"])
    assert code == 0, err
    return json.loads(out)


def pymicro_rising_edges(manifest: Path, pcm16: np.ndarray, cutoff: float | None = None) -> list[tuple]:
    """(time, window mean) where pymicro-wakeword's True output starts: it averages the float outputs
    and compares with the cutoff on every invocation, with no start-up or refractory suppression."""
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures

    detector = MicroWakeWord.from_config(manifest)
    try:
        if cutoff is not None:
            detector.probability_cutoff = cutoff
        frames = MicroWakeWordFeatures().process_streaming(pcm16.astype("<i2").tobytes())
        probabilities = [detector.process_streaming_prob(f) for f in frames]
        stride, threshold = detector.stride, detector.probability_cutoff
    finally:
        detector.close()
    invoked = np.array(probabilities[stride - 1 :: stride], dtype=np.float64)  # one per invocation
    above = invoked > threshold
    edges = np.flatnonzero(above & ~np.r_[False, above[:-1]])
    return [(float(invocation_seconds(int(k), stride)), float(invoked[k])) for k in edges]


def first_of_each_event(edges: list[tuple], apart_s: float = 1.5) -> list[tuple]:
    """Rising edges closer than `apart_s` to the previous kept one belong to the same utterance."""
    kept: list[tuple] = []
    for edge in edges:
        if not kept or edge[0] - kept[-1][0] > apart_s:
            kept.append(edge)
    return kept


# --------------------------------------------------------------------------- agreement with pymicro-wakeword


@pytest.mark.parametrize("cutoff", [None, 0.6], ids=["manifest-cutoff", "cutoff-0.6"])
@pytest.mark.parametrize("name", list(SPOKEN))
def test_detection_times_agree_with_pymicro_wakeword(spoken_wavs, capsys, name, cutoff):
    manifest, wav = official(name), spoken_wavs[name]
    flags = [] if cutoff is None else ["--cutoff", cutoff]
    report = run_json(capsys, [manifest, wav, *flags])
    ours = [(d["time_s"], d["probability"]) for d in report["files"][0]["detections"]]
    pcm, _ = sf.read(str(wav), dtype="int16")
    edges = pymicro_rising_edges(manifest, pcm, cutoff)
    theirs = first_of_each_event(edges)
    used = report["model"]["probability_cutoff"]
    report_line = (
        f"\n{name} (cutoff {used}, device {report['model']['cutoff_u8']}/255): mww-detect "
        f"{[(f'{t:.3f} s', f'{p:.3f}') for t, p in ours]}; pymicro-wakeword rising edges "
        f"{[(f'{t:.3f} s', f'{p:.3f}') for t, p in edges]}"
    )
    with capsys.disabled():
        print(report_line)
    assert len(ours) == len(SPOKEN[name][1])  # one detection per spoken phrase
    assert len(theirs) == len(ours)
    differences = [abs(a[0] - b[0]) for a, b in zip(ours, theirs, strict=True)]
    with capsys.disabled():
        print(f"{name}: largest time difference {max(differences) * 1000:.0f} ms")
    assert max(differences) <= STEP_S + 1e-9
    for (_, ours_p), (_, theirs_p) in zip(ours, theirs, strict=True):
        assert ours_p > used - 1 / 255 and theirs_p > used  # both fired above (the device's) cutoff
    # The report's own Home Assistant column reproduces pymicro-wakeword's rising edges.
    home_assistant = report["files"][0]["home_assistant_s"]
    with capsys.disabled():
        print(f"{name}: Home Assistant column {home_assistant}")
    assert len(home_assistant) == len(edges)
    assert all(abs(a - b[0]) <= STEP_S + 1e-9 for a, b in zip(home_assistant, edges, strict=True))


def test_human_report_lists_each_detection_with_time_and_probability(spoken_wavs, capsys):
    manifest, wav = official("okay_nabu"), spoken_wavs["okay_nabu"]
    code, out, _ = run(capsys, [manifest, wav])
    assert code == 0
    expected = detect_files(load_wake_word_model(manifest), [wav])[0].detections
    assert len(expected) == 3
    assert "probability_cutoff 0.85" in out and "216/255" in out
    assert f"{wav}  " in out and "3 detections" in out
    for detection in expected:
        assert f"{detection.time_s:9.3f} s  probability {detection.probability:.3f}" in out
    assert "Total: 3 detections in 1 file" in out


def test_window_override_and_a_cutoff_nothing_reaches(spoken_wavs, capsys):
    manifest, wav = official("okay_nabu"), spoken_wavs["okay_nabu"]
    report = run_json(capsys, [manifest, wav, "--cutoff", "1.0", "--window", "3"])
    assert report["model"]["sliding_window_size"] == 3 and report["model"]["probability_cutoff"] == 1.0
    result = report["files"][0]
    assert result["detections"] == [] and 0.9 < result["peak_probability"] <= 1.0
    code, out, _ = run(capsys, [manifest, wav, "--cutoff", "1.0"])
    assert code == 0 and "no detection (highest window mean" in out


def test_tflite_without_manifest_uses_stated_defaults(spoken_wavs, capsys):
    tflite, wav = official("alexa").with_suffix(".tflite"), spoken_wavs["alexa"]
    code, out, err = run(capsys, ["--tflite", tflite, wav, "--json"])
    assert code == 0
    assert "no manifest: using probability_cutoff 0.97 and sliding_window_size 5" in err
    report = json.loads(out)
    assert report["model"]["manifest"] is None and report["model"]["probability_cutoff"] == 0.97
    with_manifest = run_json(capsys, [official("alexa"), wav, "--cutoff", "0.97"])
    assert report["files"][0]["detections"] == with_manifest["files"][0]["detections"]
    code, _, err = run(capsys, ["--tflite", tflite, wav, "--cutoff", "0.5", "--window", "2"])
    assert code == 0 and "no manifest" not in err


def test_start_up_suppression_is_explained_and_armed_lifts_it(tmp_path, capsys):
    wav = write_wav(tmp_path / "early.wav", speech("okay nabu", ("en-us+m1",), lead_s=0.05))
    manifest = official("okay_nabu")
    report = run_json(capsys, [manifest, wav])
    result = report["files"][0]
    assert result["detections"] == [] and result["suppressed_at_start_s"]
    _, out, _ = run(capsys, [manifest, wav])
    assert "start-up suppression" in out and "--armed" in out
    armed = run_json(capsys, [manifest, wav, "--armed"])
    times = [d["time_s"] for d in armed["files"][0]["detections"]]
    with capsys.disabled():
        print(f"\nphrase at 0.05 s: suppressed at start {result['suppressed_at_start_s']}, armed: {times}")
    assert times == result["suppressed_at_start_s"]


# --------------------------------------------------------------------------- streaming equals the file path


def test_streaming_in_pieces_equals_the_whole_file(spoken_wavs):
    model = load_wake_word_model(official("okay_nabu"))
    pcm = read_device_pcm16(spoken_wavs["okay_nabu"])
    expected_outputs = pcm16_outputs(model, pcm)
    expected = detect_pcm16(model, pcm).detections
    rng = np.random.default_rng(5)
    cuts = np.sort(rng.integers(0, pcm.size, 300))
    stream, live = DeviceStream(model), LiveDetector(model)
    outputs, found = [], []
    for i, piece in enumerate(np.split(pcm, cuts)):
        data = piece.astype("<i2").tobytes() if i % 2 else piece  # bytes and arrays alike
        outputs.append(stream.feed(data))
        found += live.feed(piece)
    np.testing.assert_array_equal(np.concatenate(outputs), expected_outputs)
    assert found == expected == live.detections and len(found) == 3
    assert stream.seconds_fed == pytest.approx(pcm.size / C.SAMPLE_RATE_HZ)


def test_float_path_of_the_runtime_is_the_same_device(spoken_wavs):
    """read_device_pcm16 gives the stored samples; the float path (load_audio, then to_pcm16) gives them
    back exactly, and finds the same detections."""
    from mww.device.runtime import audio_outputs, read_device_audio

    wav = spoken_wavs["okay_nabu"]
    model = load_wake_word_model(official("okay_nabu"))
    pcm = read_device_pcm16(wav)
    stored, _ = sf.read(str(wav), dtype="int16")
    np.testing.assert_array_equal(pcm, stored)
    floats = read_device_audio(wav)
    np.testing.assert_array_equal(floats, stored.astype(np.float32) / 32768)
    np.testing.assert_array_equal(to_pcm16(floats), stored)
    from mww.device.detection import detect

    settings = (model.probability_cutoff, model.sliding_window_size)
    assert detect(audio_outputs(model, floats), *settings) == detect(pcm16_outputs(model, pcm), *settings)


# --------------------------------------------------------------------------- microphone


class _FakeStream:
    """sounddevice.RawInputStream over a recording; Ctrl+C when the recording runs out."""

    def __init__(self, pcm: np.ndarray, opened: list, **settings) -> None:
        self.pcm, self.position = pcm, 0
        opened.append(settings)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def read(self, frames: int):
        if self.position >= self.pcm.size:
            raise KeyboardInterrupt
        block = self.pcm[self.position : self.position + frames]
        self.position += frames
        return memoryview(block.astype("<i2").tobytes()), False


def fake_sounddevice(pcm: np.ndarray | None, opened: list | None = None, broken: str | None = None):
    module = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    def query_devices(device=None, kind=None):
        if broken == "no-device":
            raise PortAudioError("Error querying device -1")
        return {"name": "Fake USB mic", "max_input_channels": 1}

    def check_input_settings(**settings):
        if broken == "no-16k":
            raise PortAudioError("Invalid sample rate [PaErrorCode -9997]")

    module.PortAudioError = PortAudioError
    module.query_devices = query_devices
    module.check_input_settings = check_input_settings
    module.RawInputStream = lambda **settings: _FakeStream(
        pcm, opened if opened is not None else [], **settings
    )
    return module


def test_mic_streams_through_one_device_start(spoken_wavs, capsys, monkeypatch):
    manifest, wav = official("okay_nabu"), spoken_wavs["okay_nabu"]
    pcm = read_device_pcm16(wav)
    opened: list = []
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(pcm, opened))
    report = run_json(capsys, [manifest, "--mic"])
    files = detect_files(load_wake_word_model(manifest), [wav])[0]
    assert opened == [
        {"samplerate": 16000, "blocksize": 480, "device": None, "channels": 1, "dtype": "int16"}
    ]
    assert report["device"] == "Fake USB mic"
    assert report["detections"] == [d.to_dict() for d in files.detections] and len(files.detections) == 3
    code, out, err = run(capsys, [manifest, "--mic", "--duration", "5", "--device", "2"])
    assert code == 0 and "listening on 'Fake USB mic'" in err
    early = [d for d in files.detections if d.time_s < 5]
    assert out.count("Okay Nabu  probability") == len(early) == 1
    assert "Heard 5.0 s on 'Fake USB mic': 1 detection" in out
    assert opened[-1]["device"] == 2


def test_mic_without_sounddevice_or_a_microphone_is_explained(capsys, monkeypatch):
    manifest = official("okay_nabu")
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import sounddevice -> ImportError
    code, out, err = run(capsys, [manifest, "--mic"])
    assert code == 2 and out == ""
    assert "not installed" in err and "pip install sounddevice" in err
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(None, broken="no-device"))
    code, _, err = run(capsys, [manifest, "--mic"])
    assert code == 2 and "No microphone was found" in err and "--device" in err
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(None, broken="no-16k"))
    code, _, err = run(capsys, [manifest, "--mic"])
    assert code == 2 and "Fake USB mic" in err and "16000 Hz mono 16-bit" in err


# --------------------------------------------------------------------------- bad input


def test_audio_in_another_format_is_refused_or_converted(spoken_wavs, tmp_path, capsys):
    manifest, wav = official("okay_nabu"), spoken_wavs["okay_nabu"]
    mono, _ = sf.read(str(wav), dtype="float32")
    stereo_44k = resample_poly(mono, 441, 160).astype(np.float32)
    other = tmp_path / "stereo_44k.wav"
    sf.write(str(other), np.stack([stereo_44k, stereo_44k], axis=1), 44100, subtype="PCM_16")
    code, out, err = run(capsys, [manifest, other])
    assert code == 2 and out == ""
    for part in (str(other), "44100 Hz", "2 channels", "16000 Hz mono 16-bit", "ffmpeg", "sox", "--convert"):
        assert part in err
    converted = run_json(capsys, [manifest, other, "--convert"])["files"][0]["detections"]
    original = run_json(capsys, [manifest, wav])["files"][0]["detections"]
    times = [(a["time_s"], b["time_s"]) for a, b in zip(converted, original, strict=False)]
    with capsys.disabled():
        print(f"\n(converted 44.1 kHz stereo, original) detection times: {times}")
    assert len(converted) == len(original) == 3
    assert all(abs(a - b) <= STEP_S + 1e-9 for a, b in times)

    float_wav = tmp_path / "float.wav"
    sf.write(str(float_wav), mono, 16000, subtype="FLOAT")
    code, _, err = run(capsys, [manifest, float_wav])
    assert code == 2 and "32 bit float" in err.lower()


def test_unreadable_and_missing_audio(tmp_path, capsys):
    manifest = official("okay_nabu")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00not a wave file at all")
    good = write_wav(tmp_path / "good.wav", np.zeros(16000, dtype=np.float32))
    code, out, err = run(capsys, [manifest, good, garbage])
    assert code == 2 and out == "" and str(garbage) in err and "could not be read" in err
    code, _, err = run(capsys, [manifest, tmp_path / "nope.wav"])
    assert code == 2 and "nope.wav does not exist" in err


def test_bad_models_and_manifests_exit_2_with_one_paragraph(tmp_path, capsys, make_wav):
    wav = make_wav(tmp_path / "tone.wav", seconds=2.0)

    code, _, err = run(capsys, [tmp_path / "missing.json", wav])
    assert code == 2 and "missing.json does not exist" in err

    manifest = json.loads(official("hey_jarvis").read_text())
    orphan = atomic_write_json(tmp_path / "orphan.json", manifest)
    code, _, err = run(capsys, [orphan, wav])
    assert code == 2 and "hey_jarvis.tflite" in err and "does not exist" in err

    not_json = tmp_path / "broken.json"
    not_json.write_text("{ not json")
    code, _, err = run(capsys, [not_json, wav])
    assert code == 2 and "could not be read as JSON" in err

    noise = atomic_write_bytes(tmp_path / "noise.tflite", np.random.default_rng(0).bytes(4000))
    code, _, err = run(capsys, ["--tflite", noise, wav])
    assert code == 2 and str(noise) in err

    float_model = float_tflite(tmp_path / "float_model.tflite")
    capsys.readouterr()  # the converter's own chatter
    code, out, err = run(capsys, ["--tflite", float_model, wav])
    assert code == 2 and out == ""
    assert "is not a streaming wake-word model" in err and "float32" in err and "mww-verify" in err


def float_tflite(path: Path) -> Path:
    """A tiny float Keras model (input [1, 3, 40], float output) converted to TFLite."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((C.STREAMING_STRIDE, C.MEL_BINS), batch_size=1),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    return atomic_write_bytes(path, tf.lite.TFLiteConverter.from_keras_model(model).convert())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "give the model's manifest"),
        (["model.json"], "give one or more audio files"),
        (["model.json", "a.wav", "--mic"], "not both"),
        (["model.json", "a.wav", "--device", "1"], "only apply with --mic"),
        (["notes.txt", "a.wav"], "must be the model's manifest"),
        (["--tflite", "m.tflite", "m.json", "a.wav"], "looks like a manifest"),
        (["model.json", "a.wav", "--cutoff", "1.5"], "not between 0 and 1"),
        (["model.json", "a.wav", "--window", "0"], "below 1"),
        (["model.json", "--mic", "--duration", "-3"], "positive number of seconds"),
    ],
)
def test_usage_errors_exit_2(capsys, args, expected):
    code, out, err = run(capsys, args)
    assert code == 2 and out == "" and expected in err and "--help" in err


def test_pcm16_of_a_float_file_with_convert_is_rounded_like_the_project(tmp_path):
    samples = (0.2 * np.sin(np.arange(8000) / 7.0)).astype(np.float32)
    path = tmp_path / "float.wav"
    sf.write(str(path), samples, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(read_device_pcm16(path, convert=True), to_pcm16(samples))


def test_a_cutoff_the_two_runtimes_read_differently_is_flagged(spoken_wavs, capsys):
    # 0.998: the ESP32 fires on a window of saturated outputs, Home Assistant never fires.
    args = [official("okay_nabu"), spoken_wavs["okay_nabu"], "--cutoff", "0.998"]
    report = run_json(capsys, args)
    code, out, _ = run(capsys, args)
    with capsys.disabled():
        print(f"\n{out}")
    assert code == 0
    assert "Warning   probability_cutoff 0.998 never fires in Home Assistant's pymicro-wakeword" in out
    assert report["files"][0]["home_assistant_s"] == []
    assert report["files"][0]["detections"]  # the ESP32 fires on this model's saturated outputs
    assert "would detect nothing: the two runtimes disagree on this file" in out


def test_where_the_runtimes_agree_no_note_is_printed(spoken_wavs, capsys):
    code, out, _ = run(capsys, [official("okay_nabu"), spoken_wavs["okay_nabu"]])
    assert code == 0 and "Warning" not in out and "disagree" not in out


# --------------------------------------------------------------------------- folders, links and long files


def test_a_folder_is_every_audio_file_under_it_through_links_each_real_file_once(
    spoken_wavs, tmp_path, capsys
):
    manifest = official("okay_nabu")
    elsewhere = tmp_path / "elsewhere" / "takes"
    elsewhere.mkdir(parents=True)
    for name, wav in spoken_wavs.items():
        (elsewhere / f"{name}.wav").write_bytes(wav.read_bytes())
    folder = tmp_path / "recordings"
    folder.mkdir()
    (folder / "mine").symlink_to(elsewhere, target_is_directory=True)
    (folder / "again").symlink_to(elsewhere, target_is_directory=True)  # the same folder twice
    (elsewhere / "loop").symlink_to(folder, target_is_directory=True)  # and a loop back
    via_folder = run_json(capsys, [manifest, folder])["files"]
    direct = run_json(capsys, [manifest, *sorted(elsewhere.glob("*.wav"))])["files"]
    with capsys.disabled():
        print(f"\nmww-detect on a folder with two links to one folder and a loop: {len(via_folder)} files")
    assert [Path(f["path"]).name for f in via_folder] == ["alexa.wav", "okay_nabu.wav"]
    assert [f["detections"] for f in via_folder] == [f["detections"] for f in direct]
    (folder / "unplugged").symlink_to(tmp_path / "gone.wav")
    code, out, err = run(capsys, [manifest, folder])
    assert code == 2 and out == "" and str(folder / "unplugged") in err and "does not exist" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, [manifest, empty])
    assert code == 2 and "no audio files" in err and str(empty) in err


@pytest.mark.parametrize("convert", [False, True], ids=["device-format", "converted"])
def test_a_recording_read_in_blocks_gives_the_whole_files_detections(
    spoken_wavs, tmp_path, monkeypatch, convert
):
    """mww-detect reads a file block by block (a recording of hours takes one block of memory); cut into
    blocks that do not fall on 10 ms steps, the outputs and detections are those of the whole file."""
    import mww.device.audio

    model = load_wake_word_model(official("okay_nabu"))
    wav = spoken_wavs["okay_nabu"]
    if convert:  # 24-bit stereo at 16 kHz: converted block by block
        mono, _ = sf.read(str(wav), dtype="float32")
        wav = tmp_path / "stereo24.wav"
        sf.write(str(wav), np.stack([mono, mono], axis=1), C.SAMPLE_RATE_HZ, subtype="PCM_24")
    pcm = read_device_pcm16(wav, convert=convert)
    whole = detect_pcm16(model, pcm, wav)
    monkeypatch.setattr(mww.device.audio, "BLOCK_SECONDS", 0.4567)
    blocks = list(read_device_pcm16_blocks(wav, convert=convert))
    in_blocks = detect_files(model, [wav], convert=convert)[0]
    print(f"{wav.name} in {len(blocks)} blocks: {len(in_blocks.detections)} detections, as whole")
    assert len(blocks) > 20
    np.testing.assert_array_equal(np.concatenate(blocks), pcm)
    assert in_blocks == whole and len(whole.detections) == 3
