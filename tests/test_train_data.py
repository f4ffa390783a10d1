"""What training reads: a long negative recording is used whole, in training and in evaluation."""

from __future__ import annotations

import dataclasses
import io
import math

import pytest

from conftest import build_dataset, tone, write
from mww.augment import chunk_samples, open_augmented_store, variant_key
from mww.constants import SAMPLE_RATE_HZ, WINDOW_STEP_MS
from mww.featurize import file_key
from mww.train import Trainer
from mww.train_data import build_training_data, eval_data
from test_train import tiny_config

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
