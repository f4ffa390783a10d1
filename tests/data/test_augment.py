"""Tests for mww.data.augment: the augmented-variant store (placement itself: test_placement.py, the
transform chain: test_transforms.py)."""

import dataclasses
import logging

import numpy as np
import pytest

from mww.config.load import load_preset
from mww.config.schema import AUGMENTATION_NAMES
from mww.data.augment import (
    STREAM_TAIL_S,
    augment_clips,
    augmentation_files,
    effective_variants,
    load_placements,
    open_augmented_store,
)
from mww.data.feature_store import FeatureStore
from mww.data.ingest import Clip
from mww.data.placement import chunk_samples, stream_lead_frames
from mww.data.transforms import build_augmenter
from mww.device.audio import TRIM_KEEP_S
from mww.device.constants import SAMPLE_RATE_HZ, frames_for_duration_ms
from tests.conftest import build_dataset, make_config, tone, write

WINDOW_S = 1.5
JITTER = (0.195, 0.205)


def config(root, **augmentation):
    """The standard config on the dataset under `root`, with augmentation settings changed."""
    cfg = make_config(root)
    settings = {"augmentation_duration_s": WINDOW_S, "variants_per_clip": 2, **augmentation}
    cfg.augmentation = dataclasses.replace(cfg.augmentation, **settings)
    return cfg


def only(name):
    """Every transform off but `name`, which always runs."""
    return {other: (1.0 if other == name else 0.0) for other in AUGMENTATION_NAMES}


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "dataset"
    build_dataset(root, speakers=2, per_speaker=2, negatives=3)
    write(root / "hard_negative" / "h0.wav", tone(0.9, 700.0, seed=77))
    clips = [Clip(p, "positive", p.parent.name, 1.0) for p in sorted((root / "positive").rglob("*.wav"))]
    clips += [Clip(p, "negative", None, 1.2) for p in sorted((root / "negative").rglob("*.wav"))]
    clips.append(Clip(root / "hard_negative" / "h0.wav", "hard_negative", None, 0.9))
    return root, clips


def features_of(result, store):
    return {v.key: np.array(store.get(v.key)) for variants in result.variants.values() for v in variants}


def store_for(cfg, processed_dir=None):
    background, rirs = augmentation_files(cfg)
    return open_augmented_store(processed_dir or cfg.paths.processed_dir, cfg.augmentation, background, rirs)


# --------------------------------------------------------------------------- the pieces of a long negative


def test_every_piece_of_a_long_negative_is_a_variant(tmp_path):
    """A negative of four tones, each the length of one piece, pitch rising: one variant per tone."""
    cfg = config(tmp_path, enabled=False)
    seconds_each = 0.9 * chunk_samples(cfg.augmentation) / SAMPLE_RATE_HZ
    pitches = (300.0, 900.0, 2000.0, 4500.0)
    audio = np.concatenate([tone(seconds_each, f, seed=i) for i, f in enumerate(pitches)])
    path = write(tmp_path / "dataset" / "negative" / "radio.wav", audio)
    seconds = audio.size / SAMPLE_RATE_HZ
    result = augment_clips([Clip(path, "negative", None, seconds)], cfg, store_for(cfg))
    variants = result.variants[path]
    assert len(variants) == 4 and result.computed == 4
    assert [v.start_s for v in variants] == pytest.approx([i * seconds_each for i in range(4)], abs=1e-3)
    assert sum(v.length_s for v in variants) == pytest.approx(seconds)
    store = store_for(cfg)
    loudest = [int(np.argmax(np.array(store.get(v.key)).max(axis=0))) for v in variants]
    print(f"\nloudest mel bin of each piece (rising pitch): {loudest}")
    assert loudest == sorted(loudest) and len(set(loudest)) == 4
    more = augment_clips([Clip(path, "negative", None, seconds)], config(tmp_path, variants_per_clip=6))
    assert len(more.variants[path]) == 6  # more variants than pieces: the pieces come round again
    assert [v.start_s for v in more.variants[path]][4:] == pytest.approx([0.0, seconds_each], abs=1e-3)


