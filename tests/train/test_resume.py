"""The resumable state's arrays come back as saved, in order; resuming an empty folder is refused."""

from __future__ import annotations

import numpy as np
import pytest

from mww.config.load import config_from_dict
from mww.train.errors import TrainError
from mww.train.resume import load_resume, read_arrays, write_arrays


def test_arrays_round_trip_in_order(tmp_path):
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array(7, dtype=np.int64), np.zeros(0)]
    write_arrays(tmp_path / "state.npz", arrays)
    back = read_arrays(tmp_path / "state.npz")
    assert len(back) == 3
    for saved, read in zip(arrays, back, strict=True):
        assert saved.dtype == read.dtype
        np.testing.assert_array_equal(saved, read)


def test_nothing_to_resume_is_explained(tmp_path):
    config = config_from_dict({"paths": {"checkpoint_dir": str(tmp_path / "checkpoints")}})
    with pytest.raises(TrainError, match="found no resumable checkpoint"):
        load_resume(config, model=None, optimizer=None, average=None)
