"""Reading a .tflite flatbuffer (`mww.device.tflite_graph`): tensors, quantization, ops, resource
variables."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import numpy as np
import pytest

from mww.device import constants as C
from mww.device.tflite_graph import VerifyError, analyze_bytes, analyze_model_architecture, read_model_bytes


def official_dir() -> Path:
    return Path(str(importlib.resources.files("pymicro_wakeword") / "models"))


def test_analyze_okay_nabu():
    report = analyze_model_architecture(official_dir() / "okay_nabu.tflite")
    assert report.file_size_bytes == (official_dir() / "okay_nabu.tflite").stat().st_size
    assert report.subgraph_count == C.EXPECTED_SUBGRAPHS == 2
    (inp,) = report.inputs
    (out,) = report.outputs
    assert (inp.dtype, inp.shape, inp.zero_point) == ("int8", [1, 3, 40], -128)
    assert inp.scale == pytest.approx(26 / 255, abs=1e-6)
    assert (out.dtype, out.shape, out.zero_point) == ("uint8", [1, 1], 0)
    assert out.scale == pytest.approx(1 / 256, abs=1e-9)
    assert set(report.ops_used) <= C.ALLOWED_OPS
    assert {"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "SPLIT_V"} <= set(report.ops_used)
    assert report.ops_per_subgraph[1] == ["ASSIGN_VARIABLE", "VAR_HANDLE"]
    assert 0 < report.resource_variables <= 20
    assert report.resource_variables == 6 and report.var_handle_ops == 12
    assert 20_000 < report.parameters < 50_000
    data = report.to_dict()
    assert json.loads(json.dumps(data))["ops_used"] == report.ops_used


def test_the_graph_of_bytes_and_of_a_file_agree(tmp_path):
    path = official_dir() / "hey_jarvis.tflite"
    data = read_model_bytes(path)
    graph = analyze_bytes(data, path)
    assert graph.report.to_dict() == analyze_model_architecture(path).to_dict()


def test_unreadable_and_foreign_files_are_a_verify_error(tmp_path):
    with pytest.raises(VerifyError, match=r"absent\.tflite"):
        read_model_bytes(tmp_path / "absent.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(np.random.default_rng(1).bytes(512))
    with pytest.raises(VerifyError, match="not a TFLite model"):
        analyze_model_architecture(junk)
