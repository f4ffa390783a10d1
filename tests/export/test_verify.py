"""The ESPHome compatibility verifier: official models pass, broken models and manifests fail by name."""

from __future__ import annotations

import copy
import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mww.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from mww.cli.verify import main
from mww.device import constants as C
from mww.export.manifest_checks import validate_manifest
from mww.export.verify import (
    DEFAULT_INVOKE_STEPS,
    VerifyError,
    analyze_model_architecture,
    declared_arena_size,
    measure_tensor_arena,
    verify_model,
)

OFFICIAL = ("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft")
ROOT = Path(__file__).resolve().parents[2]


def official_dir() -> Path:
    return Path(str(importlib.resources.files("pymicro_wakeword") / "models"))


def official_manifest(name: str) -> dict:
    return json.loads((official_dir() / f"{name}.json").read_text())


def failed_names(checks) -> set[str]:
    return {c.name for c in checks if not c.passed}


def check(checks, name: str):
    return next(c for c in checks if c.name == name)


@pytest.fixture(scope="module")
def float_model(tmp_path_factory) -> Path:
    """A tiny float Keras model (with an ABS op ESPHome lacks), converted once for the module."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((C.STREAMING_STRIDE, C.MEL_BINS), batch_size=1),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(4),
            tf.keras.layers.Lambda(tf.math.abs),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    return atomic_write_bytes(tmp_path_factory.mktemp("float") / "float_model.tflite", data)


@pytest.fixture
def jarvis_copy(tmp_path) -> tuple[Path, dict]:
    """hey_jarvis copied into a temp folder (no manifest next to it) and its manifest as a dict."""
    model = atomic_write_bytes(
        tmp_path / "hey_jarvis.tflite", (official_dir() / "hey_jarvis.tflite").read_bytes()
    )
    return model, official_manifest("hey_jarvis")


# --- The official models are the ground truth ---


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_models_pass_every_check(name):
    model = official_dir() / f"{name}.tflite"
    result = verify_model(model)  # manifest auto-detected next to the model
    declared = official_manifest(name)["micro"]["tensor_arena_size"]
    print(
        f"\n{name}: measured arena {result.measured_arena} B, declared {declared} B "
        f"({100 * (declared - result.measured_arena) / result.measured_arena:+.1f} %)"
    )
    assert result.manifest_path == str(official_dir() / f"{name}.json")
    assert result.ok, [f"{c.name}: {c.detail}" for c in result.failed]
    assert result.declared_arena == declared
    assert 0 < result.measured_arena < declared
    assert result.measured_arena % 16 == 0
    assert len(result.outputs_seen) == DEFAULT_INVOKE_STEPS == 300
    assert {"manifest.tensor_arena_size", "state", "invoke", "arena"} <= {c.name for c in result.checks}
    assert {"manifest.model", "manifest.wake_word", "manifest.trained_languages"} <= {
        c.name for c in result.checks
    }
    invoke = check(result.checks, "invoke").detail
    assert invoke.startswith("300 streaming invocations") and "synthetic" in invoke, invoke
    assert "exists next to the manifest" in check(result.checks, "manifest.model").detail
    assert all(c.fix == "" for c in result.checks)
    explicit = verify_model(model, official_dir() / f"{name}.json", invoke_steps=4)
    assert explicit.ok and explicit.measured_arena == result.measured_arena


def test_importing_verify_does_not_import_tensorflow():
    code = "import sys, mww.export.verify, mww.cli.verify; sys.exit('tensorflow' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


# --- Failing models and manifests ---


def test_float_model_fails_dtype_checks(float_model, capsys):
    result = verify_model(float_model)
    with capsys.disabled():
        print(f"\nfloat model: measured arena {result.measured_arena} B")
    failed = failed_names(result.checks)
    assert not result.ok
    assert {"input.dtype", "output.dtype", "subgraphs", "ops", "state"} <= failed
    assert "ABS" in next(c.detail for c in result.checks if c.name == "ops")
    assert result.manifest_path is None and result.declared_arena is None
    capsys.readouterr()
    assert main([str(float_model)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "input.dtype" in out and "Result: FAILED" in out
    assert "PASS" not in out and "✓ io" in out and "✗ input.dtype" in out
    lines = out.splitlines()
    ops_line = next(i for i, line in enumerate(lines) if line.startswith("✗ ops"))
    assert lines[ops_line + 1] == (
        "    fix: re-export with mww-export; the architecture uses an op ESPHome does not register: ABS"
    )
    dtype_line = lines.index(next(line for line in lines if line.startswith("✗ output.dtype")))
    assert "inference_output_type uint8" in lines[dtype_line + 1]
    assert not any(line.startswith("✓") and "fix:" in line for line in lines)
    assert all(bool(c.fix) != c.passed for c in result.checks)  # a fix exactly where a check failed
    assert main([str(float_model), "--json", "--steps", "3"]) == 1
    data = json.loads(capsys.readouterr().out)
    ops = next(c for c in data["checks"] if c["name"] == "ops")
    assert ops["passed"] is False and ops["fix"].endswith("does not register: ABS")


def test_too_small_arena_in_manifest_fails(jarvis_copy, capsys):
    model, manifest = jarvis_copy
    manifest["micro"]["tensor_arena_size"] = 4000
    path = atomic_write_json(model.with_suffix(".json"), manifest)
    result = verify_model(model)
    assert result.manifest_path == str(path)
    assert failed_names(result.checks) == {"manifest.tensor_arena_size"}
    detail = next(c.detail for c in result.checks if c.name == "manifest.tensor_arena_size")
    assert "4000" in detail and "%" in detail
    wanted = declared_arena_size(result.measured_arena)
    assert wanted > result.measured_arena and wanted % 16 == 0
    fix = check(result.checks, "manifest.tensor_arena_size").fix
    assert fix == f"set micro.tensor_arena_size to at least {wanted} (measured + margin)"
    assert main([str(model), "--manifest", str(path)]) == 1
    out = capsys.readouterr().out
    assert "declares 4000 B" in out and "✗ manifest.tensor_arena_size" in out
    assert f"    fix: {fix}" in out


def test_manifest_must_name_an_existing_model_next_to_it(jarvis_copy, tmp_path):
    model, manifest = jarvis_copy
    # Same file name as the verified model, but the manifest lives in a folder without it.
    elsewhere = atomic_write_json(tmp_path / "elsewhere" / "hey_jarvis.json", manifest)
    result = verify_model(model, elsewhere, invoke_steps=2)
    assert failed_names(result.checks) == {"manifest.model"}
    named = check(result.checks, "manifest.model")
    assert "does not exist next to the manifest" in named.detail
    assert named.fix == "put hey_jarvis.tflite next to the manifest or fix the model field"
    # Next to the model, but naming a file that is not there.
    manifest["model"] = "other.tflite"
    beside = atomic_write_json(model.with_suffix(".json"), manifest)
    named = check(verify_model(model, beside, invoke_steps=2).checks, "manifest.model")
    assert not named.passed and "does not exist" in named.detail and "other.tflite" in named.fix
    # The named file exists but is not the verified one: by name, then by contents.
    atomic_write_bytes(tmp_path / "other.tflite", model.read_bytes())
    named = check(verify_model(model, beside, invoke_steps=2).checks, "manifest.model")
    assert not named.passed and "verified model file is 'hey_jarvis.tflite'" in named.detail
    manifest["model"] = "hey_jarvis.tflite"
    atomic_write_bytes(
        tmp_path / "elsewhere" / "hey_jarvis.tflite", (official_dir() / "alexa.tflite").read_bytes()
    )
    named = check(verify_model(model, elsewhere, invoke_steps=2).checks, "manifest.model")
    assert not named.passed and "contents differ" in named.detail


def test_steps_option(jarvis_copy, capsys):
    model, _ = jarvis_copy
    assert main([str(model), "--steps", "5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    invoke = next(c for c in data["checks"] if c["name"] == "invoke")
    assert invoke["detail"].startswith("5 streaming invocations") and invoke["fix"] == ""
    assert main([str(model), "--steps", "1"]) == 2
    assert "--steps" in capsys.readouterr().err


def _set(data: dict, key: str, value: object) -> None:
    target, _, leaf = key.rpartition(".")
    (data["micro"] if target else data)[leaf] = value


def _delete(data: dict, key: str) -> None:
    target, _, leaf = key.rpartition(".")
    del (data["micro"] if target else data)[leaf]


@pytest.mark.parametrize(
    ("key", "value", "check"),
    [
        ("version", 1, "manifest.version"),
        ("type", "macro", "manifest.type"),
        ("micro.feature_step_size", 20, "manifest.feature_step_size"),
        ("micro.probability_cutoff", 0.0, "manifest.probability_cutoff"),
        ("micro.probability_cutoff", 1.5, "manifest.probability_cutoff"),
        ("micro.sliding_window_size", 0, "manifest.sliding_window_size"),
        ("model", "other.tflite", "manifest.model"),
        ("micro.tensor_arena_size", -1, "manifest.tensor_arena_size"),
        # Wrong JSON types.
        ("micro.sliding_window_size", "5", "manifest.sliding_window_size"),
        ("micro.sliding_window_size", 5.0, "manifest.sliding_window_size"),
        ("micro.probability_cutoff", "0.97", "manifest.probability_cutoff"),
        ("micro.probability_cutoff", True, "manifest.probability_cutoff"),
        ("micro.tensor_arena_size", "22860", "manifest.tensor_arena_size"),
        ("micro.tensor_arena_size", 22860.0, "manifest.tensor_arena_size"),
        ("trained_languages", "en", "manifest.trained_languages"),
        ("trained_languages", ["en", 1], "manifest.trained_languages"),
        ("wake_word", "", "manifest.wake_word"),
        ("wake_word", 7, "manifest.wake_word"),
        ("model", None, "manifest.model"),
    ],
)
def test_manifest_value_errors_are_named(key, value, check):
    data = copy.deepcopy(official_manifest("hey_jarvis"))
    _set(data, key, value)
    checks = validate_manifest(data, "hey_jarvis.tflite")
    assert failed_names(checks) == {check}
    (failed,) = (c for c in checks if not c.passed)
    assert repr(value) in failed.detail and failed.fix


def test_wrong_type_detail_names_the_type():
    data = copy.deepcopy(official_manifest("hey_jarvis"))
    data["micro"]["sliding_window_size"] = "5"
    failed = next(c for c in validate_manifest(data, None) if not c.passed)
    assert failed.name == "manifest.sliding_window_size"
    assert failed.detail == "'5' (string) (expected an integer >= 1)"
    assert "no quotes" in failed.fix


@pytest.mark.parametrize("key", ["wake_word", "trained_languages", "micro.minimum_esphome_version"])
def test_manifest_missing_key_is_named(key):
    data = copy.deepcopy(official_manifest("hey_jarvis"))
    _delete(data, key)
    checks = validate_manifest(data, None)
    assert failed_names(checks) == {"manifest.keys"}
    assert key in next(c.detail for c in checks if c.name == "manifest.keys")
    assert key in next(c.fix for c in checks if c.name == "manifest.keys")


def test_official_manifests_validate_alone():
    for name in OFFICIAL:
        checks = validate_manifest(official_manifest(name), f"{name}.tflite")
        assert all(c.passed for c in checks), name
    assert failed_names(validate_manifest(official_manifest("alexa"), "x.tflite", 10**6)) == {
        "manifest.model",
        "manifest.tensor_arena_size",
    }


# --- Bad input: VerifyError, exit 2, no traceback ---


def test_random_bytes_are_refused(tmp_path):
    junk = atomic_write_bytes(tmp_path / "junk.tflite", np.random.default_rng(0).bytes(4096))
    with pytest.raises(VerifyError, match=r"junk\.tflite"):
        verify_model(junk)
    with pytest.raises(VerifyError, match="not a TFLite model"):
        analyze_model_architecture(junk)
    with pytest.raises(VerifyError):
        measure_tensor_arena(junk.read_bytes())
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "verify_esphome.py"), str(junk)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "junk.tflite" in proc.stderr and "not a TFLite model" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_files_exit_2(tmp_path, jarvis_copy, capsys):
    assert main([str(tmp_path / "absent.tflite")]) == 2
    err = capsys.readouterr().err
    assert "absent.tflite" in err and "does not exist" in err and "Traceback" not in err
    model, _ = jarvis_copy
    assert main([str(model), "--manifest", str(tmp_path / "absent.json")]) == 2
    assert "absent.json" in capsys.readouterr().err


def test_manifest_that_is_not_json_is_refused(jarvis_copy, capsys):
    model, _ = jarvis_copy
    atomic_write_text(model.with_suffix(".json"), "{not json")
    with pytest.raises(VerifyError, match="not valid JSON"):
        verify_model(model)
    assert main([str(model)]) == 2
    assert "hey_jarvis.json" in capsys.readouterr().err


# --- Output formats ---


def test_json_output_parses(capsys):
    model = official_dir() / "alexa.tflite"
    assert main([str(model), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert data["declared_arena"] == 22348 and 0 < data["measured_arena"] < 22348
    assert data["report"]["subgraph_count"] == 2
    assert all(c["passed"] and c["fix"] == "" for c in data["checks"])


def test_verbose_output_lists_tensors_and_subgraphs(capsys):
    assert main([str(official_dir() / "okay_nabu.tflite"), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "Tensor arena: measured" in out and "manifest declares 37000 B" in out
    assert "Subgraph 1 (2 ops): ASSIGN_VARIABLE, VAR_HANDLE" in out
    assert "int8 [1, 3, 40]" in out and "Result: OK" in out


def test_a_cutoff_the_two_runtimes_read_differently_is_a_warning_not_a_failure(jarvis_copy, capsys):
    model, manifest = jarvis_copy
    manifest["micro"]["probability_cutoff"] = 0.998
    path = atomic_write_json(model.with_suffix(".json"), manifest)
    result = verify_model(model)
    assert result.ok and len(result.warnings) == 1
    assert "never fires in Home Assistant's pymicro-wakeword" in result.warnings[0]
    assert main([str(model), "--manifest", str(path)]) == 0
    out = capsys.readouterr().out
    with capsys.disabled():
        print(f"\n{out.splitlines()[-1]}")
    assert out.splitlines()[-1].startswith("Warning: probability_cutoff 0.998 never fires in Home Assistant")
    manifest["micro"]["probability_cutoff"] = 0.97
    atomic_write_json(path, manifest)
    assert verify_model(model).warnings == []
    assert main([str(model), "--manifest", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
