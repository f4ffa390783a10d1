"""`mww-evaluate --positives DIR --ambient DIR`: an exported model on any folders of recordings, with the
same report, JSON and files as a split, under either runtime's detection rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from mww.cli.evaluate import main
from mww.device import constants as C
from mww.device.audio import write_wav
from tests.evaluate.test_listen import SPOKEN, official, speech

MODEL = official("okay_nabu").with_suffix(".tflite")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """positives/<speaker>/*.wav (each a single 'okay nabu' after a short pause), one silent take, and
    ambient/*.wav (speech that is not the wake word, and quiet noise)."""
    root = tmp_path_factory.mktemp("folders")
    phrase, voices = SPOKEN["okay_nabu"]
    for i, voice in enumerate(voices):
        write_wav(root / "positives" / f"spk{i % 2}" / f"take{i}.wav", speech(phrase, (voice,), lead_s=0.3))
    write_wav(root / "positives" / "spk1" / "silent.wav", np.zeros(C.SAMPLE_RATE_HZ, np.float32))
    write_wav(root / "ambient" / "talk.wav", speech("the weather is nice today", ("en-us+m1", "en-us+f2")))
    rng = np.random.default_rng(0)
    write_wav(
        root / "ambient" / "hiss.wav", (0.01 * rng.standard_normal(20 * C.SAMPLE_RATE_HZ)).astype(np.float32)
    )
    return root / "positives", root / "ambient"


def show(capsys, text: str) -> None:
    """Print into the test log, outside what the command's output is read from."""
    with capsys.disabled():
        print(f"\n{text}")


def run(capsys, args: list[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, " ".join(captured.err.split())


def evaluate_json(capsys, positives: Path, ambient: Path, *extra: str) -> dict:
    code, out, err = run(
        capsys, ["--tflite", MODEL, "--positives", positives, "--ambient", ambient, *extra, "--json"]
    )
    assert code == 0, err
    return json.loads(out)


def test_folder_mode_reports_recall_fah_and_both_rules(folders, tmp_path, capsys):
    positives, ambient = folders
    code, out, err = run(
        capsys,
        [
            "--tflite",
            MODEL,
            "--positives",
            positives,
            "--ambient",
            ambient,
            "--output-dir",
            tmp_path / "eval",
        ],
    )
    show(capsys, out)
    assert code == 0, err
    assert (
        "recall" in out and "false activations per hour" in out and "Home Assistant (pymicro-wakeword)" in out
    )
    assert "silent.wav: it holds no sound" in out  # the silent take is named, not counted
    for name in ("det_curve.png", "score_histogram.png"):
        assert (tmp_path / "eval" / name).read_bytes()[:4] == b"\x89PNG"
    report = evaluate_json(capsys, positives, ambient)
    at = report["at_settings"]
    show(
        capsys,
        f"folder mode: recall {at['recall']:.2f}, {at['fah']:.1f} FA/h ({at['rule']}), "
        f"other rule {report['other_rule']}",
    )
    assert report["counts"]["positives"] == 3 and report["counts"]["ambient_recordings"] == 2
    assert at["recall"] == 1.0 and at["false_activations"] == 0 and at["rule"] == "esphome"
    assert report["other_rule"]["rule"] == "pymicro" and report["other_rule"]["recall"] == 1.0
    assert {row["speaker"] for row in report["per_speaker"]} == {"spk0", "spk1"}
    ambient_s = report["counts"]["ambient_hours"] * 3600
    assert ambient_s == pytest.approx(20.0 + sf.info(str(ambient / "talk.wav")).duration)


def test_the_rule_flag_chooses_whose_detector_counts(folders, capsys):
    report = evaluate_json(capsys, *folders, "--rule", "pymicro")
    assert report["at_settings"]["rule"] == "pymicro" and report["other_rule"]["rule"] == "esphome"
    assert report["at_settings"]["recall"] == 1.0


def test_a_linked_folder_gives_the_same_results(folders, tmp_path, capsys):
    positives, ambient = folders
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "spk0").symlink_to(positives / "spk0", target_is_directory=True)
    shutil.copytree(positives / "spk1", linked / "spk1")
    via_link, direct = evaluate_json(capsys, linked, ambient), evaluate_json(capsys, positives, ambient)
    assert via_link["counts"] == direct["counts"] and via_link["at_settings"] == direct["at_settings"]
    assert via_link["per_speaker"] == direct["per_speaker"]


def test_a_recording_not_at_16_khz_needs_convert(folders, tmp_path, capsys):
    positives, ambient = folders
    other = tmp_path / "ambient44"
    shutil.copytree(ambient, other)
    audio, _ = sf.read(str(ambient / "talk.wav"), dtype="float32")
    sf.write(
        str(other / "talk44.wav"), resample_poly(audio, 441, 160).astype(np.float32), 44100, subtype="PCM_16"
    )
    code, out, err = run(capsys, ["--tflite", MODEL, "--positives", positives, "--ambient", other])
    show(capsys, err)
    assert code == 2 and out == ""
    assert err.startswith("mww-evaluate: error:") and "talk44.wav" in err and "--convert" in err
    converted = evaluate_json(capsys, positives, other, "--convert")
    assert converted["counts"]["ambient_recordings"] == 3


def test_bad_folder_requests_get_one_paragraph(folders, tmp_path, capsys):
    positives, ambient = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        "needs both --positives DIR and --ambient DIR": ["--tflite", MODEL, "--positives", positives],
        "does not exist": ["--tflite", MODEL, "--positives", tmp_path / "nope", "--ambient", ambient],
        "No audio files were found": ["--tflite", MODEL, "--positives", empty, "--ambient", ambient],
        "pass --tflite, not --checkpoint": [
            "--checkpoint",
            "x.weights.h5",
            "--positives",
            positives,
            "--ambient",
            ambient,
        ],
    }
    silent = tmp_path / "silent_takes"
    write_wav(silent / "a.wav", np.zeros(C.SAMPLE_RATE_HZ, np.float32))
    cases["holds any sound"] = ["--tflite", MODEL, "--positives", silent, "--ambient", ambient]
    for expected, args in cases.items():
        code, out, err = run(capsys, args)
        show(capsys, f"{expected!r}: {err}")
        assert code == 2 and out == "" and expected in err and err.startswith("mww-evaluate: error:")


def test_ambient_recordings_are_streamed_in_blocks_with_the_results_of_the_whole(
    folders, capsys, monkeypatch
):
    """An evening of TV is never whole in memory: each ambient recording is read block by block and fed
    to the front end and the model as it is read. Cut into blocks of 0.77 s, the outputs are those of
    the whole recording featurized at once, and so is the report."""
    import mww.device.audio
    from mww.device.features import frontend_uint16, uint16_to_float
    from mww.device.runtime import load_wake_word_model, read_device_pcm16, stream_outputs
    from mww.evaluate.folders import ambient_outputs
    from mww.evaluate.outputs import first_scored_invocation

    positives, ambient = folders
    whole_report = evaluate_json(capsys, positives, ambient)
    model = load_wake_word_model(MODEL.with_suffix(".json"))
    files = sorted(ambient.glob("*.wav"))
    skip = first_scored_invocation(49, model.stride)
    whole = [
        stream_outputs(model, uint16_to_float(frontend_uint16(read_device_pcm16(p))))[skip:] for p in files
    ]
    monkeypatch.setattr(mww.device.audio, "BLOCK_SECONDS", 0.77)
    streamed, seconds = ambient_outputs(model, files, 49)
    show(capsys, f"ambient in blocks of 0.77 s: {[o.size for o in streamed]} outputs, {seconds} s, as whole")
    for got, expected in zip(streamed, whole, strict=True):
        np.testing.assert_array_equal(got, expected)
    assert seconds == [sf.info(str(p)).frames / C.SAMPLE_RATE_HZ for p in files]
    assert evaluate_json(capsys, positives, ambient) == whole_report
