"""The demo dataset generator: layout, formats, determinism, held-out speakers, refusals, reuse, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from mww.cli.generate import main
from mww.config.load import load_full_config
from mww.data.ingest import ingest
from mww.device.constants import SAMPLE_RATE_HZ
from mww.synth import request, tts
from mww.synth.dataset import OutputExistsError, generate_dataset
from mww.synth.jobs import BACKGROUND_CLIP_MS
from mww.synth.metadata import GENERATOR_VERSION, stale_reason
from mww.synth.request import GenerationCounts, GenerationError

TINY = {
    "positives": 12,
    "negatives": 12,
    "hard_negatives": 5,
    "background": 6,
    "rirs": 3,
    "ambient_seconds": 12.0,
    "speakers": 5,
}
MINIMAL = GenerationCounts(2, 0, 0, 0, 0, 0.0, 2)
ROOT = Path(__file__).resolve().parents[2]


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.wav"))
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """seed 0 with two worker processes; seed 0 again in-process; seed 1."""
    base = tmp_path_factory.mktemp("generated")
    runs = {}
    for name, seed, workers in (("a", 0, 2), ("again", 0, 1), ("other", 1, 1)):
        runs[name] = generate_dataset(
            base / name, "hey computer", seed=seed, progress=False, counts=TINY, workers=workers
        )
    return runs


def test_layout_and_counts(tiny):
    summary = tiny["a"]
    root = summary.output_dir
    expected = {"positive": 12, "negative": 12, "hard_negative": 5, "background": 6, "rirs": 3, "ambient": 1}
    assert summary.counts == expected
    for name, count in expected.items():
        assert len(list((root / name).rglob("*.wav"))) == count
    assert len(summary.speakers) == 5
    for folder in ("positive", "negative", "hard_negative"):
        assert {p.parent.name for p in (root / folder).rglob("*.wav")} == set(summary.speakers)
        assert all(p.parent.parent == root / folder for p in (root / folder).rglob("*.wav"))
    assert not list((root / "background").glob("*/*.wav")) and not list((root / "rirs").glob("*/*.wav"))
    assert (root / "ambient" / "ambient_000.wav").is_file()
    for name in ("README.txt", "generation.json", "demo_override.yaml"):
        assert (root / name).is_file()
    assert not [p for p in root.rglob("*") if ".tmp" in p.name]  # only complete files


def test_every_wav_is_device_format_with_sensible_lengths(tiny):
    root = tiny["a"].output_dir
    for path in root.rglob("*.wav"):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (
            SAMPLE_RATE_HZ,
            1,
            "PCM_16",
            "WAV",
        )
        audio, _ = sf.read(str(path), dtype="float32")
        assert np.max(np.abs(audio)) > 0.01, path
        seconds = info.frames / SAMPLE_RATE_HZ
        kind = path.relative_to(root).parts[0]
        if kind in ("positive", "hard_negative"):
            assert 1.0 <= seconds <= 2.5, path
        elif kind == "negative":
            assert 1.0 <= seconds <= 3.0, path
        elif kind == "background":
            assert seconds == pytest.approx(BACKGROUND_CLIP_MS / 1000)
        elif kind == "rirs":
            assert np.argmax(np.abs(audio)) < 0.01 * SAMPLE_RATE_HZ  # the direct path comes first
            assert np.max(np.abs(audio)) > 0.95  # normalised
        elif kind == "ambient":
            assert seconds == pytest.approx(TINY["ambient_seconds"])


def test_held_out_speakers_are_listed_and_have_folders(tiny):
    summary = tiny["a"]
    root = summary.output_dir
    held = summary.held_out_speakers
    assert len(held) == 1 and set(held) <= set(summary.speakers)
    for speaker in held:
        for folder in ("positive", "negative", "hard_negative"):
            assert list((root / folder / speaker).glob("*.wav")), (folder, speaker)
    manifest = json.loads((root / "generation.json").read_text())
    assert manifest["held_out_speakers"] == held
    assert manifest["seed"] == 0 and manifest["wake_word"] == "hey computer"
    assert manifest["counts"] == summary.counts
    assert set(manifest["speakers"]) == set(summary.speakers)
    assert all(v in tts.list_english_voices() for v in manifest["speakers"].values())


def test_override_parses_with_absolute_paths(tiny):
    summary = tiny["a"]
    override = yaml.safe_load(summary.paths["override"].read_text())
    keys = {"positive_dir", "negative_dir", "hard_negative_dir", "background_dir", "rir_dir", "ambient_dir"}
    assert set(override["paths"]) == keys
    for value in override["paths"].values():
        assert Path(value).is_absolute() and Path(value).is_dir()
    assert Path(override["paths"]["rir_dir"]).name == "rirs"
    assert override["data"]["test_speakers"] == summary.held_out_speakers
    assert override["export"]["wake_word"] == "Hey Computer"


def test_same_seed_same_bytes_different_seed_different(tiny):
    first, again, other = (_hashes(tiny[name].output_dir) for name in ("a", "again", "other"))
    assert first == again  # independent of the number of worker processes
    assert first != other
    shared = [k for k in set(first) & set(other) if k.startswith(("background", "ambient"))]
    assert shared and not any(first[k] == other[k] for k in shared)
    manifest = (tiny["a"].output_dir / "generation.json").read_bytes()
    assert manifest == (tiny["again"].output_dir / "generation.json").read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"wake_word": "   "}, "wake word"),
        ({"wake_word": "hey c0mputer"}, "wake word"),
        ({"size": "huge"}, "Unknown dataset size"),
        ({"counts": {"speakerz": 3}}, "Unknown count"),
        ({"counts": {"speakers": 1}}, "speakers"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_input_is_refused_before_writing(tmp_path, kwargs, match):
    with pytest.raises(GenerationError, match=match):
        generate_dataset(tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_existing_dataset_is_refused_unless_overwrite(tmp_path):
    user_file = tmp_path / "positive" / "me" / "take1.wav"
    user_file.parent.mkdir(parents=True)
    user_file.write_bytes(b"my recording")
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="already holds dataset files"):
        generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1)
    assert user_file.read_bytes() == b"my recording"
    summary = generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, overwrite=True)
    assert not user_file.exists() and (tmp_path / "notes.txt").read_text() == "keep me"
    assert summary.counts["positive"] == 2 and summary.counts["ambient"] == 0


def test_cli_generates_and_prints_the_next_step(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(request.SIZES, "small", MINIMAL)
    out = tmp_path / "dataset"
    assert main(["--output", str(out), "--quiet", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    override = out.resolve() / "demo_override.yaml"
    assert override.is_file() and str(out.resolve()) in printed
    assert f"mww-train --config fast_test --override {override}" in printed


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--wake-word", ""], "wake word"),
        (["--size", "huge"], "Unknown dataset size"),
        (["--seed", "abc"], "seed"),
        (["--colour", "blue"], "unrecognized arguments"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(tmp_path, capsys, argv, match):
    assert main(["--output", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_an_existing_dataset(tmp_path, capsys):
    (tmp_path / "negative").mkdir()
    (tmp_path / "negative" / "x.wav").write_bytes(b"data")
    assert main(["--output", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "already holds dataset files" in err and "--force" in err
    assert (tmp_path / "negative" / "x.wav").read_bytes() == b"data"


def test_cli_reports_an_unavailable_speech_library(tmp_path, monkeypatch, capsys):
    def broken() -> list[str]:
        raise tts.TTSUnavailableError("libespeak-ng could not be loaded: test")

    monkeypatch.setattr(tts, "list_english_voices", broken)
    assert main(["--output", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "libespeak-ng could not be loaded" in err and "Traceback" not in err


def test_script_wrapper_runs_the_cli():
    script = ROOT / "scripts" / "generate_test_dataset.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and "--wake-word" in result.stdout


def test_ingestion_accepts_the_generated_dataset(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # processed_dir (relative in the preset) lands here
    root = tiny["a"].output_dir
    config = load_full_config("fast_test", root / "demo_override.yaml")
    result = ingest(config)
    print(f"generated dataset: {len(result.clips)} clips accepted, {len(result.skipped)} skipped")
    assert result.skipped == []
    assert len(result.of("positive")) == TINY["positives"]
    held_out = set(tiny["a"].held_out_speakers)
    assert held_out
    for clip in result.clips:
        if clip.speaker in held_out:
            assert clip.split == "test"
    assert {c.split for c in result.of("ambient")} <= {"validation", "test"}


def test_reuse_keeps_a_current_dataset_untouched(tmp_path):
    first = generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, seed=2)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    again = generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, seed=2, reuse=True)
    assert again.reused and again.replaced is None and not first.reused
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == stamps
    for name in ("counts", "speakers", "held_out_speakers", "hard_negative_phrases", "paths"):
        assert getattr(again, name) == getattr(first, name), name
    manifest = json.loads((tmp_path / "generation.json").read_text())
    assert manifest["generator_version"] == GENERATOR_VERSION
    assert manifest["tts_version"] == tts.package_version() != ""


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"generator_version": None}, "an earlier version (before versions were recorded)"),
        ({"generator_version": 1}, "version 1; this is version"),
        ({"tts_version": "0.0.1"}, "espeakng-loader 0.0.1"),
    ],
)
def test_reuse_replaces_a_dataset_an_older_generator_made(tmp_path, edit, reason):
    generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, seed=2)
    manifest_path = tmp_path / "generation.json"
    manifest = json.loads(manifest_path.read_text())
    manifest.update(edit)
    manifest_path.write_text(json.dumps({k: v for k, v in manifest.items() if v is not None}))
    assert reason in stale_reason(tmp_path, "hey computer", "small", 2, MINIMAL)
    summary = generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, seed=2, reuse=True)
    assert not summary.reused and reason in summary.replaced
    assert json.loads(manifest_path.read_text())["generator_version"] == GENERATOR_VERSION


def test_reuse_replaces_a_dataset_made_for_another_request(tmp_path):
    generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, seed=2)
    summary = generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, seed=3, reuse=True)
    assert "seed 2 (asked now: 'hey computer', size small, seed 3)" in summary.replaced
    assert json.loads((tmp_path / "generation.json").read_text())["seed"] == 3


def test_reuse_never_replaces_files_the_generator_did_not_write(tmp_path):
    user_file = tmp_path / "positive" / "me" / "take1.wav"
    user_file.parent.mkdir(parents=True)
    user_file.write_bytes(b"my recording")
    with pytest.raises(OutputExistsError, match="already holds dataset files"):
        generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, reuse=True)
    assert user_file.read_bytes() == b"my recording"
    # added to a generated dataset that is outdated: refused too, with both reasons
    generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, seed=2, overwrite=True)
    user_file.parent.mkdir(parents=True)
    user_file.write_bytes(b"my recording")
    with pytest.raises(OutputExistsError, match=r"seed 2 .*and positive/ holds 3 WAV files where generation"):
        generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, seed=5, reuse=True)
    assert user_file.read_bytes() == b"my recording"


def test_cli_reuse_prints_what_it_did(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(request.SIZES, "small", MINIMAL)
    out = tmp_path / "dataset"
    argv = ["--output", str(out), "--quiet", "--reuse"]
    assert main(argv) == 0
    assert "Generated a dataset" in capsys.readouterr().out
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Reusing the dataset" in printed and "already there" in printed
    assert main([*argv, "--seed", "4"]) == 0
    printed = capsys.readouterr().out
    assert "Replaced the dataset that was in" in printed and "seed 0 (asked now" in printed
    (out / "negative").mkdir(exist_ok=True)
    (out / "negative" / "mine.wav").write_bytes(b"data")
    assert main([*argv, "--seed", "5"]) == 2
    err = capsys.readouterr().err
    assert "cannot be reused or replaced" in err and "--force" in err and "Traceback" not in err
    assert (out / "negative" / "mine.wav").read_bytes() == b"data"


def test_reuse_refuses_a_dataset_whose_generation_json_was_damaged(tmp_path):
    generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, seed=2)
    manifest_path = tmp_path / "generation.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["speakers"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(OutputExistsError, match="already holds dataset files"):
        generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, seed=2, reuse=True)
    manifest_path.write_text("{not json")
    assert "holds no generation.json written by mww-generate" in stale_reason(
        tmp_path, "hey computer", "small", 2, MINIMAL
    )


def test_every_size_gives_the_validation_split_enough_ambient_audio_to_calibrate() -> None:
    """Ambient files alternate between validation and test, so each split gets half of them."""
    from mww.synth.request import SIZES
    from mww.train.calibration import MIN_HOURS

    for name, counts in SIZES.items():
        print(f"{name}: {counts.ambient_seconds / 3600:.1f} h ambient, {MIN_HOURS} h needed per split")
        assert counts.ambient_seconds / 2 / 3600 >= MIN_HOURS
