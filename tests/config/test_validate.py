"""Tests for mww.config.validate: types, ranges, device constants, relations between keys, model block
strings, unknown keys, and the one-paragraph error messages that name the file responsible."""

from __future__ import annotations

import pytest

from mww.config.load import load_full_config
from mww.config.schema import MwwConfig, TrainingConfig
from mww.config.validate import ConfigError, validate_config
from mww.device.constants import IMMUTABLE_HARDWARE, INPUT_DTYPE, MEL_BINS, OUTPUT_DTYPE, SAMPLE_RATE_HZ
from tests.config.test_load import error_of, write_yaml


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------- error messages


ERROR_CASES = [
    pytest.param(
        {"trainng": {"batch_size": 1}},
        ["Unknown section 'trainng'", "Did you mean 'training'?"],
        id="section",
    ),
    pytest.param(
        {"batch_size": 4},
        ["Unknown section 'batch_size'", "Did you mean 'training.batch_size'?"],
        id="key-at-top",
    ),
    pytest.param(
        {"training": {"batch_sise": 1}},
        ["Unknown key 'training.batch_sise'", "Did you mean 'training.batch_size'?"],
        id="key",
    ),
    pytest.param(
        {"model": {"batch_size": 1}},
        ["Unknown key 'model.batch_size'", "Did you mean 'training.batch_size'?"],
        id="misplaced",
    ),
    pytest.param(
        {"hardware": {"sample_rate_hz": 22050}},
        [
            "'hardware.sample_rate_hz' is set to 22050",
            f"can only be {SAMPLE_RATE_HZ}",
            "ESP32 front end in ESPHome computes features",
            "different features on the device",
            "Remove 'hardware.sample_rate_hz'",
        ],
        id="immutable-rate",
    ),
    pytest.param(
        {"hardware": {"mel_bins": MEL_BINS * 2}},
        [f"exactly {MEL_BINS} mel bins", "Remove 'hardware.mel_bins'"],
        id="immutable-mel",
    ),
    pytest.param(
        {"hardware": {"window_step_ms": 20.5}},
        ["Wrong type for 'hardware.window_step_ms'"],
        id="immutable-type",
    ),
    pytest.param(
        {"export": {"inference_input_type": "float32"}},
        ["'export.inference_input_type'", f"feeds the model {INPUT_DTYPE} features", "Remove"],
        id="input-dtype",
    ),
    pytest.param(
        {"export": {"inference_output_type": "int8"}}, [f'can only be "{OUTPUT_DTYPE}"'], id="output-dtype"
    ),
    pytest.param(
        {"training": {"batch_size": "32"}},
        ["Wrong type for 'training.batch_size'", 'got "32" (a string)', "a whole number", "without quotes"],
        id="string-number",
    ),
    pytest.param(
        {"training": {"batch_size": True}},
        ["Wrong type for 'training.batch_size'", "true/false is not a number"],
        id="bool-int",
    ),
    pytest.param({"training": {"batch_size": None}}, ["got null", "a whole number"], id="null"),
    pytest.param(
        "training:\n  learning_rates: [1e-3, 1e-4]\n",
        ["Wrong type for 'training.learning_rates[0]'", "decimal point"],
        id="yaml-1e-3",
    ),
    pytest.param({"training": {"training_steps": 5}}, ["must be a list of whole numbers"], id="not-list"),
    pytest.param(
        {"training": {"training_steps": []}}, ["'training.training_steps'", "at least 1 entry"], id="no-phase"
    ),
    pytest.param({"augmentation": {"enabled": "yes please"}}, ["must be true or false"], id="bool"),
    pytest.param(
        {"model": {"pointwise_filters": 60}},
        ["Put the value of 'model.pointwise_filters' in quotes"],
        id="str",
    ),
    pytest.param(
        {"paths": {"positive_dir": ""}}, ["'paths.positive_dir'", "a non-empty path"], id="empty-path"
    ),
    pytest.param({"training": {"target_minimization": float("nan")}}, ["finite number"], id="nan"),
    pytest.param(
        {"training": {"maximization_metric": "average_viable_recal"}},
        ["'training.maximization_metric'", "higher is better", "Did you mean 'average_viable_recall'?"],
        id="metric-typo",
    ),
    pytest.param(
        {"training": {"minimization_metric": "average_viable_recall"}},
        ["'training.minimization_metric'", "lower is better", "ambient_false_positives_per_hour"],
        id="metric-direction",
    ),
    pytest.param(
        {"training": {"batch_size": 0}},
        ["Out of range: 'training.batch_size'", "is 0", "must be >= 1"],
        id="range",
    ),
    pytest.param({"hardware": {"clip_duration_ms": 100}}, [">= 500 and <= 3000"], id="clip-range"),
    pytest.param(
        {"export": {"probability_cutoff": 1}}, ["'export.probability_cutoff'", "> 0 and < 1"], id="cutoff"
    ),
    pytest.param(
        {"training": {"freq_mask_max_size": [MEL_BINS + 1, 0]}},
        ["'training.freq_mask_max_size[0]'", f"<= {MEL_BINS}"],
        id="freq-mask",
    ),
    pytest.param(
        {"training": {"learning_rates": [0.1, -1]}}, ["'training.learning_rates[1]'", "> 0"], id="lr"
    ),
    pytest.param(
        {"speaker_clustering": {"n_clusters": 0}},
        ["'speaker_clustering.n_clusters'", ">= 1"],
        id="n-clusters",
    ),
    pytest.param(
        {"model": {"architecture": "resnet"}},
        ["Invalid choice for 'model.architecture'", '"resnet"', "mixednet, dnn, cnn, crnn"],
        id="choice",
    ),
    pytest.param(
        {"speaker_clustering": {"method": "treshold"}},
        ["agglomerative, threshold", "Did you mean 'threshold'?"],
        id="method",
    ),
    pytest.param({"export": {"wake_word": "  "}}, ["'export.wake_word'", "non-empty"], id="wake-word"),
    pytest.param(
        {"export": {"minimum_esphome_version": "latest"}}, ["a version like '2024.7.0'"], id="version"
    ),
    pytest.param(
        {"training": {"learning_rates": [0.1]}},
        [
            "Per-phase list length mismatch",
            "'training.learning_rates'",
            "has 1 value(s)",
            "2 training phase(s)",
            "exactly 2 value(s)",
        ],
        id="per-phase",
    ),
    pytest.param(
        {"model": {"mixconv_kernel_sizes": "[5],[9"}},
        ["Bad model block string: 'model.mixconv_kernel_sizes'", '"[5],[9"', "[5],[9],[13],[21]"],
        id="mixconv-syntax",
    ),
    pytest.param(
        {"model": {"mixconv_kernel_sizes": "[5],[],[13],[21]"}},
        ["Bad model block string"],
        id="mixconv-empty",
    ),
    pytest.param(
        {"model": {"mixconv_kernel_sizes": "[0],[9],[13],[21]"}},
        ["every entry must be >= 1"],
        id="kernel-zero",
    ),
    pytest.param(
        {"model": {"pointwise_filters": "60,x"}}, ["'model.pointwise_filters'", "whole numbers"], id="ints"
    ),
    pytest.param({"model": {"residual_connection": "0,2,0,0"}}, ["must be one of 0, 1"], id="residual"),
    pytest.param(
        {"model": {"pointwise_filters": "60,60,60"}},
        ["different numbers of blocks", "'model.pointwise_filters' has 3", "'model.repeat_in_block' has 4"],
        id="block-count",
    ),
    pytest.param(
        {"augmentation": {"background_min_snr_db": 20}},
        ["'augmentation.background_max_snr_db'", "must be >= 'augmentation.background_min_snr_db'"],
        id="snr",
    ),
    pytest.param(
        {"augmentation": {"max_jitter_s": 0.1}}, ["must be >= 'augmentation.min_jitter_s'"], id="jitter"
    ),
    pytest.param(
        {"data": {"max_positive_duration_s": 0.1}}, ["must be > 'data.min_duration_s'"], id="durations"
    ),
    pytest.param(
        {"data": {"validation_fraction": 0.5, "test_fraction": 0.5}}, ["must be < 1.0"], id="fractions"
    ),
    pytest.param({"data": {"test_fraction": 0.6}}, ["<= 0.5"], id="fraction-range"),
    pytest.param(
        {"data": {"test_speakers": ["bob", "ann"], "validation_speakers": ["ann"]}},
        ["'ann'", "'data.validation_speakers'", "'data.test_speakers'", "one split only"],
        id="speakers",
    ),
    pytest.param({"training": 5}, ["Section 'training'", "must be a mapping"], id="section-type"),
    pytest.param("- a\n- b\n", ["top level", "a list"], id="top-list"),
    pytest.param(
        "training:\n  batch_size: 3\n   eval_step_interval: 4\n", ["syntax error at line 3"], id="yaml-syntax"
    ),
    pytest.param(
        "model:\n  mixconv_kernel_sizes: [5],[9]\n",
        ["syntax error at line 2", "quote strings"],
        id="unquoted-mixconv",
    ),
]


