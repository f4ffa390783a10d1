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
    build_augmenter,
    chunk_count,
    chunk_samples,
    effective_variants,
    load_placements,
    open_augmented_store,
    piece_of,
    place_clip,
    snr_shift_db,
    stream_clip,
    stream_lead_frames,
    variant_span,
)
from mww.data.feature_store import FeatureStore
from mww.data.ingest import Clip
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


# --------------------------------------------------------------------------- placement


def last_nonzero(x):
    return int(np.flatnonzero(x)[-1]) + 1


@pytest.mark.parametrize("kind", ["positive", "hard_negative"])
def test_positive_clip_ends_within_the_jitter_range_before_the_window_end(kind):
    clip = np.full(round(0.8 * SAMPLE_RATE_HZ), 0.5, dtype=np.float32)
    window = round(3.2 * SAMPLE_RATE_HZ)
    rng = np.random.default_rng(0)
    jitters = set()
    for _ in range(50):
        placed, end_frame = place_clip(clip, 3.2, *JITTER, rng, kind)
        assert placed.shape == (window,) and placed.dtype == np.float32
        end = last_nonzero(placed)
        jitter_s = (window - end) / SAMPLE_RATE_HZ
        assert JITTER[0] - 1 / SAMPLE_RATE_HZ <= jitter_s <= JITTER[1] + 1 / SAMPLE_RATE_HZ
        assert np.array_equal(placed[end - clip.size : end], clip)
        assert np.count_nonzero(placed) == clip.size
        assert end_frame == frames_for_duration_ms(end * 1000 / SAMPLE_RATE_HZ)
        jitters.add(end)
    assert len(jitters) > 10  # the jitter really varies


def test_long_positive_keeps_its_end():
    clip = np.linspace(0.01, 1.0, round(4.0 * SAMPLE_RATE_HZ), dtype=np.float32)
    placed, _ = place_clip(clip, 3.2, 0.2, 0.2, np.random.default_rng(1), "positive")
    end = round(3.2 * SAMPLE_RATE_HZ) - round(0.2 * SAMPLE_RATE_HZ)
    assert np.array_equal(placed[:end], clip[-end:])
    assert not placed[end:].any()


def test_short_negatives_end_where_positives_end_and_long_ones_are_cropped():
    window = round(WINDOW_S * SAMPLE_RATE_HZ)
    short = np.full(4000, 0.25, dtype=np.float32)
    rng = np.random.default_rng(2)
    for _ in range(30):
        placed, end_frame = place_clip(short, WINDOW_S, *JITTER, rng, "negative")
        end = last_nonzero(placed)
        assert np.array_equal(placed[end - short.size : end], short)
        assert end_frame == frames_for_duration_ms(end * 1000 / SAMPLE_RATE_HZ)
        jitter_s = (window - end) / SAMPLE_RATE_HZ
        assert JITTER[0] - 1e-4 <= jitter_s <= JITTER[1] + 1e-4  # no timing cue tells them apart

    long = np.arange(1, 3 * window + 1, dtype=np.float32) / (3 * window)
    crops = set()
    for _ in range(30):
        placed, end_frame = place_clip(long, WINDOW_S, *JITTER, rng, "negative")
        offset = int(np.flatnonzero(long == placed[0])[0])
        assert np.array_equal(placed, long[offset : offset + window])
        assert end_frame == frames_for_duration_ms(WINDOW_S * 1000)
        crops.add(offset)
    assert len(crops) > 10


