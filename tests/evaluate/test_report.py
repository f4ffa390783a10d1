"""What an evaluation prints and writes: the report, the plots, calibration.json and its round trip."""

from __future__ import annotations

import json
from pathlib import Path

from mww.config.load import config_from_dict
from mww.evaluate.measure import Evaluation
from mww.evaluate.report import calibration_data, format_report, write_outputs
from mww.export.manifest import load_calibration
from tests.evaluate.test_measure import hand_measured, quiet_measure


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
    # A minute of hand-built ambient audio cannot support a cutoff: calibration.json says so, and the
    # export keeps the config's settings with a warning.
    assert calibration["supported"] is False and calibration["reasons"]
    loaded = load_calibration(cfg, tmp_path / "x.weights.h5", files["calibration"])
    assert (loaded.probability_cutoff, loaded.sliding_window_size) == (0.97, 5) and loaded.warning
    # Where the data supports it, the export ships the recommended point.
    supported = dict(m, recommended={**m["recommended"], "supported": True, "reasons": []})
    files = write_outputs(_evaluation(supported), tmp_path / "supported")
    loaded = load_calibration(cfg, tmp_path / "x.weights.h5", files["calibration"])
    assert (loaded.probability_cutoff, loaded.sliding_window_size) == (
        m["recommended"]["probability_cutoff"],
        m["recommended"]["sliding_window_size"],
    )
    assert loaded.warning is None
    # Unsupported for missing the target, with a safer fallback: the report and the export both name it.
    fallback = {"probability_cutoff": 0.99, "sliding_window_size": 9, "fah": 0.89}
    missed = dict(m, recommended={**m["recommended"], "fallback": fallback})
    files = write_outputs(_evaluation(missed), tmp_path / "fallback")
    assert json.loads(Path(files["calibration"]).read_text())["fallback"] == fallback
    loaded = load_calibration(cfg, tmp_path / "x.weights.h5", files["calibration"])
    assert (loaded.probability_cutoff, loaded.sliding_window_size) == (0.99, 9) and loaded.warning
    line = next(x for x in format_report(_evaluation(missed)) if "not supported" in x)
    print(f"\n{line}")
    assert "ships the fallback calibration measured instead, cutoff 0.99 with window 9" in line
    text = "\n".join(format_report(result))
    for expected in ("recall", "false activations per hour", "recommended", "per speaker", "worst positives"):
        assert expected in text
    assert not [p for p in (tmp_path / "eval").iterdir() if p.name.startswith(".")]


def test_no_calibration_when_nothing_is_detected():
    m, _, _ = hand_measured()
    nothing = dict(m, recommended={**m["recommended"], "recall": 0.0})
    assert calibration_data(_evaluation(nothing)) is None
