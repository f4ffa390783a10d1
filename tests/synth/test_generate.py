"""The demo dataset generator: layout, formats, determinism, held-out speakers, refusals and the CLI."""

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
from mww.synth import generate, tts
from mww.synth.generate import (
    GenerationCounts,
    GenerationError,
    OutputExistsError,
    confusable_phrases,
    contains_phrase,
    generate_dataset,
    negative_texts,
)

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
            assert seconds == pytest.approx(generate.BACKGROUND_CLIP_MS / 1000)
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


def test_held_out_voices_take_whole_variants_about_a_fifth():
    chosen = ["en+f1", "en-us+m2", "en+zac", "en-us+f1", "en-029+m2", "en-gb-x-rp+zac", "en+m3", "en-us+m3"]
    chosen += [f"en-029+v{i}" for i in range(12)]  # 20 voices; variants in first-chosen order
    held = generate.held_out_voices(chosen, 0.2)
    assert held == chosen[-4:]  # the last four variants, one voice each, make 20 %
    held = generate.held_out_voices(chosen[:8], 0.5)  # four variants of two voices each
    assert sorted(held) == sorted(["en+zac", "en-gb-x-rp+zac", "en+m3", "en-us+m3"])
    assert generate.held_out_voices(["en+f1", "en-us+f1"], 0.2) == []  # one variant: nothing to hold out
    assert generate.held_out_voices(["en+f1", "en+m1"], 0.2) == ["en+m1"]


def test_no_held_out_timbre_is_heard_in_training():
    """With more speakers than variants, every accent of a held-out variant is held out."""
    plan = generate._plan("hey computer", generate.GenerationCounts(300, 0, 0, 0, 0, 0.0, 300), seed=0)
    variant = {folder: voice.partition("+")[2] for folder, voice in plan.speakers.items()}
    held = {variant[f] for f in plan.held_out}
    trained = {variant[f] for f in plan.speakers if f not in plan.held_out}
    n_held, n_trained = len(plan.held_out), len(trained)
    print(f"\n300 speakers: {n_held} held out ({len(held)} variants); {n_trained} variants in training")
    assert held and not held & trained
    assert 0.15 <= len(plan.held_out) / 300 <= 0.3


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


def test_confusable_phrases_for_hey_computer():
    phrases = confusable_phrases("hey computer", 12)
    assert len(phrases) == 12 and len(set(phrases)) == 12
    assert {"computer", "hey compute", "a computer"} <= set(phrases)
    assert "hey computer" not in phrases

    def one_consonant_apart(a: str, b: str) -> bool:
        diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y] if len(a) == len(b) else []
        return len(diff) == 1 and all(c not in "aeiou " for c in diff[0])

    assert any(one_consonant_apart(p, "hey computer") for p in phrases)
    assert any(p in ("hey commuter", "hey computor", "hey compuder") for p in phrases)
    assert confusable_phrases("Hey, Computer!", 12) == phrases  # case and punctuation do not matter
    assert confusable_phrases("hey computer", 3) == phrases[:3]


def test_confusables_that_sound_like_the_wake_word_are_not_negatives():
    candidates = confusable_phrases("hey computer", 2 * generate.HARD_NEGATIVE_PHRASES)
    assert {"hey compuder", "hey conputer"} <= set(candidates)  # the spelling rules make them...
    phrases = generate._audibly_distinct(candidates, "hey computer")  # ...the phonemes drop them
    # In American speech "compuder" has the flap of "computer", and "conputer" its m: the same sound.
    assert not {"hey compuder", "hey conputer"} & set(phrases)
    assert {"hey combuter", "hey commuter", "hi computer", "hey compute"} <= set(phrases)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("h'eI k@mpj'u:t#3", "h'eI k@mpj'u:d3", True),  # the American flap
        ("h'eI k@mpj'u:t#3", "h'eI k@npj'u:t#3", True),  # a nasal takes the place of the next stop
        ("'InpUt", "'ImpUt", True),
        ("h'eI k@mpj'u:t#3", "h'eI k@mbj'u:t#3", False),  # p / b stay apart
        ("h'eI k@mpj'u:t#3", "h'eI k@mj'u:t#3", False),
        ("n'aIt", "m'aIt", False),  # a nasal before a vowel keeps its place
    ],
)
def test_phonetic_key_merges_only_sounds_speech_does_not_keep_apart(a, b, same):
    assert (generate._phonetic_key(a) == generate._phonetic_key(b)) is same


@pytest.mark.parametrize("phrase", ["alexa", "ok nabu", "hey jarvis", "turn on the light"])
def test_confusable_phrases_work_for_any_phrase(phrase):
    phrases = confusable_phrases(phrase, 20)
    assert phrases and len(phrases) <= 20
    assert not any(contains_phrase(p, phrase) for p in phrases)


def test_negative_texts_never_contain_the_wake_word():
    texts = negative_texts(np.random.default_rng(0), 500, "hey computer")
    assert len(set(texts)) > 400
    assert not any(contains_phrase(t, "hey computer") for t in texts)
    assert not any({"hey", "computer"} & set(t.lower().replace(",", "").split()) for t in texts)


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
    monkeypatch.setitem(generate.SIZES, "small", MINIMAL)
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
    assert manifest["generator_version"] == generate.GENERATOR_VERSION
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
    assert reason in generate.stale_reason(tmp_path, "hey computer", "small", 2, MINIMAL)
    summary = generate_dataset(tmp_path, counts=MINIMAL, progress=False, workers=1, seed=2, reuse=True)
    assert not summary.reused and reason in summary.replaced
    assert json.loads(manifest_path.read_text())["generator_version"] == generate.GENERATOR_VERSION


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
    monkeypatch.setitem(generate.SIZES, "small", MINIMAL)
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
    assert "holds no generation.json written by mww-generate" in generate.stale_reason(
        tmp_path, "hey computer", "small", 2, MINIMAL
    )