def test_first_only_makes_the_first_piece_alone(tmp_path):
    """Evaluation asks for one placed copy of each clip: of a long negative, its first piece only."""
    cfg = config(tmp_path, enabled=False)
    seconds_each = 0.9 * chunk_samples(cfg.augmentation) / SAMPLE_RATE_HZ
    audio = np.concatenate([tone(seconds_each, f, seed=i) for i, f in enumerate((300.0, 900.0, 2000.0))])
    path = write(tmp_path / "dataset" / "negative" / "radio.wav", audio)
    clip = Clip(path, "negative", None, audio.size / SAMPLE_RATE_HZ)
    first = augment_clips([clip], cfg, store_for(cfg), first_only=True)
    assert first.computed == 1 and len(first.variants[path]) == 1
    assert first.variants[path][0].start_s == 0.0
    assert first.variants[path][0].length_s == pytest.approx(seconds_each, abs=1e-3)
    every = augment_clips([clip], cfg, store_for(cfg))
    assert every.computed == 2 and every.reused == 1  # the first piece is the same variant, reused
    assert every.variants[path][0] == first.variants[path][0]


# --------------------------------------------------------------------------- what the model sees


def test_disabled_augmenter_is_the_identity(dataset):
    root, _ = dataset
    background, rirs = augmentation_files(config(root))
    x = tone(1.0)
    assert np.array_equal(build_augmenter(config(root, enabled=False).augmentation, background, rirs)(x), x)
    all_off = config(root, **dict.fromkeys(AUGMENTATION_NAMES, 0.0)).augmentation
    assert np.array_equal(build_augmenter(all_off, background, rirs)(x), x)


def test_augmentation_changes_the_features(dataset):
    root, clips = dataset
    off = config(root, enabled=False)
    on = config(root)
    plain = augment_clips(clips, off)
    augmented = augment_clips(clips, on)
    assert plain.store_root != augmented.store_root
    plain_features = features_of(plain, store_for(off))
    on_features = features_of(augmented, store_for(on))
    for clip in clips:
        assert len(plain.variants[clip.path]) == 1  # off: one unaugmented variant
        assert len(augmented.variants[clip.path]) == 2
        key, end_frame = plain.variants[clip.path][0][:2]
        assert augmented.variants[clip.path][0][:2] == (key, end_frame)  # same placement, same key
        assert not np.array_equal(plain_features[key], on_features[key])
        variant0, variant1 = (on_features[k] for k, *_ in augmented.variants[clip.path])
        assert not np.array_equal(variant0, variant1)  # each variant is a fresh draw
        assert plain_features[key].shape == (frames_for_duration_ms(WINDOW_S * 1000), 40)


@pytest.mark.parametrize("name", AUGMENTATION_NAMES)
def test_each_probability_changes_the_features(dataset, name):
    root, clips = dataset
    clips = clips[:2]
    baseline_cfg = config(root, **dict.fromkeys(AUGMENTATION_NAMES, 0.0))
    changed_cfg = config(root, **only(name))
    baseline = augment_clips(clips, baseline_cfg)
    changed = augment_clips(clips, changed_cfg)
    before, after = (
        features_of(baseline, store_for(baseline_cfg)),
        features_of(changed, store_for(changed_cfg)),
    )
    assert before.keys() == after.keys()
    assert any(not np.array_equal(before[key], after[key]) for key in before)


# --------------------------------------------------------------------------- parallelism and caching


