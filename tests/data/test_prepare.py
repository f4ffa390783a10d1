import os
import subprocess
import sys

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


def _without_root_privileges() -> None:
    """In a child process of root: give up the capabilities that let root write into any folder, so a
    read-only folder is read-only for it as for any user (prctl PR_CAPBSET_DROP, kept across exec)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_unprivileged(args, **kwargs) -> subprocess.CompletedProcess:
    """Run a command as a user for whom folder permissions hold, whoever runs the tests."""
    preexec = _without_root_privileges if os.geteuid() == 0 else None
    return subprocess.run(args, preexec_fn=preexec, capture_output=True, text=True, check=False, **kwargs)


def test_a_read_only_output_folder_exits_2_naming_it(tmp_path):
    """The processed folder (where mww-prepare writes the split manifest and the features) is read-only:
    one paragraph naming it, exit 2, nothing written. Run in a process for which the folder's
    permissions hold even when the tests run as root."""
    from mww.config.load import dump_config

    build_dataset(tmp_path, speakers=3, per_speaker=2, negatives=3)
    cfg_path = dump_config(make_config(tmp_path), tmp_path / "cfg.yaml")
    processed = tmp_path / "processed"
    processed.mkdir()
    processed.chmod(0o555)
    try:
        probe = run_unprivileged([sys.executable, "-c", f"open({str(processed / 'probe')!r}, 'w')"])
        if probe.returncode == 0:
            pytest.skip("this system lets the test process write into a read-only folder")
        done = run_unprivileged(
            [sys.executable, "-m", "mww.cli.prepare", "--config", str(cfg_path), "--quiet"]
        )
    finally:
        processed.chmod(0o755)
    err = " ".join(done.stderr.split())
    print(f"read-only {processed}: exit {done.returncode}: {err}")
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    assert err.startswith("mww-prepare: error:") and str(processed) in err and "not writable" in err
    assert list(processed.iterdir()) == []


def test_a_full_disk_while_caching_features_exits_2_and_the_next_run_goes_on(tmp_path, capsys, monkeypatch):
    """The disk fills up while mww-prepare caches features: exit 2 with one paragraph, the features
    cached before stay, and once there is room again the next run computes only what is missing."""
    from mww.config.load import dump_config
    from tests.data.test_feature_store import fill_disk_after

    build_dataset(tmp_path, speakers=3, per_speaker=2, negatives=3)
    cfg_path = dump_config(make_config(tmp_path), tmp_path / "cfg.yaml")
    assert main(["--config", str(cfg_path), "--quiet"]) == 0
    capsys.readouterr()
    for i in range(4):
        write(
            tmp_path / "negative" / f"new{i}.wav",
            np.sin(np.arange(16000) * (0.05 + i / 50)).astype(np.float32),
        )
    fill_disk_after(monkeypatch, room=4000)
    code = main(["--config", str(cfg_path), "--quiet"])
    err = " ".join(capsys.readouterr().err.split())
    with capsys.disabled():
        print(f"\nfull disk: exit {code}: {err}")
    assert code == 2 and "Traceback" not in err and "disk is full" in err and "paths.processed_dir" in err
    monkeypatch.undo()
    assert main(["--config", str(cfg_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    with capsys.disabled():
        print(next(line for line in out.splitlines() if line.startswith("features")))
    assert "features: 4 computed, 11 reused from cache, 0 failed" in out
