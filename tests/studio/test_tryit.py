"""The Try it page on an official ESPHome model (shipped by pymicro-wakeword): detections and the
probability trace, as mww-detect computes them."""

from __future__ import annotations

import importlib.resources
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mww.device.constants import SAMPLE_RATE_HZ
from mww.device.runtime import load_wake_word_model
from mww.evaluate.listen import detect_files
from mww.studio.project import StudioError
from mww.studio.tryit import TRACE_POINTS, _reduced, exported_manifests, save_audio, try_model
from tests.conftest import tone


def official(name: str) -> Path:
    return Path(str(importlib.resources.files("pymicro_wakeword") / "models")) / name


@pytest.fixture
def exported(project):
    folder = project.root / "models" / "exported"
    folder.mkdir(parents=True)
    for suffix in (".tflite", ".json"):
        shutil.copy(official("okay_nabu" + suffix), folder)
    (folder / "orphan.json").write_text("{}")  # no model beside it: not offered
    return folder


def test_try_model_matches_mww_detect(project, exported):
    config = project.config()
    assert exported_manifests(config) == ["okay_nabu.json"]
    buffer = io.BytesIO()
    sf.write(buffer, tone(3.0, 300.0, 44100), 44100, format="WAV")
    audio = save_audio(project, "kitchen.wav", buffer.getvalue())
    assert (
        audio == project.root / "tryit" / "kitchen.wav" and sf.info(str(audio)).samplerate == SAMPLE_RATE_HZ
    )
    result = try_model(config, "okay_nabu.json", audio)
    expected = detect_files(load_wake_word_model(exported / "okay_nabu.json"), [audio])[0].to_dict()
    n = len(result["detections"])
    print(f"{result['invocations']} invocations, peak {result['peak_probability']}, {n} detections")
    for key in ("detections", "peak_probability", "invocations", "duration_s"):
        assert result[key] == expected[key]
    trace = result["trace"]
    assert len(trace["time_s"]) == len(trace["probability"]) == result["invocations"]
    assert max(trace["window_mean"]) == pytest.approx(result["peak_probability"], abs=1e-3)
    with pytest.raises(StudioError, match="not an exported model"):
        try_model(config, "orphan.json", audio)


def test_long_traces_keep_their_peaks():
    values = np.zeros(10 * TRACE_POINTS)
    values[12345] = 1.0
    reduced = _reduced(values)
    assert reduced.size <= TRACE_POINTS and reduced.max() == 1.0
    assert _reduced(np.arange(5.0)).tolist() == [0, 1, 2, 3, 4]
