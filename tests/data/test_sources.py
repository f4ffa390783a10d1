"""What training reads: a long negative recording is used whole, in training and in evaluation; the
positives heard over background audio for the recall-in-noise measurement."""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mww.config.schema import AUGMENTATION_NAMES
from mww.data.augment import STREAM_TAIL_S, augmentation_files, open_augmented_store, variant_key
from mww.data.featurize import file_key
from mww.data.placement import chunk_samples
from mww.data.prepare import prepare_data
from mww.data.sources import build_training_data, eval_data, in_noise_settings, positives_in_noise
from mww.device.constants import SAMPLE_RATE_HZ, WINDOW_STEP_MS
from mww.train.trainer import Trainer
from tests.conftest import build_dataset, make_config, tone, write
from tests.train.test_trainer import tiny_config

LONG_S = 8.0


def test_a_long_negative_is_trained_on_and_evaluated_whole(tmp_path):
    data_root = tmp_path / "dataset"
    build_dataset(data_root, speakers=6, per_speaker=3, negatives=12)
    radios = [
        write(data_root / "negative" / "radio" / f"r{i}.wav", tone(LONG_S, 600.0 + i, seed=i))
        for i in range(3)
    ]
    # a negative under a speaker's folder goes with that speaker: this one to validation
    pinned = write(data_root / "negative" / "spk00" / "talk.wav", tone(LONG_S, 800.0, seed=9))
    cfg = tiny_config(data_root, tmp_path)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, validation_speakers=["spk00"]))
    input_frames = Trainer(cfg, progress=False, out=io.StringIO()).input_frames
    data = build_training_data(cfg, input_frames, progress=False)

    pieces = math.ceil(LONG_S * SAMPLE_RATE_HZ / chunk_samples(cfg.augmentation))
    split_of = {c.path: c.split for c in data.prepared.ingest.clips}
    trained = [r for r in radios if split_of[r] == "train"]
    assert trained, "the split seed put no long negative in training"
    for radio in trained:  # every piece, not one crop of the window's length
        entries = sorted((e for e in data.negative_pool if e.path == radio), key=lambda e: e.start_s)
        assert len(entries) == pieces >= 6
        assert sum(e.duration_s for e in entries) == pytest.approx(LONG_S, abs=0.01)
        assert entries[-1].start_s + entries[-1].duration_s == pytest.approx(LONG_S, abs=0.01)

    assert split_of[pinned] == "validation"
    validation = data.validation
    stream = validation.negative_streams[validation.negative_paths.index(pinned)]
    stream_s = stream.shape[0] * WINDOW_STEP_MS / 1000
    print(f"\n{LONG_S:.0f} s negatives: {pieces} training pieces each, validation streams {stream_s:.2f} s")
    assert stream_s > LONG_S - 0.1  # streamed whole, so FA/h counts all of it
    again = eval_data(cfg, data.prepared, "validation", input_frames)
    assert again.negative_paths == validation.negative_paths
    assert again.negative_streams[again.negative_paths.index(pinned)].shape == stream.shape
    placed_store = open_augmented_store(
        cfg.paths.processed_dir, dataclasses.replace(cfg.augmentation, enabled=False), [], []
    )
    pinned_keys = {variant_key(file_key(pinned), v, 0) for v in range(pieces)}
    assert len(pinned_keys & set(placed_store.keys())) == 1  # evaluation placed its first piece only


def test_in_noise_settings_only_add_background_audio_at_the_given_snr():
    base = make_config(Path("/d")).augmentation
    noisy = in_noise_settings(base, 7.5)
    assert noisy.enabled and noisy.variants_per_clip == 1
    assert noisy.background_min_snr_db == noisy.background_max_snr_db == 7.5
    assert {n: p for n, p in noisy.probabilities().items() if p} == {"AddBackgroundNoise": 1.0}
    assert set(noisy.probabilities()) == set(AUGMENTATION_NAMES)
    assert (noisy.augmentation_duration_s, noisy.min_jitter_s) == (
        base.augmentation_duration_s,
        base.min_jitter_s,
    )  # placed as evaluation places them


