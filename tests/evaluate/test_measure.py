"""mww-evaluate: measurements on hand-built output streams, the report and files, the command, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mww.config.load import config_from_dict, deep_merge, dump_config
from mww.data.prepare import prepare_data
from mww.data.sources import EvalData, eval_data
from mww.device.detection import cutoff_to_uint8, detected_in
from mww.device.runtime import invocation_seconds
from mww.evaluate.measure import (
    NOISE_SNRS_DB,
    EvaluateError,
    Evaluation,
    Outputs,
    Settings,
    calibration_data,
    evaluate_model,
    first_scored_invocation,
    format_report,
    measure,
    recall_in_noise,
    write_outputs,
)
from mww.export.convert import load_calibration
from mww.train.metrics import CALIBRATION_CUTOFFS, DEFAULT_CUTOFFS, OPERATING_POINT_WINDOWS, negative_lead_in
from tests.conftest import build_dataset, make_config, write

STRIDE = 3
FRAMES = 233  # the default MixedNet's input
FIRST = first_scored_invocation(FRAMES, STRIDE)
OFFICIAL = Path(__import__("pymicro_wakeword").__file__).parent / "models"


def bump(n: int, at: list[int], high: int = 250, low: int = 10, width: int = 6) -> np.ndarray:
    """A stream of `low` outputs with `width`-long runs of `high` starting at each index of `at`."""
    s = np.full(n, low, dtype=np.uint8)
    for a in at:
        s[a : a + width] = high
    return s


def hand_built() -> tuple[EvalData, Outputs]:
    """3 of 4 positives fire; 1 negative clip fires once; 1 ambient minute holds two separate events."""
    features = np.zeros((10, 40), np.float32)  # not read by `measure`
    data = EvalData(
        windows=np.zeros((0, FRAMES, 40), np.float32),
        labels=np.zeros(0, np.float32),
        kinds=[],
        positive_streams=[features] * 4,
        positive_paths=[
            Path(f"/d/positive/{s}/{i}.wav") for s, i in (("a", 0), ("a", 1), ("b", 0), ("b", 1))
        ],
        negative_streams=[features] * 2,
        hard_negative_streams=[features],
        ambient_streams=[features],
        ambient_paths=[Path("/d/ambient/night.wav")],
        ambient_seconds=60.0,
        negative_paths=[Path("/d/negative/n0.wav"), Path("/d/negative/n1.wav")],
        hard_negative_paths=[Path("/d/hard_negative/h0.wav")],
        positive_speakers=["a", "a", "b", "b"],
        ambient_durations=[60.0],
    )
    out = Outputs(
        positives=[bump(50, [30]), bump(50, [20]), bump(50, [40]), bump(50, [])],
        negatives=[bump(40, [10]), bump(40, [])],
        hard_negatives=[bump(40, [5])],
        ambient=[bump(2000, [500, 1500])],
    )
    return data, out


def quiet_measure() -> dict:
    """The hand-built set with outputs of 0 between the runs, measured against a 200 FA/h target."""
    data, out = hand_built()
    for stream in out.all():
        stream[stream == 10] = 0  # no cutoff above 0 fires on these
    return measure(data, out, Settings(0.5, 1, "t"), input_frames=FRAMES, stride=STRIDE, target_fah=200.0)


@pytest.fixture(scope="module")
def measured():
    data, out = hand_built()
    settings = Settings(0.9, 3, "test")
    return measure(data, out, settings, input_frames=FRAMES, stride=STRIDE, target_fah=1.0), data, out


def test_known_events_give_exact_recall_and_fah(measured):
    m, _, _ = measured
    at = m["at_settings"]
    negative_s = (40 + 40) * STRIDE * 0.010  # the negatives' outputs cover 2.4 s
    hours = (60.0 + negative_s) / 3600.0
    print(
        f"\nhand-built streams: recall {at['recall']}, {at['false_activations']} events, {at['fah']:.3f} FA/h"
    )
    assert at["recall"] == 0.75 and at["false_rejection_rate"] == 0.25
    assert at["false_activations"] == 3  # two on ambient, one on a negative clip; none from hard negatives
    assert at["fah"] == pytest.approx(3 / hours)
    assert m["counts"]["fah_hours"] == pytest.approx(hours)
    assert at["probability_cutoff_u8"] == cutoff_to_uint8(0.9)
    assert at["hard_negative_false_detection_rate"] == 1.0
    assert m["per_source"]["negative"]["clips_with_detection"] == 1
    assert [r["false_activations"] for r in m["per_source"]["ambient"]] == [2]


def test_clip_times_are_reported_in_the_file_not_in_its_stream():
    """A clip stream starts with silence; events and peaks are timed from the recording's start."""
    data, out = hand_built()
    kw = {"input_frames": FRAMES, "stride": STRIDE, "target_fah": 1.0}
    plain = measure(data, out, Settings(0.9, 3, "t"), **kw)
    data.stream_offsets_s = {data.negative_paths[0]: 2.0, data.positive_paths[0]: 1.5}
    shifted = measure(data, out, Settings(0.9, 3, "t"), **kw)

    def times(m: dict, source: str) -> list[float]:
        return [e["time_s"] for e in m["events"] if e["source"] == source]

    assert times(shifted, "negative") == [round(t - 2.0, 3) for t in times(plain, "negative")]
    assert times(shifted, "ambient") == times(plain, "ambient")
    peak = {r["file"]: r["peak_time_s"] for r in plain["worst_positives"]}
    moved = {r["file"]: r["peak_time_s"] for r in shifted["worst_positives"]}
    first = str(data.positive_paths[0])
    assert moved[first] == pytest.approx(peak[first] - 1.5) and len(moved) == 4
    assert all(moved[f] == peak[f] for f in moved if f != first)


