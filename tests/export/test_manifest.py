"""The v2 manifest mww-export writes: keys in ESPHome's order, optional ones left out when empty."""

from __future__ import annotations

import json

from mww.config.load import config_from_dict
from mww.export.manifest import build_manifest, load_calibration


def test_manifest_leaves_out_an_empty_author_and_website():
    plain = build_manifest("m.tflite", config_from_dict({}), 30000, 0.9, 5)
    assert "website" not in plain and "author" not in plain
    named = config_from_dict({"export": {"author": "Ann", "website": "https://example.org/ww"}})
    manifest = build_manifest("m.tflite", named, 30000, 0.9, 5)
    assert (manifest["author"], manifest["website"]) == ("Ann", "https://example.org/ww")
    assert list(manifest)[:4] == ["type", "wake_word", "author", "website"]


def _calibration_file(tmp_path, **data):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"probability_cutoff": 0.24, "sliding_window_size": 1, **data}))
    return path


def test_an_unsupported_calibration_falls_back_to_the_config_with_a_warning(tmp_path):
    cfg = config_from_dict({})
    reason = "the cutoff was chosen on 0.36 h of audio without the wake word; at least 2 h are needed"
    path = _calibration_file(tmp_path, supported=False, reasons=[reason])
    loaded = load_calibration(cfg, tmp_path / "x.weights.h5", path)
    print(f"shipped {loaded.probability_cutoff}/{loaded.sliding_window_size}: {loaded.warning}")
    assert (loaded.probability_cutoff, loaded.sliding_window_size) == (0.97, 5)
    assert loaded.source == "the config"
    assert (
        loaded.warning is not None and "cutoff 0.24, window 1" in loaded.warning and reason in loaded.warning
    )
    supported = load_calibration(cfg, tmp_path / "x.weights.h5", _calibration_file(tmp_path, supported=True))
    assert (supported.probability_cutoff, supported.warning) == (0.24, None)


def test_an_unsupported_calibration_ships_its_safer_fallback_when_it_has_one(tmp_path):
    cfg = config_from_dict({})
    reason = "no safe cutoff met the target of 0.5 FA/h (the best, 0.995 with window 9, gave 0.89 FA/h)"
    fallback = {"probability_cutoff": 0.99, "sliding_window_size": 9, "fah": 0.89}
    path = _calibration_file(tmp_path, supported=False, reasons=[reason], fallback=fallback)
    loaded = load_calibration(cfg, tmp_path / "x.weights.h5", path)
    print(f"shipped {loaded.probability_cutoff}/{loaded.sliding_window_size}: {loaded.warning}")
    assert (loaded.probability_cutoff, loaded.sliding_window_size) == (0.99, 9)
    assert (
        loaded.source == str(path)
        and reason in loaded.warning
        and "the fallback calibration measured" in loaded.warning
    )
    # A fallback the runtimes would read differently, or a malformed one, is not shipped: the config is.
    for bad in ({**fallback, "probability_cutoff": 0.998}, {**fallback, "sliding_window_size": 0}, "0.99"):
        path = _calibration_file(tmp_path, supported=False, reasons=[reason], fallback=bad)
        loaded = load_calibration(cfg, tmp_path / "x.weights.h5", path)
        assert (loaded.probability_cutoff, loaded.sliding_window_size, loaded.source) == (
            0.97,
            5,
            "the config",
        )


def test_a_calibrated_cutoff_above_0_995_is_never_shipped(tmp_path):
    cfg = config_from_dict({})
    path = _calibration_file(tmp_path, probability_cutoff=0.998)
    loaded = load_calibration(cfg, tmp_path / "x.weights.h5", path)
    assert loaded.probability_cutoff == 0.97 and "never fires in Home Assistant" in loaded.warning