def test_positives_in_noise_mix_more_noise_at_lower_snr_and_are_cached(tmp_path):
    root = tmp_path / "dataset"
    build_dataset(root, speakers=6, per_speaker=2, negatives=4)
    rng = np.random.default_rng(0)
    write(
        root / "background" / "noise.wav", (0.1 * rng.standard_normal(4 * SAMPLE_RATE_HZ)).astype(np.float32)
    )
    cfg = make_config(root, validation_speakers=["spk00", "spk01"])
    prepared = prepare_data(cfg, progress=False)
    clean = eval_data(cfg, prepared, "validation", 233)
    background, _ = augmentation_files(cfg)

    def distance(snr_db: float) -> float:
        noisy = positives_in_noise(cfg, prepared, "validation", snr_db, background, 233)
        assert sorted(noisy) == sorted(clean.positive_paths)
        return float(
            np.mean(
                [
                    np.abs(noisy[p] - clean.positive_streams[clean.positive_paths.index(p)]).mean()
                    for p in clean.positive_paths
                ]
            )
        )

    far, near = distance(0.0), distance(30.0)
    print(f"\nmean |noisy - clean| feature difference: {far:.3f} at 0 dB SNR, {near:.3f} at 30 dB SNR")
    assert far > near > 0
    store = open_augmented_store(  # streams like the clean ones: the whole recording, lead and tail
        cfg.paths.processed_dir,
        in_noise_settings(cfg.augmentation, 0.0),
        background,
        [],
        as_stream=True,
    )
    index = store.root / "index.json"
    written = index.stat().st_mtime_ns
    assert len(store.keys()) == len(clean.positive_paths)
    assert distance(0.0) == far  # the same mixture again, read back from the store: nothing rewritten
    assert index.stat().st_mtime_ns == written


def test_evaluation_windows_are_placed_as_training_and_streams_are_the_recordings(tmp_path):
    """A positive that goes on in silence after the phrase: its clip window (what the classification
    metrics score) ends just after the phrase, as in training, while the stream the detector runs on
    is the whole recording, the silence the device would hear after it included, after one input
    window of silence: so the moment training decides on it is scored too."""
    data_root = tmp_path / "dataset"
    build_dataset(data_root, speakers=6, per_speaker=3, negatives=12)
    silence_s = 1.2  # longer than a 3.2 s window less the input window: was never scored
    phrase = tone(0.6, 500.0, seed=3)
    path = write(
        data_root / "positive" / "spk00" / "long_tail.wav",
        np.concatenate([phrase, np.zeros(round(silence_s * SAMPLE_RATE_HZ), np.float32)]),
    )
    cfg = tiny_config(data_root, tmp_path)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, validation_speakers=["spk00"]))
    input_frames = Trainer(cfg, progress=False, out=io.StringIO()).input_frames
    prepared = prepare_data(cfg, progress=False)
    data = eval_data(cfg, prepared, "validation", input_frames)
    i = data.positive_paths.index(path)
    window = data.windows[[k for k, kind in enumerate(data.kinds) if kind == "positive"][i]]
    stream = data.positive_streams[i]

    def loud(features: np.ndarray) -> np.ndarray:  # frames of the phrase (digital silence is 0)
        return np.flatnonzero(features.mean(axis=1) > 1.0)

    in_window = window.shape[0] - int(loud(window)[-1])
    in_stream = stream.shape[0] - int(loud(stream)[-1])
    print(f"\nphrase ends {in_window} frames before the window end, {in_stream} before the stream end")
    assert in_window <= 30  # ~0.25 s: placed by the end of its sound
    tail_frames = (silence_s + STREAM_TAIL_S) * 1000 / WINDOW_STEP_MS
    assert in_stream == pytest.approx(tail_frames, abs=8)
    assert int(loud(stream)[0]) == pytest.approx(input_frames, abs=3)  # one input window of silence first
    # times are reported in the file: the recording starts this far into its stream
    assert data.stream_offsets_s[path] == pytest.approx(input_frames * WINDOW_STEP_MS / 1000, abs=0.03)
    # the clip-level scores are read where training decides: this many invocations before the end,
    # and that invocation is one the detector scores (its input window has filled)
    assert len(data.silence_after) == len(data.labels)
    stride = cfg.model.stride
    assert data.silence_after[i] == pytest.approx((in_stream - in_window) / stride, abs=3)
    scored = (stream.shape[0] - input_frames) // stride + 1
    assert data.silence_after[i] < scored - 10
    # the synthetic tones end where their files do: only the stream's tail follows their decision
    others = [n for k, n in enumerate(data.silence_after) if k != i]
    tail = (STREAM_TAIL_S - 0.2) * 1000 / WINDOW_STEP_MS / stride
    assert all(n == pytest.approx(tail, abs=2) for n in others), others
    # FA/h counts the negatives for their own duration, not for the silence their streams add
    durations = [sf.info(str(p)).duration for p in data.negative_paths]
    assert data.negative_seconds == pytest.approx(sum(durations), abs=0.01)
