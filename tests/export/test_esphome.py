"""esphome.yaml: the micro_wake_word block mww-export writes next to the model, ready to paste."""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml

from mww.atomic import atomic_write_bytes, atomic_write_json
from mww.export.esphome import ESPHOME_YAML, esphome_id, esphome_yaml, write_esphome_yaml

OFFICIAL = ("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft")
ESPHOME_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def official_manifest(name: str) -> Path:
    return Path(str(importlib.resources.files("pymicro_wakeword") / "models" / f"{name}.json"))


def model_entry(text: str) -> dict:
    """The one entry of micro_wake_word.models in the snippet."""
    parsed = yaml.safe_load(text)
    assert list(parsed) == ["micro_wake_word"]
    models = parsed["micro_wake_word"]["models"]
    assert isinstance(models, list) and len(models) == 1
    return models[0]


@pytest.mark.parametrize("name", OFFICIAL)
def test_snippet_parses_names_the_manifest_and_carries_its_settings(name):
    path = official_manifest(name)
    manifest = json.loads(path.read_text())
    text = esphome_yaml(manifest, path)
    entry = model_entry(text)
    assert Path(entry["model"]) == path.resolve() and Path(entry["model"]).is_file()
    assert (Path(entry["model"]).parent / manifest["model"]).is_file()
    assert entry["probability_cutoff"] == manifest["micro"]["probability_cutoff"]
    assert entry["sliding_window_size"] == manifest["micro"]["sliding_window_size"]
    assert ESPHOME_ID.fullmatch(entry["id"]) and entry["id"] == f"{name}_model"
    assert f"# model: https://example.com/wake_words/{name}.json" in text  # the URL form, commented
    assert manifest["wake_word"] in text and manifest["micro"]["minimum_esphome_version"] in text


def test_write_puts_it_next_to_the_manifest_with_the_manifest_permissions(tmp_path):
    manifest = json.loads(official_manifest("hey_jarvis").read_text())
    folder = tmp_path / "staging"
    path = atomic_write_json(folder / "hey_jarvis.json", manifest)
    os.chmod(path, 0o644)
    published = tmp_path / "my models: final"  # a path that needs quoting in YAML
    written = write_esphome_yaml(path, published_dir=published)
    assert written == folder / ESPHOME_YAML
    assert sorted(p.name for p in folder.iterdir()) == [ESPHOME_YAML, "hey_jarvis.json"]  # no temp files
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    entry = model_entry(written.read_text())
    assert entry["model"] == str(published.resolve() / "hey_jarvis.json")
    assert (entry["probability_cutoff"], entry["sliding_window_size"]) == (0.97, 5)
    print(f"\n{written.read_text()}")


def test_ids_are_valid_esphome_ids():
    for name, expected in [
        ("hey-computer", "hey_computer_model"),
        ("Hey Computer", "hey_computer_model"),
        ("3po", "ww_3po_model"),
        ("---", "wake_word_model"),
    ]:
        assert esphome_id(name) == expected and ESPHOME_ID.fullmatch(expected)


def test_not_a_manifest_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a micro_wake_word v2 manifest"):
        esphome_yaml({"model": "x.tflite"}, tmp_path / "x.json")
    broken = atomic_write_bytes(tmp_path / "broken.json", b"{ nope")
    with pytest.raises(ValueError, match="not readable JSON"):
        write_esphome_yaml(broken)
    assert not (tmp_path / ESPHOME_YAML).exists()


@pytest.mark.slow
def test_export_publishes_esphome_yaml_with_the_calibrated_settings(tmp_path):
    from mww.config.load import config_from_dict
    from mww.device.runtime import load_wake_word_model
    from mww.evaluate.listen import detect_pcm16
    from mww.export.convert import convert_model_saved
    from tests.export.test_convert import ONE_WORKER, SMALL, save_checkpoint
    from tests.model.test_streaming import fresh_model

    cfg = config_from_dict({**ONE_WORKER, "model": SMALL})
    checkpoint = save_checkpoint(fresh_model(cfg, seed=0), tmp_path / "checkpoints")
    (checkpoint.parent / "calibration.json").write_text(
        '{"probability_cutoff": 0.91, "sliding_window_size": 7}'
    )
    rng = np.random.default_rng(0)
    features = [rng.uniform(0, 26, (300, 40)).astype(np.float32) for _ in range(4)]
    output = tmp_path / "exported"
    result = convert_model_saved(checkpoint, output, "hey-test", cfg, representative_features=features)

    snippet = output / ESPHOME_YAML
    assert sorted(p.name for p in output.iterdir()) == [
        ESPHOME_YAML,
        "hey-test.json",
        "hey-test.tflite",
        "streaming",
    ]
    manifest = json.loads(result.manifest_path.read_text())
    assert (manifest["micro"]["probability_cutoff"], manifest["micro"]["sliding_window_size"]) == (0.91, 7)
    text = snippet.read_text()
    print(f"\n{text}")
    entry = model_entry(text)
    assert Path(entry["model"]) == result.manifest_path.resolve() and Path(entry["model"]).is_file()
    assert (entry["probability_cutoff"], entry["sliding_window_size"]) == (0.91, 7)
    assert entry["id"] == "hey_test_model"
    assert stat.S_IMODE(snippet.stat().st_mode) == stat.S_IMODE(result.manifest_path.stat().st_mode)

    # The manifest the snippet names runs in mww-detect's device path.
    model = load_wake_word_model(entry["model"])
    assert (model.probability_cutoff, model.sliding_window_size) == (0.91, 7)
    heard = detect_pcm16(model, np.zeros(16000 * 2, dtype=np.int16))
    assert heard.invocations == 66 and heard.peak_probability is not None