@pytest.mark.parametrize(("content", "expected"), ERROR_CASES)
def test_error_messages(tmp_path, content, expected):
    path = write_yaml(tmp_path / "bad_config.yaml", content)
    message = error_of(path)
    assert str(path) in message
    for text in expected:
        assert text in message


def test_immutable_hardware_may_repeat_device_values(tmp_path):
    cfg = load_full_config(write_yaml(tmp_path / "hw.yaml", {"hardware": dict(IMMUTABLE_HARDWARE)}))
    assert cfg.hardware.sample_rate_hz == SAMPLE_RATE_HZ


def test_int_accepted_for_float(tmp_path):
    cfg = load_full_config(write_yaml(tmp_path / "f.yaml", {"augmentation": {"Gain": 1, "RIR": 0}}))
    assert cfg.augmentation.Gain == 1.0
    assert isinstance(cfg.augmentation.RIR, float)


def test_per_phase_error_names_both_files(tmp_path):
    override = write_yaml(tmp_path / "three.yaml", {"training": {"training_steps": [1, 2, 3]}})
    message = error_of("standard", override)
    assert "'training.learning_rates'" in message
    assert "standard.yaml" in message
    assert str(override) in message
    assert "3 training phase(s)" in message


def test_error_names_the_override_file(tmp_path):
    override = write_yaml(tmp_path / "over.yaml", {"training": {"batch_size": -1}})
    message = error_of("fast_test", override)
    assert f"'training.batch_size' in {override} is -1" in message


