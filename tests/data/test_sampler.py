import numpy as np
import pytest

from mww.data.feature_store import FeatureStore
from mww.data.sampler import Prefetcher, Source, WindowSampler, step_rng
from mww.device.features import uint16_to_float


def ramp_store(tmp_path, lengths, width=4, base=0):
    """Arrays whose row r holds the value base + r (so a window reveals where it was cut)."""
    store = FeatureStore(tmp_path / f"s{base}", width=width)
    keys = []
    for i, n in enumerate(lengths):
        rows = (base + 100 * i + np.arange(n, dtype=np.uint16))[:, None].repeat(width, axis=1)
        store.put_many({f"k{i}": rows})
        keys.append(f"k{i}")
    return store, keys


def values(batch):
    return np.rint(batch.features[:, :, 0] / uint16_to_float(np.array([1], np.uint16))[0]).astype(int)


def test_end_truncation_keeps_the_end(tmp_path):
    store, keys = ramp_store(tmp_path, [10, 12])
    sampler = WindowSampler([Source("positive", 1, 1.0, "end", store, keys)], input_frames=4, batch_size=16)
    batch = sampler.sample(step_rng(0, 0))
    for row in values(batch):
        assert list(row) in ([6, 7, 8, 9], [106, 107, 108, 109, 110, 111][-4:])
    assert batch.labels.tolist() == [1.0] * 16


def test_end_jitter_moves_the_window_end_back_a_little(tmp_path):
    store, keys = ramp_store(tmp_path, [30])
    source = Source("positive", 1, 1.0, "end", store, keys, end_jitter=3)
    rows = values(WindowSampler([source], input_frames=4, batch_size=200).sample(step_rng(0, 1)))
    assert set(rows[:, -1].tolist()) == {26, 27, 28, 29}


def test_random_windows_stay_inside_and_vary(tmp_path):
    store, keys = ramp_store(tmp_path, [50])
    sampler = WindowSampler(
        [Source("negative", 0, 1.0, "random", store, keys)], input_frames=8, batch_size=64
    )
    rows = values(sampler.sample(step_rng(0, 0)))
    starts = rows[:, 0]
    assert np.all(np.diff(rows, axis=1) == 1)  # contiguous windows
    assert starts.min() >= 0 and starts.max() <= 42
    assert len(set(starts.tolist())) > 10  # not always the same window


def test_short_arrays_are_left_padded_with_their_first_frame(tmp_path):
    store, keys = ramp_store(tmp_path, [3])
    for truncation in ("end", "random"):
        sampler = WindowSampler([Source("x", 0, 1.0, truncation, store, keys)], input_frames=5, batch_size=2)
        assert values(sampler.sample(step_rng(0, 0)))[0].tolist() == [0, 0, 0, 1, 2]


def test_fixed_starts_and_source_mix(tmp_path):
    pos, pos_keys = ramp_store(tmp_path, [20], base=1000)
    mined, mined_keys = ramp_store(tmp_path, [30, 30], base=2000)
    sources = [
        Source("positive", 1, 3.0, "end", pos, pos_keys),
        Source("mined", 0, 1.0, "fixed", mined, mined_keys, starts=[5, 11]),
    ]
    sampler = WindowSampler(sources, input_frames=4, batch_size=4000)
    batch = sampler.sample(step_rng(1, 0))
    share = np.mean(batch.source == 0)
    print(f"positive share {share:.3f} (expected 0.75)")
    assert abs(share - 0.75) < 0.03
    mined_rows = values(batch)[batch.source == 1]
    assert {tuple(r) for r in mined_rows} == {(2005, 2006, 2007, 2008), (2111, 2112, 2113, 2114)}
    assert np.all(batch.labels[batch.source == 1] == 0)


def test_same_step_same_batch_other_step_other_batch(tmp_path):
    store, keys = ramp_store(tmp_path, [40, 40, 40])
    sampler = WindowSampler([Source("n", 0, 1.0, "random", store, keys)], input_frames=6, batch_size=32)
    a, b, c = (sampler.sample(step_rng(7, s)) for s in (3, 3, 4))
    assert np.array_equal(a.features, b.features)
    assert not np.array_equal(a.features, c.features)


def test_prefetcher_yields_steps_in_order_and_surfaces_errors(tmp_path):
    store, keys = ramp_store(tmp_path, [40])
    sampler = WindowSampler([Source("n", 0, 1.0, "random", store, keys)], input_frames=6, batch_size=8)
    pre = Prefetcher(lambda step: sampler.sample(step_rng(0, step)), first=5, last=9)
    got = [pre.get() for _ in range(4)]
    pre.close()
    for step, batch in zip(range(5, 9), got, strict=True):
        assert np.array_equal(batch.features, sampler.sample(step_rng(0, step)).features)

    def broken(step):
        raise RuntimeError(f"bad step {step}")

    failing = Prefetcher(broken, first=0, last=3)
    with pytest.raises(RuntimeError, match="bad step 0"):
        failing.get()
    failing.close()


def test_bad_sources_are_refused(tmp_path):
    store, keys = ramp_store(tmp_path, [5])
    with pytest.raises(ValueError, match="truncation"):
        Source("x", 0, 1.0, "middle", store, keys)
    with pytest.raises(ValueError, match="one start per key"):
        Source("x", 0, 1.0, "fixed", store, keys)
    with pytest.raises(ValueError, match="no training source"):
        WindowSampler([Source("x", 0, 0.0, "end", store, keys)], input_frames=2, batch_size=2)
