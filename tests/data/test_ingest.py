import json
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from mww.data.ingest import (
    IngestError,
    ingest,
    load_namelist,
    split_speakers,
    summary_lines,
)
from mww.device.constants import SAMPLE_RATE_HZ
from tests.conftest import build_dataset, make_config, tone, write


def test_bad_files_are_skipped_with_reasons_and_report(tmp_path):
    build_dataset(tmp_path, speakers=3)
    pos = tmp_path / "positive" / "spk00"
    (pos / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    sf.write(str(pos / "empty.wav"), np.zeros(0, np.float32), SAMPLE_RATE_HZ)
    write(pos / "silent.wav", np.zeros(SAMPLE_RATE_HZ, np.float32))
    write(pos / "short.wav", tone(0.05, 400))
    write(pos / "long.wav", tone(6.0, 400))
    (pos / "notes.txt").write_text("not audio, ignored")
    result = ingest(make_config(tmp_path))
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert reasons == {
        "corrupt.wav": "unreadable",
        "empty.wav": "empty",
        "silent.wav": "silent",
        "short.wav": "too_short",
        "long.wav": "too_long",
    }
    report = result.report_path.read_text()
    for name in reasons:
        assert name in report
    lines = summary_lines(result)
    print("\n".join(lines))
    assert any(line.startswith("skipped 1 positive file(s): silent") for line in lines)
    assert len(result.of("positive")) == 9


def test_resampled_stereo_file_is_accepted(tmp_path):
    build_dataset(tmp_path, speakers=3)
    stereo = np.stack([tone(1.0, 500, rate=44100), tone(1.0, 500, rate=44100)], axis=1)
    path = tmp_path / "positive" / "spk01" / "stereo44k.wav"
    sf.write(str(path), stereo, 44100, subtype="PCM_16")
    clip = next(c for c in ingest(make_config(tmp_path)).clips if c.path == path)
    assert clip.speaker == "spk01" and abs(clip.duration_s - 1.0) < 1e-3


def test_splits_are_speaker_disjoint_deterministic_and_persisted(tmp_path):
    build_dataset(tmp_path, speakers=12)
    cfg = make_config(tmp_path, validation_fraction=0.2, test_fraction=0.2)
    first = ingest(cfg)
    positives = first.of("positive")
    by_speaker = {}
    for clip in positives:
        by_speaker.setdefault(clip.speaker, set()).add(clip.split)
    assert all(len(splits) == 1 for splits in by_speaker.values())  # speaker-disjoint
    counts = Counter(next(iter(v)) for v in by_speaker.values())
    assert counts["validation"] >= 1 and counts["test"] >= 1 and counts["train"] >= 6
    assert {c.split for c in first.of("ambient")} == {"validation", "test"}
    assert all(c.split is None for c in first.of("background") + first.of("rir"))

    manifest = json.loads(first.manifest_path.read_text())
    assert manifest["files"][str(positives[0].path)]["split"] == positives[0].split

    # Same settings, fresh manifest: identical assignment (deterministic).
    first.manifest_path.unlink()
    again = ingest(cfg)
    assert [(c.path, c.split) for c in again.clips] == [(c.path, c.split) for c in first.clips]

    # New speaker added: existing files keep their split.
    write(tmp_path / "positive" / "zz_new" / "0.wav", tone(1.0, 777))
    grown = {c.path: c.split for c in ingest(cfg).clips}
    assert all(grown[c.path] == c.split for c in first.clips)

    # Another seed gives another split.
    other = ingest(make_config(tmp_path, validation_fraction=0.2, test_fraction=0.2, split_seed=99))
    assert [c.split for c in other.of("positive")] != [c.split for c in first.of("positive")]


def test_the_same_dataset_in_another_folder_splits_the_same_way(tmp_path):
    """Files with no speaker (ambient recordings, loose negatives) split by their path inside the
    dataset, not by where the dataset lies: a copy elsewhere trains and validates on the same files."""
    first_root = tmp_path / "a" / "dataset"
    build_dataset(first_root, speakers=4)
    for i in range(30):
        write(first_root / "negative" / f"loose{i}.wav", tone(1.0, 1200 + 10 * i, seed=2000 + i))
    for i in range(2, 8):
        write(first_root / "ambient" / f"amb{i}.wav", tone(5.0, 150.0 + i))
    copy_root = tmp_path / "elsewhere" / "deeper" / "dataset"
    shutil.copytree(first_root, copy_root)

    def splits(root):
        result = ingest(make_config(root, validation_fraction=0.3, test_fraction=0.3))
        return {
            (c.kind, c.path.relative_to(root).as_posix()): c.split
            for c in result.clips
            if c.speaker is None and c.split is not None
        }

    first, copy = splits(first_root), splits(copy_root)
    assert len(first) == 78 and first == copy  # 70 negatives, 8 ambient recordings
    assert {split for (kind, _), split in first.items() if kind == "ambient"} == {"validation", "test"}
    assert set(first.values()) == {"train", "validation", "test"}


def test_pinned_test_speakers_and_their_negatives_stay_out_of_training(tmp_path):
    build_dataset(tmp_path, speakers=6)
    write(tmp_path / "negative" / "spk03" / "said_something.wav", tone(1.0, 1500))
    write(tmp_path / "hard_negative" / "spk03" / "close.wav", tone(1.0, 1600))
    result = ingest(make_config(tmp_path, test_speakers=["spk03"]))
    held = [c for c in result.clips if c.speaker == "spk03"]
    assert {c.kind for c in held} == {"positive", "negative", "hard_negative"}
    assert {c.split for c in held} == {"test"}


def test_namelist_speakers_override_folders(tmp_path):
    build_dataset(tmp_path, speakers=3)
    target = tmp_path / "positive" / "spk00" / "0.wav"
    namelist = tmp_path / "positive_namelist.json"
    namelist.write_text(json.dumps({"_meta": {}, "mappings": {"spk00/0.wav": "speaker_0007"}}))
    mapping = load_namelist(namelist, tmp_path / "positive")
    result = ingest(make_config(tmp_path), namelist=mapping)
    assert next(c for c in result.clips if c.path == target).speaker == "speaker_0007"


def test_bad_namelist_and_missing_positives_are_clear_errors(tmp_path):
    bad = tmp_path / "n.json"
    bad.write_text("{not json")
    with pytest.raises(IngestError, match=r"namelist .*n\.json could not be used.*mww-cluster-analyze"):
        load_namelist(bad, tmp_path)
    with pytest.raises(IngestError, match=r"No audio files were found under the positive folder"):
        ingest(make_config(tmp_path))


def test_parallel_ingest_matches_serial(tmp_path):
    build_dataset(tmp_path, speakers=4, negatives=80)
    serial = ingest(make_config(tmp_path))
    parallel = ingest(make_config(tmp_path), num_workers=2)
    assert serial.clips == parallel.clips


def test_split_speakers_hits_fractions():
    sizes = {f"s{i}": 10 for i in range(100)}
    out = split_speakers(sizes, seed=1, validation_fraction=0.1, test_fraction=0.1)
    counts = Counter(out.values())
    assert counts == {"train": 80, "validation": 10, "test": 10}
    assert out == split_speakers(sizes, seed=1, validation_fraction=0.1, test_fraction=0.1)


def _counts(result) -> dict:
    return {
        "clips": Counter((c.kind, c.speaker, c.split) for c in result.clips),
        "skipped": Counter((s.kind, s.reason) for s in result.skipped),
    }


def test_a_linked_recording_folder_counts_like_a_real_one(tmp_path):
    # The same speaker folder, once in place and once linked in from elsewhere.
    real, linked = tmp_path / "real", tmp_path / "linked"
    build_dataset(real, speakers=4)
    shutil.copytree(real, linked, symlinks=True)
    elsewhere = tmp_path / "elsewhere" / "spk03"
    elsewhere.parent.mkdir()
    shutil.move(str(linked / "positive" / "spk03"), str(elsewhere))
    (linked / "positive" / "spk03").symlink_to(elsewhere, target_is_directory=True)
    with_link, without = ingest(make_config(linked)), ingest(make_config(real))
    print(f"linked: {len(with_link.of('positive'))} positives, in place: {len(without.of('positive'))}")
    assert _counts(with_link) == _counts(without)
    assert {c.speaker for c in with_link.of("positive")} == {"spk00", "spk01", "spk02", "spk03"}


def test_link_loops_and_duplicate_links_end_each_real_file_once(tmp_path):
    build_dataset(tmp_path, speakers=3)
    spk = tmp_path / "positive" / "spk00"
    n_before = len(ingest(make_config(tmp_path)).of("positive"))
    (spk / "loop").symlink_to(spk, target_is_directory=True)  # a folder linked into itself
    (tmp_path / "positive" / "spk00_again").symlink_to(spk, target_is_directory=True)  # the same files twice
    result = ingest(make_config(tmp_path))
    print(f"{n_before} positives before the links, {len(result.of('positive'))} after")
    assert len(result.of("positive")) == n_before


def test_a_link_that_points_nowhere_is_reported_by_name(tmp_path):
    build_dataset(tmp_path, speakers=3)
    gone_file = tmp_path / "positive" / "spk01" / "moved.wav"
    gone_file.symlink_to(tmp_path / "nowhere.wav")
    gone_dir = tmp_path / "positive" / "my_voice"
    gone_dir.symlink_to(tmp_path / "unplugged_drive" / "my_voice", target_is_directory=True)
    result = ingest(make_config(tmp_path))
    broken = {s.path.name: s for s in result.skipped if s.reason == "broken_link"}
    print({name: s.detail for name, s in broken.items()})
    assert set(broken) == {"moved.wav", "my_voice"}
    assert "nowhere.wav" in broken["moved.wav"].detail and "does not exist" in broken["my_voice"].detail
    assert "my_voice" in result.report_path.read_text()
    assert any("broken_link" in line for line in summary_lines(result))


def _odd_files(folder):
    """Every kind of audio file a user brings, by name: (writer, the skip reason, or None when it is used)."""
    rate8k, rate48k = 8000, 48000
    return {
        "corrupt header.wav": (
            lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00garbage"),
            "unreadable",
        ),
        "zero length.wav": (lambda p: p.write_bytes(b""), "unreadable"),
        "no samples.wav": (lambda p: sf.write(str(p), np.zeros(0, np.float32), SAMPLE_RATE_HZ), "empty"),
        "all silent.wav": (lambda p: write(p, np.zeros(SAMPLE_RATE_HZ, np.float32)), "silent"),
        "phone 8 kHz.wav": (lambda p: write(p, tone(1.0, 440, rate=rate8k), rate=rate8k), None),
        "48 kHz stereo.wav": (
            lambda p: write(p, np.stack([tone(1.0, 440, rate=rate48k)] * 2, axis=1), rate=rate48k),
            None,
        ),
        "8-bit.wav": (lambda p: write(p, tone(1.0, 440), subtype="PCM_U8"), None),
        "24-bit.wav": (lambda p: write(p, tone(1.0, 440), subtype="PCM_24"), None),
        "take.flac": (lambda p: write(p, tone(1.0, 440), subtype="PCM_16"), None),
        "take.ogg": (lambda p: write(p, tone(1.0, 440), subtype="VORBIS"), None),
        "take.mp3": (lambda p: write(p, tone(1.0, 440), subtype="MPEG_LAYER_III"), None),
        "my take 1.wav": (lambda p: write(p, tone(1.0, 440)), None),
        "señal café ü 声.wav": (lambda p: write(p, tone(1.0, 440)), None),
    }


def test_every_kind_of_audio_file_is_used_or_skipped_by_name(tmp_path, capsys):
    """mww-prepare on a dataset holding every kind of file users bring: the ones soundfile decodes are
    converted and used, the others skipped with their reason, named in the report; it exits 0."""
    from mww.cli.prepare import main
    from mww.config.load import dump_config

    build_dataset(tmp_path, speakers=3, per_speaker=2, negatives=3)
    folder = tmp_path / "positive" / "spk01"
    cases = _odd_files(folder)
    for name, (writer, _) in cases.items():
        writer(folder / name)
    cfg_path = dump_config(make_config(tmp_path), tmp_path / "cfg.yaml")
    code = main(["--config", str(cfg_path), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err, captured.err
    report = (tmp_path / "processed" / "ingest_report.txt").read_text()
    skipped = {line.split("\t")[2]: line.split("\t")[1] for line in report.splitlines()[2:]}
    used = json.loads((tmp_path / "processed" / "splits.json").read_text())["files"]
    for name, (_, reason) in cases.items():
        path = str(folder / name)
        seen = skipped.get(path) or f"used, {used[path]['duration_s']:.3f} s"
        with capsys.disabled():
            print(f"\n{name!r}: {seen}", end="")
        assert skipped.get(path) == reason and (path in used) == (reason is None), name
    lines = [line for line in captured.out.splitlines() if line.startswith("skipped")]
    assert lines == [
        "skipped 1 positive file(s): empty (see {})".format(tmp_path / "processed" / "ingest_report.txt"),
        "skipped 1 positive file(s): silent (see {})".format(tmp_path / "processed" / "ingest_report.txt"),
        "skipped 2 positive file(s): unreadable (see {})".format(
            tmp_path / "processed" / "ingest_report.txt"
        ),
    ]


def test_a_long_recording_is_checked_block_by_block_as_if_whole(tmp_path, monkeypatch):
    """A recording of hours is never read whole: ingestion measures its length and peak block by
    block, and finds what reading it whole finds (a 16 kHz file here, cut into blocks of 0.37 s)."""
    import mww.device.audio
    from mww.data.ingest import check_clip
    from mww.device.audio import load_audio

    audio = np.concatenate([tone(4.0, 150.0, amp=0.05), tone(3.0, 900.0, amp=0.6, seed=3), tone(1.3, 60.0)])
    path = write(tmp_path / "ambient" / "evening in the kitchen.wav", audio)
    whole = load_audio(path)
    monkeypatch.setattr(mww.device.audio, "BLOCK_SECONDS", 0.37)
    blocks = list(mww.device.audio.audio_blocks(path))
    clip = check_clip(path, "ambient", 0.2, 3600.0, -60.0)
    print(f"{path.name}: {len(blocks)} blocks, {clip.duration_s} s, as read whole")
    assert len(blocks) == 23 and np.array_equal(np.concatenate(blocks), whole)
    assert clip.duration_s == round(whole.size / SAMPLE_RATE_HZ, 6)
    monkeypatch.setattr(mww.device.audio, "BLOCK_SECONDS", 1e6)  # the same with one block
    assert check_clip(path, "ambient", 0.2, 3600.0, -60.0) == clip
    assert check_clip(path, "ambient", 0.2, 5.0, -60.0).reason == "too_long"
