"""The Export page's functions around the export itself (which the browser test runs): defaults,
downloads, and bad input."""

from __future__ import annotations

import json

import pytest

from mww.export.errors import ExportError
from mww.studio.evaluation import save_choice
from mww.studio.exporting import default_model_name, download_path, export_defaults, export_model
from mww.studio.project import StudioError, merge_into_config


def test_model_name_from_the_wake_word(project):
    assert (
        default_model_name(merge_into_config(project, {"export": {"wake_word": "Hey, Jarvis!"}}))
        == "hey_jarvis"
    )


def test_defaults_prefer_the_picked_cutoff(project):
    config = project.config()
    defaults = export_defaults(project, config)
    assert (defaults["probability_cutoff"], defaults["source"]) == (
        config.export.probability_cutoff,
        "the config",
    )
    folder = project.root / "checkpoints"
    folder.mkdir()
    (folder / "calibration.json").write_text(
        json.dumps({"probability_cutoff": 0.91, "sliding_window_size": 4})
    )
    assert export_defaults(project, config)["probability_cutoff"] == 0.91
    save_choice(project, 0.8, 6)
    defaults = export_defaults(project, config)
    assert (defaults["probability_cutoff"], defaults["sliding_window_size"]) == (0.8, 6)
    assert defaults["source"] == "the Evaluate page" and defaults["files"] == [] and defaults["yaml"] is None


def test_only_exported_files_download(project):
    config = project.config()
    folder = project.root / "models" / "exported"
    folder.mkdir(parents=True)
    (folder / "hey.tflite").write_bytes(b"model")
    (folder / "notes.txt").write_text("x")
    assert download_path(config, "hey.tflite") == folder / "hey.tflite"
    assert export_defaults(project, config)["files"] == ["hey.tflite"]
    for name in ("notes.txt", "../../project.yaml", "missing.json", "streaming"):
        with pytest.raises(StudioError, match="is not an exported file"):
            download_path(config, name)


def test_bad_exports_get_the_commands_message(project):
    config = project.config()
    with pytest.raises(StudioError, match="not a checkpoint of this project"):
        export_model(project, config, "../project.yaml", "hey", 0.9, 5)
    with pytest.raises(StudioError, match="cannot be used"):
        export_model(project, config, "best_weights.weights.h5", "hey", 1.5, 5)
    with pytest.raises(ExportError) as caught:  # what mww-export says for it
        export_model(project, config, "best_weights.weights.h5", "hey", 0.9, 5)
    print(caught.value)
    assert "does not exist" in str(caught.value)