def test_deterministic_across_worker_counts(dataset, tmp_path):
    root, clips = dataset
    cfg = config(root, **{name: 0.5 for name in AUGMENTATION_NAMES})
    serial_store = store_for(cfg, tmp_path / "serial")
    parallel_store = store_for(cfg, tmp_path / "parallel")
    serial = augment_clips(clips, cfg, serial_store, num_workers=1, seed=3)
    parallel = augment_clips(clips, cfg, parallel_store, num_workers=2, seed=3, min_variants_per_worker=1)
    assert serial.variants == parallel.variants
    a, b = features_of(serial, serial_store), features_of(parallel, parallel_store)
    assert a.keys() == b.keys() and len(a) == 2 * len(clips)
    assert all(np.array_equal(a[key], b[key]) for key in a)
    assert load_placements(serial_store) == load_placements(parallel_store)
    other_seed = augment_clips(clips[:1], cfg, serial_store, seed=4)
    assert other_seed.computed == 2
    assert other_seed.variants[clips[0].path][0].key.endswith(":0:4")


def test_second_run_computes_nothing_and_changes_give_a_new_store(dataset):
    root, clips = dataset
    cfg = config(root)
    first = augment_clips(clips, cfg, progress=True)
    assert (first.computed, first.reused, first.failed) == (2 * len(clips), 0, {})
    again = augment_clips(clips, cfg)
    assert (again.computed, again.reused) == (0, 2 * len(clips))
    assert again.variants == first.variants

    more = augment_clips(clips, config(root, variants_per_clip=3))  # extends the same store
    assert (more.store_root, more.computed) == (first.store_root, len(clips))

    setting = augment_clips(clips, config(root, Gain=0.5))
    assert setting.store_root != first.store_root and setting.computed == 2 * len(clips)
    snr = augment_clips(clips[:1], config(root, background_max_snr_db=20.0))
    assert snr.store_root not in (first.store_root, setting.store_root)

    write(root / "background" / "noise.wav", tone(3.0, 90.0))  # same name, new content
    noise = augment_clips(clips, cfg)
    assert noise.store_root != first.store_root and noise.computed == 2 * len(clips)
    rir = root / "rirs" / "r.wav"
    write(rir, np.exp(-np.arange(800) / 50.0).astype(np.float32))
    assert augment_clips(clips[:1], cfg).store_root != noise.store_root


@pytest.mark.parametrize("kind", ["positive", "hard_negative", "negative"])
def test_a_clip_is_placed_by_the_end_of_its_sound_not_of_its_file(tmp_path, kind):
    """A recording that goes on in silence after the phrase must put the phrase where one without
    that silence puts it: just before the decision, not the silence's length earlier."""
    root = tmp_path / "dataset"
    sound = tone(0.6, 500.0)
    paths = {"tail": root / kind / "spk" / "tail.wav", "none": root / kind / "spk" / "none.wav"}
    # 0.8 s of silence: the file still fits the window, so even a negative is placed whole
    write(paths["tail"], np.concatenate([sound, np.zeros(round(0.8 * SAMPLE_RATE_HZ), np.float32)]))
    write(paths["none"], sound)
    clips = [Clip(paths["tail"], kind, "spk", 1.4), Clip(paths["none"], kind, "spk", 0.6)]
    cfg = config(root, variants_per_clip=1)
    result = augment_clips(clips, cfg)
    store = FeatureStore(result.store_root, width=40)
    tail, none = (result.variants[paths[name]][0] for name in ("tail", "none"))
    assert abs(tail.end_frame - none.end_frame) <= 1  # both ~0.2 s before the window end
    assert tail.length_s == pytest.approx(0.6 + TRIM_KEEP_S, abs=0.011)  # the part of the file it holds
    assert none.length_s == pytest.approx(0.6, abs=1e-3)
    assert load_placements(store)[tail.key] == (tail.end_frame, tail.length_s)
    level = {
        name: np.asarray(store.get(v.key), np.float64).mean(axis=1)
        for name, v in (("tail", tail), ("none", none))
    }
    # the last 0.4 s of the sound, in both: as loud as each other, far above the silence before it
    span = slice(none.end_frame - 45, none.end_frame - 8)
    assert level["tail"][span].mean() > 0.8 * level["none"][span].mean()
    assert level["tail"][span].mean() > 2 * level["tail"][: none.end_frame - 75].mean()


