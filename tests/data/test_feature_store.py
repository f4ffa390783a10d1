import errno
import signal
import subprocess
import sys

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


class _FillingDisk:
    """An open data file on a disk that fills up after `room` more bytes (OSError ENOSPC, as a full disk
    gives), with what was written before the disk filled left in the file."""

    def __init__(self, handle, room):
        self.handle, self.room = handle, room

    def write(self, data):
        if len(data) > self.room:
            self.handle.write(bytes(data)[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.handle.__exit__(*exc)


def fill_disk_after(monkeypatch, room):
    import builtins

    import mww.data.feature_store

    def opening(path, mode="r", *args, **kwargs):
        handle = builtins.open(path, mode, *args, **kwargs)  # noqa: SIM115 - returned to the caller
        return _FillingDisk(handle, room) if str(path).endswith("frames.u16") and "a" in mode else handle

    monkeypatch.setattr(mww.data.feature_store, "open", opening, raising=False)


def test_a_full_disk_while_caching_keeps_what_was_stored_and_nothing_half_written(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path, width=4)
    store.put_many({"a": arr(3, 1)})
    size = (tmp_path / "frames.u16").stat().st_size
    fill_disk_after(monkeypatch, room=20)
    with pytest.raises(FeatureStoreError) as full:
        store.put_many({"b": arr(2, 2), "c": arr(50, 3)})  # b fits, c does not
    with pytest.raises(FeatureStoreError):
        store.put_blocks("d", iter([arr(1, 4), arr(100, 4)]))
    print(f"full disk: {full.value}")
    assert "disk is full" in str(full.value) and str(tmp_path) in str(full.value)
    assert (tmp_path / "frames.u16").stat().st_size == size  # cut back to what the index holds
    assert store.keys() == ["a"] and np.array_equal(store.get("a"), arr(3, 1))
    monkeypatch.undo()
    again = FeatureStore(tmp_path, width=4)
    assert again.keys() == ["a"] and again.put_blocks("d", iter([arr(1, 4), arr(2, 5)]))
    assert np.array_equal(again.get("d"), np.concatenate([arr(1, 4), arr(2, 5)]))


def test_a_recording_that_fails_halfway_leaves_no_entry(tmp_path):
    store = FeatureStore(tmp_path, width=4)
    store.put_many({"a": arr(2, 1)})

    def blocks():
        yield arr(5, 7)
        raise ValueError("the recording turned out unreadable")

    with pytest.raises(ValueError, match="unreadable"):
        store.put_blocks("b", blocks())
    assert "b" not in store and (tmp_path / "frames.u16").stat().st_size == 2 * 4 * 2
    assert "b" not in FeatureStore(tmp_path, width=4)


KILLED_WRITER = """
import os, sys, time
import numpy as np
from mww.data.feature_store import FeatureStore

store = FeatureStore(sys.argv[1], width=4)
store.put_many({"committed": np.full((3, 4), 1, np.uint16)})

def blocks():
    for i in range(1000):
        yield np.full((50, 4), 9, np.uint16)
        if i == 10:
            print("writing", flush=True)
            time.sleep(60)  # killed here, in the middle of an array

store.put_blocks("half", blocks())
"""


def test_a_kill_during_caching_leaves_no_entry_a_later_run_trusts(tmp_path):
    """A real process killed (SIGKILL: no clean-up at all) in the middle of writing an array: the next
    run sees only what was committed, cuts off the rest, and computes the array again."""
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    left = (tmp_path / "frames.u16").stat().st_size
    store = FeatureStore(tmp_path, width=4)
    print(f"killed mid-array with {left} bytes in the data file; the next run keeps {store.keys()}")
    assert left > 3 * 4 * 2 and store.keys() == ["committed"]
    assert (tmp_path / "frames.u16").stat().st_size == 3 * 4 * 2
    assert store.put_blocks("half", iter([arr(2, 6)])) and np.array_equal(store.get("half"), arr(2, 6))


def test_float_features_are_read_slice_by_slice_as_converting_the_whole_array(tmp_path):
    from mww.device.features import uint16_to_float

    store = FeatureStore(tmp_path, width=4)
    rng = np.random.default_rng(0)
    arrays = {k: rng.integers(0, 700, (n, 4)).astype(np.uint16) for k, n in (("a", 7), ("b", 1000), ("c", 0))}
    store.put_many(arrays)
    for key, array in arrays.items():
        lazy, whole = store.floats(key), uint16_to_float(array)
        assert lazy.shape == whole.shape and len(lazy) == len(whole)
        np.testing.assert_array_equal(np.asarray(lazy), whole)
        for part in (slice(0, 3), slice(5, 999), slice(990, 2000), slice(None, None, 7), slice(-4, None)):
            np.testing.assert_array_equal(lazy[part], whole[part])
    print("stored features read by slices: equal to the whole array converted, for 5 kinds of slice")
