"""The leakage audit (`mww.cluster.leakage`): one voice in two splits, near-duplicate clips across splits."""

import json

import numpy as np

from mww.cluster.leakage import leakage_audit, load_split_manifest
from mww.cluster.speaker_tree import unit_rows


def angles(*degrees):
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_leakage_audit_finds_voices_and_near_duplicates_across_splits(tmp_path):
    x = angles(0, 1, 60, 61, 120, 120)
    paths = [tmp_path / f"{i}.wav" for i in range(6)]
    hashes = ["a", "b", "c", "d", "e", "e"]
    speakers = [
        "speaker_0001",
        "speaker_0001",
        "speaker_0002",
        "speaker_0002",
        "speaker_0003",
        "speaker_0003",
    ]
    manifest_path = tmp_path / "splits.json"
    files = {
        str(paths[0]): {"split": "train", "speaker": "alice"},
        str(paths[1]): {"split": "validation", "speaker": "bob"},
        str(paths[2]): {"split": "train", "speaker": "carol"},
        str(paths[3]): {"split": "train", "speaker": "carol"},
        str(paths[4]): {"split": "train", "speaker": None},
        str(paths[5]): {"split": "test", "speaker": None},
    }
    manifest_path.write_text(json.dumps({"_meta": {}, "files": files}))
    report = leakage_audit(
        paths, unit_rows(x), speakers, hashes, load_split_manifest(manifest_path), manifest_path, 0.99
    )
    assert report.has_leak and report.audited == 6
    leaked = {leak.speaker: leak for leak in report.cluster_leaks}
    assert set(leaked) == {"speaker_0001", "speaker_0003"}
    assert leaked["speaker_0001"].per_split == {"train": 1, "validation": 1}
    assert leaked["speaker_0001"].folder_speakers == {"train": ["alice"], "validation": ["bob"]}
    pairs = {(p.first.name, p.second.name): p for p in report.near_duplicates}
    assert set(pairs) == {("4.wav", "5.wav"), ("0.wav", "1.wav")}  # cos 1° = 0.99985 >= 0.99
    assert pairs[("4.wav", "5.wav")].identical and not pairs[("0.wav", "1.wav")].identical
    clean = leakage_audit(
        paths[2:4],
        unit_rows(x[2:4]),
        speakers[2:4],
        hashes[2:4],
        load_split_manifest(manifest_path),
        manifest_path,
        0.99,
    )
    assert not clean.has_leak