def test_validate_config_on_object_built_in_code():
    cfg = MwwConfig(training=TrainingConfig(batch_size=0))
    with pytest.raises(ConfigError, match="the MwwConfig object built in code"):
        validate_config(cfg)


def test_revalidation_keeps_sources(tmp_path):
    override = write_yaml(tmp_path / "o.yaml", {"training": {"batch_size": 4}})
    cfg = load_full_config("standard", override)
    cfg.training.batch_size = 0
    with pytest.raises(ConfigError, match=r"o\.yaml"):
        validate_config(cfg)


def test_first_kernel_shorter_than_stride_is_refused(tmp_path):
    override = tmp_path / "o.yaml"
    override.write_text("model:\n  first_conv_kernel_size: 2\n  stride: 3\n")
    with pytest.raises(ConfigError) as info:
        load_full_config("standard", override)
    message = str(info.value)
    assert "'model.first_conv_kernel_size' is 2" in message and "o.yaml" in message
    assert "never sees 1 of every 3 feature frames" in message and "at least 3" in message


# --------------------------------------------------------------------------- auto_tuning (mww-autotune)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"cutoff_min": 0.9, "cutoff_max": 0.8}, ["'auto_tuning.cutoff_max'", ">= 'auto_tuning.cutoff_min'"]),
        ({"window_max": 11}, ["'auto_tuning.window_max'", "10"]),
        ({"window_min": 6, "window_max": 5}, ["'auto_tuning.window_max'", ">= 'auto_tuning.window_min'"]),
        ({"positive_weight_step": 1.0}, ["'auto_tuning.positive_weight_step'", "> 1"]),
        ({"hard_negative_weight_step": 0.5}, ["'auto_tuning.hard_negative_weight_step'", "> 1"]),
        ({"burst_steps": 0}, ["'auto_tuning.burst_steps'", ">= 1"]),
        ({"burst_learning_rate": 0}, ["'auto_tuning.burst_learning_rate'", "> 0"]),
        ({"cutoff_max": 1.0}, ["'auto_tuning.cutoff_max'", "<= 0.995"]),
        ({"cutoff_max": 0.998}, ["'auto_tuning.cutoff_max'", "<= 0.995"]),
        ({"recall_tolerance": 2}, ["'auto_tuning.recall_tolerance'", "<= 1"]),
        ({"mining_fp_threshold": -0.1}, ["'auto_tuning.mining_fp_threshold'", ">= 0"]),
        ({"burst_step": 10}, ["burst_steps"]),
    ],
)
def test_auto_tuning_values_are_validated(tmp_path, values, expected):
    path = write_yaml(tmp_path / "tune.yaml", {"auto_tuning": values})
    message = error_of("standard", path)
    assert str(path) in message
    for text in expected:
        assert text in message, message
