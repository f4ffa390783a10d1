import numpy as np

from mww.data.feature_store import FeatureStore
from mww.data.sources import PoolEntry
from mww.model.scoring import window_scorer
from mww.train.mining import MINED_CSV, load_mined, mine_hard_negatives, save_mined


def test_mining_keeps_the_highest_windows_above_threshold_and_round_trips(tmp_path):
    store = FeatureStore(tmp_path / "store", width=2)
    loud = np.zeros((30, 2), np.uint16)
    loud[20:, 0] = 1000  # frames 20.. look like the wake word to the fake model below
    store.put_many({"a": loud, "b": np.zeros((30, 2), np.uint16)})
    pool = [PoolEntry("a", tmp_path / "a.wav", 25, 1.0), PoolEntry("b", tmp_path / "b.wav", 25, 1.0)]

    def predict(x):  # share of "loud" frames in the window
        return (x[:, :, 0] > 0).mean(axis=1)

    scorer = window_scorer(predict, input_frames=10, stride=2)
    mined = mine_hard_negatives(
        scorer, store, pool, input_frames=10, stride=2, fp_threshold=0.5, max_samples=3
    )
    assert [m.key for m in mined] == ["a", "a", "a"]
    assert [m.score for m in mined] == sorted((m.score for m in mined), reverse=True)
    assert all(m.score >= 0.5 for m in mined) and mined[0].start == 20
    # offset in the source file: the window end (frame 30 = 0.30 s) minus where the clip starts
    # in the variant (0.25 s end - 1.0 s long = -0.75 s) = 1.05 s, clamped to the clip's 1.0 s.
    assert mined[0].offset_s == 1.0

    save_mined(tmp_path, mined, step=40)
    assert load_mined(tmp_path) == mined
    csv = (tmp_path / MINED_CSV).read_text().splitlines()
    assert csv[0].startswith("source_file,offset_s,score") and len(csv) == 4
    assert load_mined(tmp_path / "nothing") == []
    none = mine_hard_negatives(
        scorer, store, pool, input_frames=10, stride=2, fp_threshold=1.1, max_samples=3
    )
    assert none == []


def test_a_window_of_a_piece_of_a_long_recording_gives_its_place_in_the_file(tmp_path):
    store = FeatureStore(tmp_path / "store", width=2)
    loud = np.zeros((30, 2), np.uint16)
    loud[20:, 0] = 1000
    store.put_many({"piece": loud})
    # the variant holds 0.25 s of the file from 40.0 s on, ending at frame 25 (0.25 s) of the variant
    pool = [PoolEntry("piece", tmp_path / "radio.wav", 25, 0.25, 40.0)]
    scorer = window_scorer(lambda x: (x[:, :, 0] > 0).mean(axis=1), 10, 2)
    mined = mine_hard_negatives(scorer, store, pool, 10, 2, fp_threshold=0.5, max_samples=1)
    # window end 0.30 s, clip start 0.0 s in the variant: 0.30 s into the piece, clamped to its
    # 0.25 s, plus the piece's 40.0 s start
    assert mined[0].offset_s == 40.25