def test_event_times_and_probabilities_follow_the_device_detector(measured):
    m, _, _ = measured
    ambient = [e for e in m["events"] if e["source"] == "ambient"]
    # window 3 over a run of 250s: the third 250 is where the window mean first exceeds the cutoff
    assert [e["time_s"] for e in ambient] == [
        round(float(invocation_seconds(k + 2 + FIRST, STRIDE)), 3) for k in (500, 1500)
    ]
    assert all(e["probability"] == pytest.approx(250 / 256, abs=1e-4) for e in ambient)
    negative = [e for e in m["events"] if e["source"] == "negative"]
    assert [e["file"] for e in negative] == ["/d/negative/n0.wav"]
    assert (
        m["loudest_false_activations"][0]["probability"] >= m["loudest_false_activations"][-1]["probability"]
    )


def test_breakdowns_sweep_and_operating_points(measured):
    m, _, _ = measured
    assert {r["speaker"]: r["recall"] for r in m["per_speaker"]} == {"a": 1.0, "b": 0.5}
    assert m["per_speaker"][0]["speaker"] == "b"  # lowest recall first
    worst = m["worst_positives"][0]
    assert worst["detected"] is False and worst["file"].endswith("b/1.wav")
    assert worst["peak_probability"] == pytest.approx(10 / 256, abs=1e-4)
    sweep = m["sweep"]
    assert sweep["cutoffs"] == DEFAULT_CUTOFFS.tolist()
    assert set(sweep["windows"]) == {str(w) for w in OPERATING_POINT_WINDOWS}
    w3 = sweep["windows"]["3"]
    i = sweep["cutoffs"].index(0.9)
    assert w3["recall"][i] == 0.75 and w3["fah"][i] == pytest.approx(m["at_settings"]["fah"], rel=1e-5)
    assert all(
        r + f == pytest.approx(1.0) for r, f in zip(w3["recall"], w3["false_rejection_rate"], strict=True)
    )
    rec = m["recommended"]
    # No cutoff separates the firing negatives from the positives (same runs of 250): within 1 FA/h
    # only cutoffs above 250/256 remain, which detect nothing: the tie goes to the top of the grid.
    assert rec["recall"] == 0.0 and rec["meets_target"] is True
    assert rec["probability_cutoff"] == CALIBRATION_CUTOFFS[-1]
    eer = m["equal_error"]
    assert eer["available"] and 0.0 <= eer["equal_error_rate"] <= 1.0
    assert m["peaks"]["positive"][3] == pytest.approx(10 / 256, abs=1e-4)


def test_recommended_point_is_the_highest_recall_within_target_then_the_highest_cutoff():
    m = quiet_measure()
    rec = m["recommended"]
    assert cutoff_to_uint8(0.98) < 250 < cutoff_to_uint8(0.99)  # the device's integer cutoff
    assert (rec["recall"], rec["probability_cutoff"], rec["meets_target"]) == (0.75, 0.98, True)
    assert rec["fah"] <= 200.0


