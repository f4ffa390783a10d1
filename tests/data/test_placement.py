"""Tests for mww.data.placement: where a clip ends in its training window, the pieces of a long
negative, and evaluation streams."""

import numpy as np
import pytest

from mww.data.placement import chunk_count, chunk_samples, piece_of, place_clip, stream_clip, variant_span
from mww.device.constants import SAMPLE_RATE_HZ, frames_for_duration_ms
from tests.data.test_augment import JITTER, WINDOW_S, config


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
