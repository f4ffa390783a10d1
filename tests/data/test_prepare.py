import numpy as np
import pytest

from mww.cli.prepare import main
from mww.data.ingest import IngestError
from mww.data.prepare import prepare_data
from tests.conftest import build_dataset, make_config, write


def test_prepare_featurizes_split_kinds_and_reuses_cache(tmp_path):
    build_dataset(tmp_path, speakers=3, per_speaker=2, negatives=4)
    cfg = make_config(tmp_path)
    first = prepare_data(cfg, progress=False)
    n_featurized = (
        len(first.ingest.of("positive")) + len(first.ingest.of("negative")) + len(first.ingest.of("ambient"))
    )
    assert first.features.computed == n_featurized == 6 + 4 + 2
    ambient = first.ingest.of("ambient")[0]
    assert first.store.get(first.features.keys[ambient.path]).shape[0] > 400  # 5 s of frames
    assert all(c.path not in first.features.keys for c in first.ingest.of("background"))
    second = prepare_data(cfg, progress=False)
    assert second.features.computed == 0 and second.features.reused == n_featurized


def test_cli_prints_summary_and_rejects_bad_config(tmp_path, capsys, monkeypatch):
    build_dataset(tmp_path, speakers=3, per_speaker=2, negatives=3)
    monkeypatch.chdir(tmp_path)
    override = tmp_path / "o.yaml"
    override.write_text(
        "paths:\n  positive_dir: positive\n  negative_dir: negative\n  ambient_dir: ambient\n"
        "  background_dir: background\n  rir_dir: rirs\n  processed_dir: processed\n"
    )
    assert main(["--config", "fast_test", "--override", str(override), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "positive: 6 clips" in out and "features: 11 computed" in out
    assert (tmp_path / "processed" / "splits.json").exists()

    override.write_text("training:\n  batchsize: 3\n")
    assert main(["--config", "fast_test", "--override", str(override), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "batch_size" in err and "o.yaml" in err and "Traceback" not in err

    empty = tmp_path / "empty.yaml"
    empty.write_text(f"paths:\n  positive_dir: {tmp_path / 'nothing'}\n")
    assert main(["--config", "fast_test", "--override", str(empty), "--quiet"]) == 2
    assert "No audio files were found" in capsys.readouterr().err


def test_corrupt_positive_does_not_stop_preparation(tmp_path):
    build_dataset(tmp_path, speakers=3, per_speaker=1, negatives=2)
    (tmp_path / "positive" / "spk00" / "broken.wav").write_bytes(b"\x00" * 100)
    write(tmp_path / "positive" / "spk01" / "quiet.wav", np.zeros(16000, np.float32))
    cfg = make_config(tmp_path)
    prepared = prepare_data(cfg, progress=False)
    assert {s.path.name for s in prepared.ingest.skipped} == {"broken.wav", "quiet.wav"}
    assert len(prepared.features.failed) == 0


def test_enabled_clustering_takes_speakers_from_the_namelist_without_moving_files(tmp_path):
    import json

    from mww.config.load import config_from_dict, deep_merge

    build_dataset(tmp_path, speakers=4, per_speaker=2, negatives=2)
    positives = sorted((tmp_path / "positive").rglob("*.wav"))
    namelist = tmp_path / "positive_namelist.json"
    mappings = {str(p): ("speaker_0001" if i % 2 else "speaker_0002") for i, p in enumerate(positives)}
    namelist.write_text(json.dumps({"_meta": {}, "mappings": mappings}))
    base = make_config(tmp_path).to_dict()
    on = {"speaker_clustering": {"enabled": True, "namelist": str(namelist)}}
    prepared = prepare_data(config_from_dict(deep_merge(base, on)), progress=False)
    speakers = {c.path: c.speaker for c in prepared.ingest.of("positive")}
    assert set(speakers.values()) == {"speaker_0001", "speaker_0002"}
    assert all(speakers[p.resolve()] == mappings[str(p)] for p in positives)
    assert sorted((tmp_path / "positive").rglob("*.wav")) == positives  # nothing moved

    missing = {"speaker_clustering": {"enabled": True}}
    with pytest.raises(IngestError, match=r"speaker_clustering\.namelist is not set"):
        prepare_data(config_from_dict(deep_merge(base, missing)), progress=False)