def test_negative_clips_are_heard_armed_after_the_lead_in():
    """A negative clip that is high from its first output fires (the lead-in re-armed the detector)."""
    data, out = hand_built()
    out.negatives = [np.full(40, 250, np.uint8), np.full(40, 10, np.uint8)]
    m = measure(data, out, Settings(0.9, 1, "t"), input_frames=FRAMES, stride=STRIDE, target_fah=1.0)
    assert m["per_source"]["negative"]["false_activations"] == 1
    assert negative_lead_in(STRIDE) == 34


def test_negative_clips_count_for_their_own_duration_not_the_silence_after_them():
    """The hand-built negatives' 80 outputs cover 7.2 s; given as 5 s of recordings, FA/h is per 65 s."""
    data, out = hand_built()
    kw = {"input_frames": FRAMES, "stride": STRIDE, "target_fah": 1.0}
    covered = measure(data, out, Settings(0.9, 1, "t"), **kw)["counts"]["fah_hours"] * 3600
    data.negative_seconds = 5.0
    counted = measure(data, out, Settings(0.9, 1, "t"), **kw)["counts"]["fah_hours"] * 3600
    assert covered == pytest.approx(60.0 + 80 * STRIDE * 0.01)
    assert counted == pytest.approx(65.0)


def _evaluation(m: dict, split: str = "val") -> Evaluation:
    return Evaluation(model={"kind": "t", "path": "/m.tflite"}, split=split, **m)


def test_report_files_and_calibration_round_trip(tmp_path):
    m = quiet_measure()
    result = _evaluation(dict(m))
    files = write_outputs(result, tmp_path / "eval")
    for name in ("det_curve", "score_histogram"):
        assert Path(files[name]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    calibration = json.loads(Path(files["calibration"]).read_text())
    assert calibration["probability_cutoff"] == m["recommended"]["probability_cutoff"]
    cfg = config_from_dict({})
    loaded = load_calibration(cfg, tmp_path / "x.weights.h5", files["calibration"])
    assert (loaded.probability_cutoff, loaded.sliding_window_size) == (
        m["recommended"]["probability_cutoff"],
        m["recommended"]["sliding_window_size"],
    )
    text = "\n".join(format_report(result))
    for expected in ("recall", "false activations per hour", "recommended", "per speaker", "worst positives"):
        assert expected in text
    assert not [p for p in (tmp_path / "eval").iterdir() if p.name.startswith(".")]


def test_no_calibration_when_nothing_is_detected(measured):
    m, _, _ = measured
    nothing = dict(m, recommended={**m["recommended"], "recall": 0.0})
    assert calibration_data(_evaluation(nothing)) is None


# --------------------------------------------------------------------------- the command on a dataset


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
    rows, note = recall_in_noise(
        cfg, prepared, data, "test", settings, outputs, [30.0, 0.0], input_frames=FRAMES
    )
    assert note is None and scored == [4, 4]
    assert [(r["snr_db"], r["clips"], r["detected"], r["recall"]) for r in rows] == [
        (30.0, 4, 0, 0.0),
        (0.0, 4, 0, 0.0),
    ]
    fired = detected_in(outputs(clean), 0.5, 3, stride=STRIDE, armed_at_start=True)
    assert sum(fired) == 4  # the stand-in does fire on clean clips
    assert recall_in_noise(cfg, prepared, data, "test", settings, outputs, [], input_frames=FRAMES) == (
        [],
        None,
    )


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


def test_equal_error_point_is_never_a_degenerate_cutoff(measured):
    m, _, _ = measured
    assert 0.0 < m["equal_error"]["cutoff"] < 1.0


def test_clip_scores_are_read_where_training_decides_not_at_the_end_of_the_recording():
    from mww.data.sources import EvalData
    from mww.evaluate.measure import Outputs, decision_outputs

    stream = np.array([0, 10, 250, 240, 5, 5, 5], dtype=np.uint8)  # fires, then trailing silence
    data = EvalData(
        windows=np.zeros((2, 1, 40), np.float32),
        labels=np.array([1.0, 0.0]),
        kinds=["positive", "negative"],
        positive_streams=[],
        positive_paths=[],
        negative_streams=[],
        hard_negative_streams=[],
        ambient_streams=[],
        ambient_paths=[],
        ambient_seconds=1.0,
        silence_after=[3, 0],
    )
    out = Outputs(positives=[stream], negatives=[stream], hard_negatives=[], ambient=[])
    assert decision_outputs(data, out) == [240, 5]
    data.silence_after = [99, 0]  # more silence than stream: its first output
    assert decision_outputs(data, out) == [0, 5]
    data.silence_after = []  # not known: the end of every stream
    assert decision_outputs(data, out) == [5, 5]
