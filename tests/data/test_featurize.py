import numpy as np

from mww.data.feature_store import FeatureStore
from mww.data.featurize import featurize_files, open_feature_store
from mww.device.audio import load_audio
from mww.device.features import audio_to_uint16_features
from tests.conftest import tone, write


def test_cache_reuses_unchanged_and_recomputes_changed(tmp_path, make_wav):
    files = [
        make_wav(tmp_path / "audio" / f"{i}.wav", seconds=0.5, freq=200 + 100 * i, seed=i) for i in range(4)
    ]
    store = open_feature_store(tmp_path / "processed")
    first = featurize_files(files, store, num_workers=1)
    assert (first.computed, first.reused) == (4, 0)

    second = featurize_files(files, open_feature_store(tmp_path / "processed"))
    assert (second.computed, second.reused) == (0, 4)

    write(files[1], tone(0.7, 1234.0, seed=9))  # a changed file
    third = featurize_files(files, open_feature_store(tmp_path / "processed"))
    assert (third.computed, third.reused) == (1, 3)
    assert third.keys[files[1]] != first.keys[files[1]]
    expected = audio_to_uint16_features(load_audio(files[1]))
    assert np.array_equal(open_feature_store(tmp_path / "processed").get(third.keys[files[1]]), expected)


def test_parallel_matches_serial_and_reports_failures(tmp_path, make_wav):
    files = [make_wav(tmp_path / f"{i}.wav", seconds=0.4, freq=300 + 50 * i, seed=i) for i in range(6)]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    serial = featurize_files(files, open_feature_store(tmp_path / "s"), num_workers=1)
    parallel = featurize_files(
        [*files, bad], open_feature_store(tmp_path / "p"), num_workers=2, min_clips_per_worker=1
    )
    assert parallel.computed == 6 and list(parallel.failed) == [bad] and bad not in parallel.keys
    s_store, p_store = open_feature_store(tmp_path / "s"), open_feature_store(tmp_path / "p")
    for f in files:
        assert np.array_equal(s_store.get(serial.keys[f]), p_store.get(parallel.keys[f]))


def test_identical_content_is_stored_once(tmp_path, make_wav):
    a = make_wav(tmp_path / "a.wav", seconds=0.3)
    b = make_wav(tmp_path / "b.wav", seconds=0.3)
    result = featurize_files([a, b], open_feature_store(tmp_path / "p"))
    assert result.keys[a] == result.keys[b] and result.computed == 1 and result.reused == 1


def test_a_long_recording_goes_into_the_store_block_by_block_with_the_same_features(tmp_path, monkeypatch):
    """A recording longer than LONG_FILE_S is featurized block by block straight into the store (never
    whole in memory); its features are exactly those of the whole file, for every format read in
    blocks, and a short file beside it goes the usual way."""
    import mww.data.featurize
    import mww.device.audio

    monkeypatch.setattr(mww.data.featurize, "LONG_FILE_S", 2.0)
    monkeypatch.setattr(mww.device.audio, "BLOCK_SECONDS", 0.3371)  # blocks that split 10 ms steps
    long_audio = np.concatenate([tone(3.0, 220.0, seed=1), tone(2.5, 1800.0, amp=0.05, seed=2)])
    files = [
        write(tmp_path / "long.wav", long_audio),
        write(tmp_path / "long24 stereo.wav", np.stack([long_audio, -long_audio], axis=1), subtype="PCM_24"),
        write(tmp_path / "long.flac", long_audio),
        write(tmp_path / "short.wav", tone(1.0, 500.0)),
    ]
    blocks = []
    real = FeatureStore.put_blocks

    def counting(self, key, parts):
        n = 0

        def each():
            nonlocal n
            for part in parts:
                n += 1
                yield part

        added = real(self, key, each())
        blocks.append(n)
        return added

    monkeypatch.setattr(FeatureStore, "put_blocks", counting)
    result = featurize_files(files, open_feature_store(tmp_path / "processed"))
    store = open_feature_store(tmp_path / "processed")
    print(f"3 long recordings in {blocks} blocks each, 1 short one whole: features as from the whole file")
    assert result.computed == 4 and not result.failed and len(blocks) == 3 and min(blocks) >= 15
    for path in files:
        assert np.array_equal(store.get(result.keys[path]), audio_to_uint16_features(load_audio(path)))