@pytest.mark.parametrize("kind", ["positive", "negative"])
def test_evaluation_streams_keep_the_trailing_silence_and_add_a_lead_and_a_tail(tmp_path, kind):
    """`as_stream`: the recording as made, 0.8 s of silence after the phrase and all, after one
    window of silence and before STREAM_TAIL_S of it; training's window placement is untouched."""
    root = tmp_path / "dataset"
    path = root / kind / "spk" / "tail.wav"
    write(path, np.concatenate([tone(0.6, 500.0), np.zeros(round(0.8 * SAMPLE_RATE_HZ), np.float32)]))
    clips = [Clip(path, kind, "spk", 1.4)]
    cfg = config(root, variants_per_clip=1)
    store = open_augmented_store(cfg.paths.processed_dir, cfg.augmentation, [], [], as_stream=True)
    result = augment_clips(
        clips, cfg, store, background_files=[], rir_files=[], first_only=True, as_stream=True
    )
    (variant,) = result.variants[path]
    assert store.root != augment_clips(clips, cfg).store_root  # never mixed with training variants
    assert variant.length_s == pytest.approx(1.4, abs=1e-3)  # the whole file, trailing silence too
    lead = stream_lead_frames(cfg.augmentation)
    assert lead == frames_for_duration_ms(WINDOW_S * 1000)
    assert variant.end_frame == frames_for_duration_ms((WINDOW_S + 1.4) * 1000)
    assert store.n_rows(variant.key) == frames_for_duration_ms((WINDOW_S + 1.4 + STREAM_TAIL_S) * 1000)
    level = np.asarray(store.get(variant.key), np.float64).mean(axis=1)
    loud = np.flatnonzero(level > level.min() + 0.5 * np.ptp(level))
    assert lead - 3 <= loud[0] <= lead + 3  # the phrase starts where the lead ends
    assert loud[-1] <= variant.end_frame - 75  # followed by the recording's own 0.8 s of silence


def test_end_frames_sidecar_matches_the_result(dataset):
    root, clips = dataset
    cfg = config(root)
    result = augment_clips(clips, cfg)
    store = FeatureStore(result.store_root, width=40)
    ends = {key: placement.end_frame for key, placement in load_placements(store).items()}
    window_frames = frames_for_duration_ms(WINDOW_S * 1000)
    for clip in clips:
        for key, end_frame, _start, _length in result.variants[clip.path]:
            assert ends[key] == end_frame
            assert store.n_rows(key) == window_frames
            # every clip that fits ends about 0.2 s (20 frames) before the window end
            assert window_frames - 22 <= end_frame <= window_frames - 18


def test_missing_background_and_rirs_are_not_an_error(tmp_path, caplog):
    root = tmp_path / "dataset"
    write(root / "positive" / "spk" / "a.wav", tone(1.0, 500.0))
    clips = [Clip(root / "positive" / "spk" / "a.wav", "positive", "spk", 1.0)]
    cfg = config(root)
    with caplog.at_level(logging.WARNING, logger="mww.data.augment"):
        result = augment_clips(clips, cfg)
    assert result.computed == 2 and not result.failed
    text = caplog.text
    assert "AddBackgroundNoise" in text and "RIR" in text and "skipped" in text


def test_unreadable_clip_is_reported_not_fatal(dataset):
    root, clips = dataset
    bad = root / "negative" / "broken.wav"
    bad.write_bytes(b"not audio at all")
    result = augment_clips([*clips[:1], Clip(bad, "negative", None, 1.0)], config(root))
    assert set(result.failed) == {bad}
    assert clips[0].path in result.variants and bad not in result.variants


def test_variants_per_clip_in_the_presets():
    assert load_preset("standard").augmentation.variants_per_clip == 4
    assert load_preset("max_quality").augmentation.variants_per_clip == 8
    fast = load_preset("fast_test").augmentation
    assert not fast.enabled and effective_variants(fast) == 1
