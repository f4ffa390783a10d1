"""The Dataset page's functions: counts, clip lists, uploads and recordings as device audio, the
ingestion report and the generator."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import yaml

from mww.device.audio import AudioError
from mww.errors import MwwError
from mww.studio.dataset import (
    CLIPS_LISTED,
    audio_file,
    check_dataset,
    dataset_counts,
    generate,
    ingest_report,
    list_clips,
    save_recording,
    save_upload,
)
from mww.studio.project import StudioError
from mww.synth.request import GenerationError
from tests.conftest import tone


def wav_bytes(seconds: float = 1.0, rate: int = 44100, channels: int = 2, subtype: str = "FLOAT") -> bytes:
    samples = np.stack([tone(seconds, 440.0 + 100 * c, rate) for c in range(channels)], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def test_counts_per_folder_and_speaker(project):
    counts = dataset_counts(project.config())
    files = {f["kind"]: f["files"] for f in counts["folders"]}
    assert files["positive"] == 24 and files["negative"] == 24 and files["ambient"] == 2
    assert counts["speakers"] == [{"speaker": f"spk{s:02d}", "files": 4, "split": None} for s in range(6)]


def test_clip_list_pages_and_speakers(project):
    config = project.config()
    page = list_clips(config, "positive", "spk03")
    assert page["total"] == 4 and [c["name"] for c in page["clips"]] == [f"spk03/{i}.wav" for i in range(4)]
    later = list_clips(config, "negative", offset=20)["clips"]
    assert [c["name"] for c in later] == sorted(f"speech/n{i}.wav" for i in range(24))[20:]
    assert CLIPS_LISTED >= 24 and list_clips(config, "negative")["total"] == 24
    with pytest.raises(StudioError, match="Unknown dataset folder 'nope'"):
        list_clips(config, "nope")


def test_upload_is_stored_as_device_audio(project):
    config = project.config()
    first = save_upload(project, config, "positive", "alice", "take one.wav", wav_bytes())
    second = save_upload(project, config, "positive", "alice", "take one.wav", wav_bytes(0.5))
    assert first == project.root / "dataset/positive/alice/take one.wav"
    assert second.name == "take one_2.wav"
    info = sf.info(str(first))
    print(f"stored {first.name}: {info.samplerate} Hz, {info.channels} channel(s), {info.subtype}")
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert abs(info.duration - 1.0) < 0.01
    noise = save_upload(project, config, "background", "", "hum.wav", wav_bytes(2.0, 22050, 1))
    assert noise.parent == project.root / "dataset/background"
    assert dataset_counts(config)["speakers"][0] == {"speaker": "alice", "files": 2, "split": None}
    assert not list((project.state_dir / "uploads").iterdir())  # nothing left in transit


@pytest.mark.parametrize(
    ("kind", "speaker", "name", "data", "expected"),
    [
        ("positive", "", "a.wav", None, "Give the speaker's name"),
        ("positive", "../up", "a.wav", None, "cannot be used as a file name"),
        ("positive", "bob", "notes.txt", None, "not an audio file the dataset takes"),
        ("positive", "bob", "empty.wav", b"", "is empty"),
        ("ambient", "", "../../escape.wav", None, None),  # the name's folder part is dropped
    ],
)
def test_bad_uploads_are_refused(project, kind, speaker, name, data, expected):
    config = project.config()
    payload = wav_bytes() if data is None else data
    if expected is None:
        saved = save_upload(project, config, kind, speaker, name, payload)
        assert saved == project.root / "dataset/ambient/escape.wav"
        return
    with pytest.raises(StudioError, match=expected):
        save_upload(project, config, kind, speaker, name, payload)


def test_an_upload_that_is_not_audio_gets_the_readers_message(project):
    with pytest.raises(AudioError) as caught:
        save_upload(project, project.config(), "positive", "bob", "song.wav", b"RIFF not really a wave file")
    message = str(caught.value)
    print(message)
    assert message.startswith("The audio file song.wav could not be read") and "uploads" not in message
    assert not (project.root / "dataset/positive/bob").exists()


def test_recordings_are_numbered_per_speaker(project):
    config = project.config()
    names = [
        save_recording(project, config, "carol", wav_bytes(1.0, 48000, 1, "PCM_16")).name for _ in range(3)
    ]
    assert names == ["carol_001.wav", "carol_002.wav", "carol_003.wav"]
    assert sf.info(str(project.root / "dataset/positive/carol/carol_002.wav")).samplerate == 16000


def test_only_dataset_audio_is_served(project, tmp_path_factory):
    config = project.config()
    inside = project.root / "dataset/positive/spk00/0.wav"
    assert audio_file(config, project, str(inside)) == inside
    outside = tmp_path_factory.mktemp("elsewhere") / "x.wav"
    outside.write_bytes(wav_bytes())
    for path in (str(outside), str(project.config_path), "/etc/passwd", str(inside) + ".missing"):
        with pytest.raises(StudioError, match="not an audio file of this project"):
            audio_file(config, project, path)


def test_check_dataset_reports_skipped_files(project):
    (project.root / "dataset/negative/speech/broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    config = project.config()
    assert ingest_report(config) == {"report": None, "skipped": []}
    result = check_dataset(config)
    print("\n".join(result["lines"]))
    assert any("skipped 1 negative file(s): unreadable" in line for line in result["lines"])
    assert (
        result["skipped"][0]["path"].endswith("broken.wav") and result["skipped"][0]["reason"] == "unreadable"
    )
    assert ingest_report(config)["skipped"] == result["skipped"]
    splits = {row["speaker"]: row["split"] for row in dataset_counts(config)["speakers"]}
    print(f"splits per speaker: {splits}")
    assert set(splits.values()) <= {"train", "validation", "test"} and "train" in splits.values()


def test_generate_merges_the_datasets_override(tmp_path, monkeypatch):
    from mww.studio.project import open_project

    monkeypatch.chdir(tmp_path)
    project = open_project(tmp_path)
    counts = {"positives": 4, "negatives": 4, "hard_negatives": 2, "background": 2, "rirs": 1, "speakers": 4}
    options = {"wake_word": "hey studio", "size": "small", "seed": "3", "tts": "espeak"}
    lines = generate(project, options, counts={**counts, "ambient_seconds": 6.0})
    print("\n".join(lines))
    assert lines[0].startswith('Generated a dataset for "hey studio"')
    layer = yaml.safe_load(project.config_path.read_text())
    config = project.config()
    assert config.export.wake_word == "Hey Studio" and layer["data"]["test_speakers"]
    assert dataset_counts(config)["folders"][0]["files"] == 4
    with pytest.raises(GenerationError, match="cannot be used"):
        generate(project, {"wake_word": "123", "force": True})
    with pytest.raises(StudioError, match="seed must be a whole number"):
        generate(project, {"seed": "x", "force": True})
    with pytest.raises(MwwError) as caught:  # a Piper voice that is not there: the generator's message
        generate(project, {"force": True, "piper_voices": str(tmp_path / "nowhere.onnx")}, counts=counts)
    print(caught.value)
    assert "nowhere.onnx" in str(caught.value)
