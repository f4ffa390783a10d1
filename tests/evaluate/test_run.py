"""mww-evaluate on a dataset: the device path end to end, recall in noise, the command's flags, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mww.config.load import config_from_dict, deep_merge, dump_config
from mww.data.prepare import prepare_data
from mww.data.sources import NOISE_SNRS_DB, eval_data
from mww.device.detection import detected_in
from mww.evaluate.measure import Settings
from mww.evaluate.run import EvaluateError, evaluate_model, positives_in_noise_streams, recall_in_noise
from tests.conftest import build_dataset, make_config, write
from tests.evaluate.test_measure import FRAMES, STRIDE, bump

OFFICIAL = Path(__import__("pymicro_wakeword").__file__).parent / "models"


@pytest.fixture(scope="module")
def tone_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_dataset")
    build_dataset(root, speakers=10, per_speaker=2, negatives=10)
    noise = 0.1 * np.random.default_rng(0).standard_normal(48_000)
    write(root / "background" / "noise.wav", noise.astype(np.float32))  # broadband: it reaches every band
    base = make_config(root, test_speakers=["spk00", "spk01"], validation_speakers=["spk02"]).to_dict()
    cfg = config_from_dict(deep_merge(base, {"performance": {"num_workers": 1}}))
    return root, cfg, dump_config(cfg, root / "config.yaml")


@pytest.fixture(scope="module")
def official_model(tmp_path_factory):
    """An official ESPHome model and its manifest, copied so tests may edit them."""
    folder = tmp_path_factory.mktemp("official")
    for name in ("hey_jarvis.tflite", "hey_jarvis.json"):
        shutil.copy(OFFICIAL / name, folder / name)
    return folder / "hey_jarvis.json"


def _cli(argv, capsys):
    from mww.cli.evaluate import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tflite_evaluation_runs_the_device_path_and_prints_json(
    tone_dataset, official_model, capsys, tmp_path
):
    _, _, config_file = tone_dataset
    code, out, err = _cli(
        [
            *("--tflite", str(official_model.with_suffix(".tflite"))),  # its manifest is found beside it
            *("--config", str(config_file), "--split", "test", "--json", "--output-dir", str(tmp_path / "o")),
        ],
        capsys,
    )
    assert code == 0, err
    result = json.loads(out)
    manifest = json.loads(official_model.read_text())["micro"]
    assert result["at_settings"]["probability_cutoff"] == manifest["probability_cutoff"]
    assert result["at_settings"]["sliding_window_size"] == manifest["sliding_window_size"]
    assert result["at_settings"]["settings_from"] == f"the manifest {official_model}"
    assert result["counts"]["positives"] == 4 and result["counts"]["ambient_recordings"] >= 1
    assert "tflite" in result["model"]["kind"]
    assert (tmp_path / "o" / "det_curve.png").is_file()
    assert [r["snr_db"] for r in result["noise"]] == list(NOISE_SNRS_DB)
    assert all(r["clips"] == 4 and 0.0 <= r["recall"] <= 1.0 for r in result["noise"])
    print(
        f"\nofficial hey_jarvis on tones: recall {result['at_settings']['recall']}, "
        f"{result['at_settings']['fah']:.2f} FA/h over {result['counts']['fah_hours'] * 60:.2f} min, "
        "in noise " + ", ".join(f"{r['recall']} at {r['snr_db']:g} dB" for r in result["noise"])
    )


def test_recall_in_noise_scores_the_noisy_positives_at_the_evaluated_settings(tone_dataset):
    """A stand-in model that fires on exactly the clean placed positives: in noise it hears none."""
    _, cfg, _ = tone_dataset
    prepared = prepare_data(cfg, progress=False)
    data = eval_data(cfg, prepared, "test", FRAMES)
    clean = [s.copy() for s in data.positive_streams]
    scored: list[int] = []

    def outputs(streams):
        scored.append(len(streams))
        fires = [any(s.shape == c.shape and np.allclose(s, c) for c in clean) for s in streams]
        return [bump(60, [10] if f else []) for f in fires]

    settings = Settings(0.5, 3, "test")
    noisy, note = positives_in_noise_streams(cfg, prepared, data, "test", [30.0, 0.0], input_frames=FRAMES)
    rows = recall_in_noise({snr: outputs(streams) for snr, streams in noisy.items()}, settings, STRIDE)
    assert note is None and scored == [4, 4]
    assert [(r["snr_db"], r["clips"], r["detected"], r["recall"]) for r in rows] == [
        (30.0, 4, 0, 0.0),
        (0.0, 4, 0, 0.0),
    ]
    fired = detected_in(outputs(clean), 0.5, 3, stride=STRIDE, armed_at_start=True)
    assert sum(fired) == 4  # the stand-in does fire on clean clips
    assert positives_in_noise_streams(cfg, prepared, data, "test", [], input_frames=FRAMES) == ({}, None)


def test_recall_in_noise_without_background_audio_is_a_note(tone_dataset, official_model, tmp_path):
    _, cfg, _ = tone_dataset
    quiet = deep_merge(cfg.to_dict(), {"paths": {"background_dir": str(tmp_path / "no_background")}})
    result = evaluate_model(config_from_dict(quiet), manifest=official_model)
    assert result.noise == []
    assert any("recall in noise was not measured" in n and "no_background" in n for n in result.notes)


def test_noise_snr_flag_chooses_or_skips_the_measurement(tone_dataset, official_model, capsys):
    config_file = tone_dataset[2]
    common = ["--manifest", str(official_model), "--config", str(config_file)]
    code, out, err = _cli([*common, "--noise-snr", "15", "--json"], capsys)
    assert code == 0, err
    assert [r["snr_db"] for r in json.loads(out)["noise"]] == [15.0]
    code, out, err = _cli([*common, "--noise-snr"], capsys)
    assert code == 0, err
    assert "recall in noise" not in out
    code, out, err = _cli([*common, "--noise-snr", "20"], capsys)
    assert code == 0 and "recall in noise, 20 dB SNR" in out
    code, _, err = _cli([*common, "--noise-snr", "nan"], capsys)
    assert code == 2 and "decibels" in err and err.count("\n") == 1


def test_bad_input_exits_2_with_one_paragraph(tone_dataset, official_model, capsys, tmp_path):
    config_file = tone_dataset[2]
    common = ["--config", str(config_file)]
    cases = {
        "nothing": ([*common], "Nothing to evaluate"),
        "analyze": (
            ["--tflite", str(official_model.with_suffix(".tflite")), "--analyze", *common],
            "--checkpoint",
        ),
        "checkpoint": (["--checkpoint", str(tmp_path / "missing.weights.h5"), *common], "does not exist"),
    }
    gone = tmp_path / "gone"
    gone.mkdir()
    shutil.copy(official_model, gone / "m.json")  # its model file is not next to it
    cases["manifest without model"] = (["--manifest", str(gone / "m.json"), *common], "does not exist")
    not_json = tmp_path / "bad.json"
    not_json.write_text("{not json")
    cases["manifest not json"] = (["--manifest", str(not_json), *common], "JSON")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(official_model.with_suffix(".tflite"), alone / "ww.tflite")  # no manifest beside it
    cases["tflite without manifest"] = (["--tflite", str(alone / "ww.tflite"), *common], "pass its manifest")
    not_model = tmp_path / "not_a_model.tflite"
    not_model.write_bytes(b"\x00" * 64)
    cases["not a model"] = (
        ["--tflite", str(not_model), "--manifest", str(official_model), *common],
        str(not_model),
    )
    for name, (argv, expected) in cases.items():
        code, _, err = _cli(argv, capsys)
        assert code == 2, name
        assert expected in err and "Traceback" not in err, (name, err)
        assert err.count("\n") == 1, (name, err)  # one paragraph


def test_an_empty_split_is_explained(tone_dataset, official_model, capsys, tmp_path):
    cfg = tone_dataset[1]
    empty = deep_merge(cfg.to_dict(), {"data": {"test_fraction": 0.0, "test_speakers": []}})
    empty["paths"]["processed_dir"] = str(tmp_path / "processed")
    config_file = dump_config(config_from_dict(empty), tmp_path / "empty.yaml")
    code, _, err = _cli(["--manifest", str(official_model), "--config", str(config_file)], capsys)
    assert code == 2 and "test split" in err and "no positive clips" in err


def test_a_model_with_another_stride_is_refused(tone_dataset, official_model):
    _, cfg, _ = tone_dataset
    other = config_from_dict(deep_merge(cfg.to_dict(), {"model": {"stride": 2, "first_conv_kernel_size": 3}}))
    with pytest.raises(EvaluateError, match=r"model\.stride 2"):
        evaluate_model(other, manifest=official_model)


def test_split_names_are_checked(tone_dataset, official_model):
    _, cfg, _ = tone_dataset
    with pytest.raises(EvaluateError, match="not a split"):
        evaluate_model(cfg, manifest=official_model, split="holdout")
