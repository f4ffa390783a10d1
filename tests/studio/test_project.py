"""The project folder and the Train page's settings in project.yaml."""

from __future__ import annotations

import pytest
import yaml

from mww.config.validate import ConfigError
from mww.studio.project import (
    NEW_PROJECT_PRESET,
    StudioError,
    merge_into_config,
    open_project,
    read_layer,
    save_settings,
    settings,
)


def test_open_project_creates_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = open_project(tmp_path / "new" / "wake")
    assert project.root.is_dir() and project.state_dir.is_dir()
    values = settings(project)
    assert values["preset"] == NEW_PROJECT_PRESET and values["training_steps"] == [20000, 10000]
    assert {"fast_test", "standard", "max_quality"} <= set(values["presets"])


def test_open_project_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StudioError, match="is a file, not a folder"):
        open_project(tmp_path / "f")


def test_save_settings_keeps_every_other_key(project):
    values = {
        "preset": "fast_test",
        "wake_word": "Hey Studio",
        "training_steps": "40, 10",
        "batch_size": "8",
        "augmentation": False,
    }
    saved = save_settings(project, values)
    assert (
        saved["training_steps"] == [40, 10]
        and saved["batch_size"] == 8
        and saved["wake_word"] == "Hey Studio"
    )
    layer = yaml.safe_load(project.config_path.read_text())
    assert layer["model"]["first_conv_filters"] == 8  # kept
    assert layer["training"]["eval_step_interval"] == 20  # kept
    config = project.config()
    assert config.training.training_steps == [40, 10] and config.export.wake_word == "Hey Studio"


def test_settings_that_do_not_validate_are_not_written(project):
    before = project.config_path.read_text()
    # Three phases while every per-phase list has two: the loader's own message, naming the file.
    with pytest.raises(ConfigError) as caught:
        save_settings(project, {"wake_word": "x", "training_steps": "1,2,3", "batch_size": 8})
    print(caught.value)
    assert str(project.config_path) in str(caught.value) and "training" in str(caught.value)
    assert project.config_path.read_text() == before
    with pytest.raises(ConfigError, match="wake_word"):
        save_settings(project, {"wake_word": "  ", "training_steps": "40, 10", "batch_size": 8})
    assert project.config_path.read_text() == before


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"training_steps": "many"}, "not whole numbers"),
        ({"training_steps": "10, 0"}, "not whole numbers"),
        ({"training_steps": "10, 5", "batch_size": "big"}, "batch size"),
        ({"preset": "fastest", "training_steps": "1", "batch_size": 1}, "Unknown preset 'fastest'"),
    ],
)
def test_bad_settings_are_refused(project, values, expected):
    with pytest.raises(StudioError, match=expected):
        save_settings(project, {"wake_word": "x", **values})


def test_a_config_that_is_not_yaml_is_reported(project):
    project.config_path.write_text("training: [unclosed\n")
    with pytest.raises(StudioError, match="could not be read as YAML"):
        read_layer(project)


def test_merge_into_config(project):
    config = merge_into_config(project, {"data": {"test_speakers": ["spk01"]}})
    assert config.data.test_speakers == ["spk01"] and config.model.first_conv_filters == 8