def test_long_negatives_are_cut_into_equal_pieces_that_each_fit_the_window(tmp_path):
    aug = config(tmp_path).augmentation
    window = round(WINDOW_S * SAMPLE_RATE_HZ)
    piece = chunk_samples(aug)
    assert piece == window - round(JITTER[1] * SAMPLE_RATE_HZ)  # 24000 - 3280 samples
    assert chunk_count("negative", 1.2, aug) == 1 and chunk_count("positive", 60.0, aug) == 1
    assert chunk_count("hard_negative", 60.0, aug) == 1  # those keep their end instead
    assert chunk_count("negative", WINDOW_S, aug) == 1  # what fits the window stays whole
    assert chunk_count("negative", WINDOW_S + 0.01, aug) == 2
    n = int(3.5 * piece)
    assert chunk_count("negative", n / SAMPLE_RATE_HZ, aug) == 4
    audio = np.arange(1, n + 1, dtype=np.float32)  # no zero: placement's silence is told apart
    parts = [piece_of(audio, v, 4) for v in range(4)]
    assert np.array_equal(np.concatenate(parts), audio)  # every sample once, in order
    assert max(p.size for p in parts) - min(p.size for p in parts) <= 1 and parts[0].size <= piece
    assert np.array_equal(piece_of(audio, 5, 4), parts[1])  # variant 5 holds piece 1 again
    assert piece_of(audio, 0, 1) is audio
    spans = [variant_span("negative", n / SAMPLE_RATE_HZ, aug, v) for v in range(4)]
    size = parts[0].size / SAMPLE_RATE_HZ
    assert spans[1] == pytest.approx((size, size))
    assert spans[3] == pytest.approx((3 * size, parts[3].size / SAMPLE_RATE_HZ))
    assert variant_span("positive", 60.0, aug, 3) == (0.0, 60.0)
    rng = np.random.default_rng(0)
    for part in parts:  # a piece is never cropped by the placement: it ends `jitter` before the end
        placed, _ = place_clip(part, WINDOW_S, *JITTER, rng, "negative")
        end = last_nonzero(placed)
        assert np.array_equal(placed[end - part.size : end], part)


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


def test_a_stream_is_the_whole_recording_with_silence_before_and_after_it():
    clip = np.arange(1, 8001, dtype=np.float32) / 8000  # 0.5 s, no zero inside
    stream, end_frame = stream_clip(clip, 1.0, 0.25)
    lead = SAMPLE_RATE_HZ
    assert stream.shape[0] == lead + clip.shape[0] + SAMPLE_RATE_HZ // 4
    assert not stream[:lead].any() and not stream[lead + clip.shape[0] :].any()
    np.testing.assert_array_equal(stream[lead : lead + clip.shape[0]], clip)  # whole, never cropped
    assert end_frame == frames_for_duration_ms(1500)
    assert (
        stream_clip(np.ones(5 * SAMPLE_RATE_HZ, np.float32), 1.0, 0.25)[0].shape[0] == 6.25 * SAMPLE_RATE_HZ
    )


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


def test_noise_in_a_padded_signal_is_as_loud_as_in_the_signal_alone(tmp_path):
    """SNRs against the signal's own power: padding it with silence must not make the noise quieter."""
    assert snr_shift_db(4000, 1000) == pytest.approx(10 * np.log10(4.0))
    assert snr_shift_db(4000, None) == snr_shift_db(4000, 4000) == 0.0
    rng = np.random.default_rng(0)
    noise_file = write(
        tmp_path / "noise.wav", (0.1 * rng.standard_normal(3 * SAMPLE_RATE_HZ)).astype(np.float32)
    )
    cfg = config(tmp_path, enabled=True, background_min_snr_db=10.0, background_max_snr_db=10.0)
    only_noise = {name: 0.0 for name in AUGMENTATION_NAMES} | {"AddBackgroundNoise": 1.0}
    augment = build_augmenter(
        dataclasses.replace(cfg.augmentation, **only_noise), [noise_file], [], warn=False
    )
    signal = tone(0.5, 500.0)
    padded = np.concatenate([np.zeros(3 * signal.shape[0], np.float32), signal])

    def noise_rms(samples: np.ndarray, signal_samples: int | None = None) -> float:
        mixed = augment(samples, signal_samples) if signal_samples else augment(samples)
        return float(np.sqrt(np.mean((mixed - samples) ** 2)))

    alone, diluted, held = noise_rms(signal), noise_rms(padded), noise_rms(padded, signal.shape[0])
    print(
        f"\nnoise RMS at 10 dB SNR: signal alone {alone:.4f}, padded to 4x {diluted:.4f}, padded with "
        f"signal_samples {held:.4f}"
    )
    assert held == pytest.approx(alone, rel=0.02)
    assert diluted == pytest.approx(alone / 2, rel=0.02)  # 4x the samples, a quarter of the power
    assert noise_rms(padded, signal.shape[0]) == pytest.approx(held, rel=0.02)  # the settings were restored
    assert augment.noise[0].min_snr_db == 10.0


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
