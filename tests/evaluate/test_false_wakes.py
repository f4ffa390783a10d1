"""The user's false wakes, end to end: mww-detect --save-detections writes the audio around each
detection (files and a simulated microphone), the saved WAVs dropped into the dataset's false_wakes/
folder are trained on as hard negatives of their own, and mww-evaluate reports them as their own set."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import soundfile as sf

from mww.config.load import config_from_dict, deep_merge
from mww.data.placement import SAVED_AFTER_S, SAVED_BEFORE_S, chunk_count
from mww.device import constants as C
from mww.device.audio import write_wav
from mww.device.constants import frames_for_duration_ms
from mww.device.runtime import load_wake_word_model, read_device_pcm16
from mww.evaluate.false_wakes import LiveClipSaver, clip_bounds, save_clip
from mww.evaluate.listen import detect_files
from tests.conftest import build_dataset, make_config, tone, write
from tests.evaluate.test_listen import SPOKEN, fake_sounddevice, official, run, run_json, speech

SR = C.SAMPLE_RATE_HZ


@pytest.fixture(scope="module")
def okay_nabu_wav(tmp_path_factory):
    """'okay nabu' in three espeak voices, 1.5 s in and 3 s apart: the official model fires on each."""
    phrase, voices = SPOKEN["okay_nabu"]
    return write_wav(tmp_path_factory.mktemp("spoken") / "kitchen.wav", speech(phrase, voices))


def test_each_detection_is_saved_with_two_seconds_before_and_one_after(okay_nabu_wav, tmp_path, capsys):
    manifest, saved_dir = official("okay_nabu"), tmp_path / "saved"
    report = run_json(capsys, [manifest, okay_nabu_wav, "--save-detections", saved_dir])
    times = [d["time_s"] for d in report["files"][0]["detections"]]
    saved = [tmp_path / p for p in report["saved_detections"]]
    assert len(times) == len(saved) == 3
    pcm = read_device_pcm16(okay_nabu_wav)
    for t, path in zip(times, saved, strict=True):
        assert path.parent == saved_dir and path.name == f"kitchen_at_{t:08.2f}s.wav"
        data, rate = sf.read(path, dtype="int16")
        assert rate == SR and sf.info(path).subtype == "PCM_16"
        first, end = clip_bounds(t, pcm.size)
        np.testing.assert_array_equal(data, pcm[first:end])  # the recording's own samples
        assert data.size == round((SAVED_BEFORE_S + SAVED_AFTER_S) * SR) or first == 0 or end == pcm.size
    assert sorted(p.name for p in saved_dir.iterdir()) == sorted(p.name for p in saved)  # no temp files
    # each saved clip holds what fired: the model detects in it again (a listening device: --armed)
    again = detect_files(load_wake_word_model(manifest), saved, armed=True)
    assert all(r.detections for r in again)
    counts = [len(r.detections) for r in again]
    with capsys.disabled():
        print(f"\nsaved {len(saved)} clips at {times} s; detections in them again: {counts}")

    code, out, _ = run(capsys, [manifest, okay_nabu_wav, "--save-detections", saved_dir])
    assert code == 0 and "Saved 3 detection clips in" in out and "false_wakes/" in out
    names = sorted(p.name for p in saved_dir.iterdir())
    assert len(names) == 6 and sum(n.endswith("-2.wav") for n in names) == 3  # never replaced


def test_the_microphone_saves_the_same_clips_as_the_file(okay_nabu_wav, tmp_path, capsys, monkeypatch):
    manifest = official("okay_nabu")
    pcm = read_device_pcm16(okay_nabu_wav)
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(pcm))
    report = run_json(capsys, [manifest, "--mic", "--save-detections", tmp_path / "mic"])
    files = run_json(capsys, [manifest, okay_nabu_wav, "--save-detections", tmp_path / "files"])
    mic_clips, file_clips = report["saved_detections"], files["saved_detections"]
    assert len(mic_clips) == len(file_clips) == len(report["detections"]) == 3
    for mine, theirs in zip(mic_clips, file_clips, strict=True):
        assets = sf.read(mine, dtype="int16")[0], sf.read(theirs, dtype="int16")[0]
        np.testing.assert_array_equal(*assets)
        assert mine.split("/")[-1].startswith("mic_") and mine.endswith(theirs.split("kitchen")[-1])


def test_a_detection_near_the_end_keeps_what_there_is(tmp_path):
    saver = LiveClipSaver(tmp_path, source="mic_test")
    audio = (np.arange(4 * SR) % 1000).astype(np.int16)
    for block in np.split(audio[: 3 * SR], 100):
        saver.feed(block)
    saver.detected(2.5)  # 1 s after it is not heard before the session ends
    written = saver.feed(audio[3 * SR : int(3.2 * SR)]) + saver.close()
    (path,) = written
    data, _ = sf.read(path, dtype="int16")
    np.testing.assert_array_equal(data, audio[int(0.5 * SR) : int(3.2 * SR)])
    early = LiveClipSaver(tmp_path, source="mic_test")
    early.feed(audio[: SR // 2])
    early.detected(0.4)  # less than 2 s heard before it
    early.feed(audio[SR // 2 : 2 * SR])
    (clip,) = early.saved
    np.testing.assert_array_equal(sf.read(clip, dtype="int16")[0], audio[: round(1.4 * SR)])
    assert (
        save_clip(tmp_path, "my kitchen/rec 1", 1.5, audio[:10]).name == "my_kitchen_rec_1_at_00001.50s.wav"
    )


def test_a_save_folder_that_is_a_file_is_refused_before_anything_runs(okay_nabu_wav, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    code, out, err = run(capsys, [official("okay_nabu"), okay_nabu_wav, "--save-detections", target])
    assert code == 2 and out == "" and "--save-detections" in err and "is a file, not a folder" in err
    assert target.read_text() == "not a folder"


# --------------------------------------------------------------------------- into the dataset


def tiny(root, data_root, **training):
    from tests.train.test_trainer import tiny_config

    base = tiny_config(data_root, root).to_dict()
    return config_from_dict(deep_merge(base, {"training": training}))


def test_false_wakes_are_trained_on_as_hard_negatives_of_their_own(tmp_path):
    from mww.data.sources import build_training_data
    from mww.train.trainer import Trainer

    data_root = tmp_path / "dataset"
    build_dataset(data_root, speakers=6, per_speaker=3, negatives=12)
    woke = [
        write(data_root / "false_wakes" / f"tv_at_{i:04d}.wav", tone(3.0, 350 + 25 * i, seed=i))
        for i in range(12)
    ]
    cfg = tiny(tmp_path, data_root)
    trainer = Trainer(cfg, progress=False, out=io.StringIO())
    data = build_training_data(cfg, trainer.input_frames, progress=False)
    clips = data.prepared.ingest.of("false_wake")
    assert sorted(c.path for c in clips) == woke
    in_train = [c.path for c in clips if c.split == "train"]
    in_validation = [c.path for c in clips if c.split == "validation"]
    # augmentation off: one variant of each piece (a false wake longer than the window is cut up, as a
    # negative is, so training hears all of it)
    pieces = chunk_count("false_wake", 3.0, cfg.augmentation)
    assert in_train and pieces == 3 and data.counts["false_wake"] == pieces * len(in_train)
    assert data.validation.false_wake_paths == in_validation
    assert len(data.validation.false_wake_streams) == len(in_validation)
    assert {e.path for e in data.negative_pool} >= set(in_train)  # mining looks for what fires in them too

    trainer.sampler = trainer._sampler(data, [])
    index = [s.name for s in trainer.sampler.sources].index("false_wake")
    source = trainer.sampler.sources[index]
    assert source.label == 0 and source.truncation == "end"
    assert source.sampling_weight == cfg.training.false_wake_sampling_weight
    assert source.end_jitter == frames_for_duration_ms((SAVED_AFTER_S + cfg.augmentation.max_jitter_s) * 1000)
    # class weight: the hard negatives' of each phase (tiny_config: 4 then 5), or its own
    assert trainer._weights_for(0)[index] == 4.0 and trainer._weights_for(1)[index] == 5.0
    own = Trainer(tiny(tmp_path, data_root, false_wake_class_weight=9.0), progress=False, out=io.StringIO())
    own.sampler = trainer.sampler
    assert own._weights_for(0)[index] == own._weights_for(1)[index] == 9.0
    # windows end anywhere in the last 1 s (+ jitter): where a saved detection holds the moment it fired
    rng = np.random.default_rng(0)
    items = rng.integers(0, len(source.keys), 2000)
    starts = trainer.sampler.window_starts(index, items, rng)
    lengths = np.array([source.store.location(source.keys[i])[1] for i in items])
    back = lengths - trainer.input_frames - starts
    assert back.min() == 0 and back.max() == source.end_jitter
    batch = trainer.sampler.sample(np.random.default_rng(1))
    drawn = int((batch.source == index).sum())
    print(f"\n{len(in_train)} false wakes in training; in a batch of {batch.labels.size}: {drawn}")


def test_evaluate_reports_false_wakes_as_their_own_set(okay_nabu_wav, tmp_path, capsys):
    from mww.cli.detect import main as detect
    from mww.cli.evaluate import main as evaluate
    from mww.config.load import dump_config

    data_root = tmp_path / "dataset"
    build_dataset(data_root, speakers=4, per_speaker=2, negatives=6)
    # the detections of a recording, saved straight into the dataset's false_wakes/ (under a test
    # speaker's folder, so they land in the test split)
    assert (
        detect(
            [
                str(official("okay_nabu")),
                str(okay_nabu_wav),
                "--save-detections",
                str(data_root / "false_wakes" / "spk00"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    saved = sorted((data_root / "false_wakes" / "spk00").glob("*.wav"))
    base = make_config(data_root, test_speakers=["spk00"]).to_dict()
    cfg = config_from_dict(deep_merge(base, {"performance": {"num_workers": 1}}))
    config_file = dump_config(cfg, tmp_path / "config.yaml")
    tflite = official("okay_nabu").with_suffix(".tflite")
    args = ["--tflite", str(tflite), "--config", str(config_file), "--split", "test", "--noise-snr"]
    assert evaluate([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    row = result["per_source"]["false_wake"]
    assert result["counts"]["false_wakes"] == row["clips"] == len(saved) == 3
    assert 1 <= row["clips_with_detection"] <= 3 and row["detection_rate"] == row["clips_with_detection"] / 3
    fired = {e["file"] for e in result["events"] if e["source"] == "false_wake"}
    assert len(fired) == row["clips_with_detection"] and fired <= {str(p) for p in saved}
    assert evaluate(args) == 0
    out = capsys.readouterr().out
    assert "3 false wakes" in out and "false wakes detected" in out
    with capsys.disabled():
        print(f"\nthe official model on its own saved detections (test split): {row}")
