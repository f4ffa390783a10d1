import numpy as np
import pytest

from mww.data.feature_store import FeatureStore, FeatureStoreError


def arr(n, fill):
    return np.full((n, 4), fill, dtype=np.uint16)


def test_put_get_and_reopen(tmp_path):
    store = FeatureStore(tmp_path, width=4)
    assert store.put_many({"a": arr(3, 1), "b": arr(0, 0), "c": arr(5, 7)}) == 3
    assert store.put_many({"a": arr(9, 9)}) == 0  # existing key kept
    again = FeatureStore(tmp_path, width=4)
    assert sorted(again.keys()) == ["a", "b", "c"]
    assert np.array_equal(again.get("a"), arr(3, 1))
    assert again.get("b").shape == (0, 4)
    assert np.array_equal(again.get("c"), arr(5, 7))
    assert again.n_rows("c") == 5


def test_uncommitted_tail_is_dropped(tmp_path):
    store = FeatureStore(tmp_path, width=4)
    store.put_many({"a": arr(2, 3)})
    with open(tmp_path / "frames.u16", "ab") as handle:  # a crash after append, before index write
        handle.write(arr(10, 5).tobytes())
    reopened = FeatureStore(tmp_path, width=4)
    reopened.put_many({"b": arr(1, 8)})
    assert np.array_equal(reopened.get("b"), arr(1, 8))
    assert (tmp_path / "frames.u16").stat().st_size == 3 * 4 * 2


def test_width_mismatch_and_truncated_data_are_reported(tmp_path):
    FeatureStore(tmp_path, width=4).put_many({"a": arr(2, 1)})
    with pytest.raises(FeatureStoreError, match="width 4"):
        FeatureStore(tmp_path, width=40)
    (tmp_path / "frames.u16").write_bytes(b"")
    with pytest.raises(FeatureStoreError, match="damaged"):
        FeatureStore(tmp_path, width=4)


def test_bad_shape_is_refused(tmp_path):
    with pytest.raises(FeatureStoreError, match="expected"):
        FeatureStore(tmp_path, width=4).put_many({"x": np.zeros((2, 3), np.uint16)})
