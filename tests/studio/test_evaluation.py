"""The Evaluate page's functions that need no model: JSON for the browser, the picked cutoff, the
models offered, and the audio of a false activation."""

from __future__ import annotations

import io
import json
import math

import pytest
import soundfile as sf

from mww.studio.evaluation import (
    finite,
    load_choice,
    load_evaluation,
    model_choices,
    model_path,
    save_choice,
    snippet_wav,
    split_folder,
)
from mww.studio.project import StudioError


def test_finite_replaces_infinities_and_nan():
    value = {"fah": math.inf, "list": [1.0, -math.inf, math.nan, "x"], "nested": {"n": 2}}
    assert finite(value) == {"fah": None, "list": [1.0, None, None, "x"], "nested": {"n": 2}}
    json.dumps(finite(value), allow_nan=False)


def test_choice_is_checked_and_kept(project):
    assert load_choice(project) is None
    assert save_choice(project, "0.93", 4) == {"probability_cutoff": 0.93, "sliding_window_size": 4}
    assert load_choice(project)["sliding_window_size"] == 4
    for cutoff, window in (("1.0", 3), ("0", 3), ("x", 3), ("0.9", "0"), ("0.9", "two")):
        with pytest.raises(StudioError, match="cannot be used"):
            save_choice(project, cutoff, window)


def test_models_offered_best_first(project):
    folder = project.root / "checkpoints"
    folder.mkdir()
    for name in (
        "checkpoint_step_200.weights.h5",
        "best_fah_step_100.weights.h5",
        "checkpoint_step_50.weights.h5",
    ):
        (folder / name).write_bytes(b"")
    (folder / "best_weights.weights.h5").write_bytes(b"")
    exported = project.root / "models" / "exported"
    exported.mkdir(parents=True)
    (exported / "hey.tflite").write_bytes(b"")
    choices = model_choices(project.config())
    assert choices["checkpoints"] == [
        "best_weights.weights.h5",
        "checkpoint_step_50.weights.h5",
        "checkpoint_step_200.weights.h5",
        "best_fah_step_100.weights.h5",
    ]
    assert choices["exported"] == ["hey.tflite"]
    assert model_path(project.config(), "tflite:hey.tflite") == ("tflite", exported / "hey.tflite")
    for bad in ("checkpoint:../project.yaml", "weights:x", "checkpoint:"):
        with pytest.raises(StudioError, match="not a model of this project"):
            model_path(project.config(), bad)


def test_splits(project):
    assert split_folder(project, "val") == project.root / "evaluation" / "val"
    with pytest.raises(StudioError, match="not a split"):
        split_folder(project, "holdout")
    assert load_evaluation(project, "val") is None
    (project.root / "evaluation" / "val").mkdir(parents=True)
    (project.root / "evaluation" / "val" / "evaluation.json").write_text('{"fah": Infinity}')
    assert load_evaluation(project, "val") == {"fah": None}
    (project.root / "evaluation" / "val" / "evaluation.json").write_text("{broken")
    with pytest.raises(StudioError, match="could not be read"):
        load_evaluation(project, "val")


def test_snippet_of_a_false_activation(project):
    config = project.config()
    ambient = project.root / "dataset" / "ambient" / "amb0.wav"
    data = snippet_wav(config, str(ambient), "2.5")
    info = sf.info(io.BytesIO(data))
    print(f"snippet: {info.duration:.3f} s at {info.samplerate} Hz")
    assert info.samplerate == 16000 and abs(info.duration - 3.0) < 1e-3
    assert abs(sf.info(io.BytesIO(snippet_wav(config, str(ambient), "0.5"))).duration - 1.5) < 1e-3
    with pytest.raises(StudioError, match="not an audio file of this project's dataset"):
        snippet_wav(config, str(project.config_path), "1")
    with pytest.raises(StudioError, match="not a time"):
        snippet_wav(config, str(ambient), "soon")
