"""Tests for mww.config.load: presets, merging, base chains, env substitution, paths, the command-line
options and the errors of finding and reading config files (the value checks: test_validate.py)."""

from __future__ import annotations

import argparse
import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from mww.config.load import (
    add_config_arguments,
    available_presets,
    config_from_args,
    config_from_dict,
    deep_merge,
    dump_config,
    load_full_config,
    load_preset,
)
from mww.config.schema import AUGMENTATION_NAMES, MwwConfig
from mww.config.validate import ConfigError, validate_config
from mww.device.constants import IMMUTABLE_HARDWARE, INPUT_DTYPE, OUTPUT_DTYPE, SAMPLE_RATE_HZ

PRESETS = ["fast_test", "max_quality", "standard"]
PRESET_DIR = Path(__file__).resolve().parents[2] / "config"


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def error_of(config: Any = "standard", override: Any = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_full_config(config, override)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------- presets


def test_available_presets():
    assert available_presets() == PRESETS


@pytest.mark.parametrize(
    ("name", "steps", "batch", "augmentation"),
    [
        ("fast_test", [2000, 1000], 32, False),
        ("standard", [20000, 10000], 128, True),
        ("max_quality", [50000, 20000], 128, True),
    ],
)
def test_preset_loads_with_spec_values(name, steps, batch, augmentation):
    cfg = load_preset(name)
    assert cfg.training.training_steps == steps
    assert cfg.training.batch_size == batch
    assert cfg.augmentation.enabled is augmentation
    assert load_full_config(name) == cfg
    assert cfg.source_of("training.batch_size").startswith(f"preset '{name}'")


def test_standard_yaml_equals_dataclass_defaults():
    assert load_preset("standard") == validate_config(MwwConfig())
    raw = yaml.safe_load((PRESET_DIR / "standard.yaml").read_text())
    defaults = MwwConfig().to_dict()
    for key in IMMUTABLE_HARDWARE:
        del defaults["hardware"][key]
    assert list(raw) == list(defaults)
    for section, values in defaults.items():
        assert list(raw[section]) == list(values), section


def test_presets_never_write_device_constants():
    # standard lists every key; the other presets are `base: standard` plus what differs.
    for name in PRESETS:
        raw = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())
        if name == "standard":
            assert "base" not in raw
            assert list(raw["hardware"]) == ["clip_duration_ms"]
        else:
            assert raw["base"] == "standard" and "hardware" not in raw, name


def test_fast_test_differs_from_standard_where_spec_says_in_its_class_weights_and_selection():
    fast, standard = load_preset("fast_test").to_dict(), load_preset("standard").to_dict()
    changed = {
        f"{section}.{key}"
        for section, values in fast.items()
        for key, value in values.items()
        if value != standard[section][key]
    }
    assert changed == {
        "training.training_steps",
        "training.batch_size",
        "training.eval_step_interval",
        "training.negative_class_weight",
        "training.hard_negative_class_weight",
        "training.minimization_metric",
        "training.selection_target",
        "training.maximization_metric",
        "augmentation.enabled",
    }
    fast_training = load_preset("fast_test").training
    assert fast_training.eval_step_interval == 250
    # the seed trainer's selection rule (docs/experiments/selection.md)
    assert (fast_training.minimization_metric, fast_training.selection_target) == (
        "ambient_false_positives_per_hour",
        None,
    )
    assert fast_training.maximization_metric == "average_viable_recall"
    assert fast_training.negative_class_weight == [5.0, 5.0]
    assert fast_training.hard_negative_class_weight == [10.0, 10.0]


def test_max_quality_has_full_augmentation_and_masks():
    best, standard = load_preset("max_quality"), load_preset("standard")
    assert best.training.time_mask_max_size == [5, 5]
    assert best.training.time_mask_count == [2, 2]
    assert best.training.freq_mask_max_size == [3, 3]
    assert best.training.freq_mask_count == [2, 2]
    for name in AUGMENTATION_NAMES:
        assert best.augmentation.probabilities()[name] >= standard.augmentation.probabilities()[name]
    assert sum(best.augmentation.probabilities().values()) > sum(
        standard.augmentation.probabilities().values()
    )
    assert best.model == standard.model
    assert best.export == standard.export


def test_helpers_on_sections():
    cfg = load_preset("standard")
    assert cfg.model.pointwise_filters_list == [60, 60, 60, 60]
    assert cfg.model.mixconv_kernel_sizes_list == [[5], [9], [13], [21]]
    assert cfg.model.repeat_in_block_list == [1, 1, 1, 1]
    assert cfg.model.residual_connection_list == [False] * 4
    assert cfg.model.num_blocks == 4
    assert cfg.training.num_phases == 2
    assert cfg.training.total_steps == 30000
    assert cfg.hardware.clip_samples == SAMPLE_RATE_HZ
    assert cfg.hardware.clip_frames > 0
    assert cfg.performance.resolved_num_workers() >= 1
    cfg.performance.num_workers = 3
    assert cfg.performance.resolved_num_workers() == 3
    assert cfg.export.inference_input_type == INPUT_DTYPE
    assert cfg.export.inference_output_type == OUTPUT_DTYPE
    assert cfg.speaker_clustering.n_clusters is None
    assert copy.deepcopy(cfg) == cfg


def test_multi_kernel_mixconv_blocks(tmp_path):
    path = write_yaml(
        tmp_path / "m.yaml",
        {
            "model": {
                "mixconv_kernel_sizes": " [3, 5], [9] ",
                "pointwise_filters": "8, 16",
                "repeat_in_block": "1,2",
                "residual_connection": "1,0",
            }
        },
    )
    model = load_full_config(path).model
    assert model.mixconv_kernel_sizes_list == [[3, 5], [9]]
    assert model.residual_connection_list == [True, False]


# --------------------------------------------------------------------------- merging and base chains


def test_deep_merge_replaces_lists_and_merges_dicts():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": [1]}
    merged = deep_merge(base, {"a": {"y": [3]}, "b": [2, 3], "c": 4})
    assert merged == {"a": {"x": 1, "y": [3]}, "b": [2, 3], "c": 4}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": [1]}


def test_override_deep_merges_and_replaces_lists(tmp_path):
    override = write_yaml(
        tmp_path / "over.yaml",
        {"training": {"training_steps": [7, 3], "batch_size": 16}, "export": {"trained_languages": ["de"]}},
    )
    cfg = load_full_config("fast_test", override)
    assert cfg.training.training_steps == [7, 3]
    assert cfg.training.batch_size == 16
    assert cfg.training.eval_step_interval == 250  # kept from fast_test
    assert cfg.training.learning_rates == [0.001, 0.0001]
    assert cfg.export.trained_languages == ["de"]
    assert cfg.export.wake_word == "Hey Computer"
    assert cfg.source_of("training.batch_size") == str(override)
    assert "fast_test" in cfg.source_of("training.eval_step_interval")


def test_single_phase_override(tmp_path):
    per_phase = [
        "learning_rates",
        "positive_class_weight",
        "negative_class_weight",
        "hard_negative_class_weight",
        "time_mask_max_size",
        "time_mask_count",
        "freq_mask_max_size",
        "freq_mask_count",
    ]
    training = {"training_steps": [100]} | {key: [1] for key in per_phase}
    cfg = load_full_config("standard", write_yaml(tmp_path / "one.yaml", {"training": training}))
    assert cfg.training.num_phases == 1
    assert cfg.training.learning_rates == [1.0]
    assert isinstance(cfg.training.learning_rates[0], float)


def test_user_yaml_without_base_merges_over_defaults(tmp_path):
    cfg = load_full_config(write_yaml(tmp_path / "mine.yaml", {"training": {"batch_size": 64}}))
    expected = validate_config(MwwConfig())
    expected.training.batch_size = 64
    assert cfg == expected
    assert cfg.source_of("model.stride") == "the built-in defaults"


def test_empty_yaml_gives_defaults(tmp_path):
    cfg = load_full_config(write_yaml(tmp_path / "empty.yaml", "# nothing here\n"))
    assert cfg == validate_config(MwwConfig())
    assert load_full_config(write_yaml(tmp_path / "null.yaml", "training:\n")) == cfg


def test_base_chain_with_preset_and_relative_paths(tmp_path, monkeypatch):
    write_yaml(tmp_path / "configs" / "team.yaml", {"base": "fast_test", "training": {"batch_size": 8}})
    child = write_yaml(
        tmp_path / "configs" / "sub" / "me.yaml",
        {"base": "../team.yaml", "export": {"wake_word": "Hey Jarvis"}},
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_full_config(child)
    assert cfg.training.training_steps == [2000, 1000]
    assert cfg.augmentation.enabled is False
    assert cfg.training.batch_size == 8
    assert cfg.export.wake_word == "Hey Jarvis"
    assert cfg.source_of("training.batch_size") == str(tmp_path / "configs" / "team.yaml")
    assert cfg.source_of("export.wake_word") == str(child)


def test_base_loop_is_an_error(tmp_path):
    write_yaml(tmp_path / "a.yaml", {"base": "b.yaml"})
    write_yaml(tmp_path / "b.yaml", {"base": "a.yaml"})
    message = error_of(tmp_path / "a.yaml")
    assert "loops back" in message
    assert "a.yaml -> " in message
    assert "b.yaml" in message


def test_missing_base_file(tmp_path):
    path = write_yaml(tmp_path / "me.yaml", {"base": "nothere.yaml"})
    message = error_of(path)
    assert "nothere.yaml" in message
    assert "named by 'base:' in" in message
    assert "me.yaml" in message
    assert "does not exist" in message


def test_base_not_allowed_in_override(tmp_path):
    override = write_yaml(tmp_path / "over.yaml", {"base": "standard"})
    message = error_of("standard", override)
    assert "'base' in" in message
    assert "over.yaml" in message
    assert "not allowed" in message


def test_config_from_dict():
    cfg = config_from_dict({"base": "fast_test", "training": {"batch_size": 4}}, source="test dict")
    assert cfg.training.batch_size == 4
    assert cfg.training.training_steps == [2000, 1000]
    assert cfg.source_of("training.batch_size") == "test dict"
    with pytest.raises(ConfigError, match=r"Unknown key 'model\.strid' in test dict"):
        config_from_dict({"model": {"strid": 2}}, source="test dict")


# --------------------------------------------------------------------------- environment variables


def test_env_substitution_set_default_and_embedded(tmp_path, monkeypatch):
    monkeypatch.setenv("MWW_T_ROOT", "/data/words")
    monkeypatch.delenv("MWW_T_UNSET", raising=False)
    path = write_yaml(
        tmp_path / "env.yaml",
        {
            "paths": {"positive_dir": "${MWW_T_ROOT}/positive", "negative_dir": "${MWW_T_UNSET:-/n}/neg"},
            "export": {"author": "by ${MWW_T_UNSET:-nobody} and ${MWW_T_UNSET:-}!"},
        },
    )
    cfg = load_full_config(path)
    assert cfg.paths.positive_dir == Path("/data/words/positive")
    assert cfg.paths.negative_dir == Path("/n/neg")
    assert cfg.export.author == "by nobody and !"


def test_env_value_is_reparsed_as_yaml(tmp_path, monkeypatch):
    monkeypatch.setenv("MWW_T_LR", "0.5")
    monkeypatch.delenv("MWW_T_BS", raising=False)
    monkeypatch.delenv("MWW_T_N", raising=False)
    path = write_yaml(
        tmp_path / "env.yaml",
        "training:\n  batch_size: ${MWW_T_BS:-32}\n  learning_rates: ['${MWW_T_LR}', 0.1]\n"
        "  training_steps: ${MWW_T_STEPS:-[5, 6]}\n"
        "speaker_clustering:\n  n_clusters: ${MWW_T_N:-}\n  enabled: ${MWW_T_ON:-true}\n"
        "export:\n  wake_word: ${MWW_T_WW:-123}\n",
    )
    cfg = load_full_config(path)
    assert cfg.training.batch_size == 32
    assert isinstance(cfg.training.batch_size, int)
    assert cfg.training.learning_rates == [0.5, 0.1]
    assert cfg.training.training_steps == [5, 6]
    assert cfg.speaker_clustering.n_clusters is None
    assert cfg.speaker_clustering.enabled is True
    assert cfg.export.wake_word == "123"
    assert type(cfg.export.wake_word) is str
    dump_config(cfg, tmp_path / "out.yaml")


def test_env_unset_without_default_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MWW_T_MISSING", raising=False)
    path = write_yaml(tmp_path / "env.yaml", {"paths": {"positive_dir": "${MWW_T_MISSING}/pos"}})
    message = error_of(path)
    assert "Environment variable MWW_T_MISSING is not set" in message
    assert "'paths.positive_dir'" in message
    assert str(path) in message
    assert "${MWW_T_MISSING:-value}" in message


def test_env_malformed_reference(tmp_path):
    path = write_yaml(tmp_path / "env.yaml", {"export": {"author": "${1BAD}"}})
    message = error_of(path)
    assert "'export.author'" in message
    assert "malformed environment reference" in message


def test_env_in_base(tmp_path, monkeypatch):
    monkeypatch.setenv("MWW_T_PRESET", "max_quality")
    cfg = load_full_config(write_yaml(tmp_path / "me.yaml", {"base": "${MWW_T_PRESET}"}))
    assert cfg.training.training_steps == [50000, 20000]


# --------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_cwd(tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    path = write_yaml(
        configs / "p.yaml",
        {"paths": {"positive_dir": "my/pos"}, "augmentation": {"impulse_paths": ["rirs2", "/abs/rirs"]}},
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cfg = load_full_config(path)
    assert cfg.paths.positive_dir == work / "my" / "pos"
    assert cfg.paths.negative_dir == work / "dataset" / "negative"
    assert cfg.paths.export_dir == work / "models" / "exported"
    assert cfg.performance.profile_output_dir == work / "profiles"
    assert cfg.performance.tensorboard_log_dir == work / "logs"
    assert cfg.augmentation.impulse_paths == [str(work / "rirs2"), "/abs/rirs"]
    assert all(isinstance(getattr(cfg.paths, f.name), Path) for f in dataclasses.fields(cfg.paths))


# --------------------------------------------------------------------------- round trip and CLI


def test_to_dict_dump_load_round_trip(tmp_path):
    cfg = load_full_config(
        "max_quality", write_yaml(tmp_path / "o.yaml", {"speaker_clustering": {"n_clusters": 3}})
    )
    data = cfg.to_dict()
    assert isinstance(data["paths"]["positive_dir"], str)
    assert yaml.safe_load(yaml.safe_dump(data)) == data
    out = dump_config(cfg, tmp_path / "deep" / "dumped.yaml")
    assert out == tmp_path / "deep" / "dumped.yaml"
    assert [p.name for p in out.parent.iterdir()] == ["dumped.yaml"]
    assert load_full_config(out) == cfg
    assert load_full_config(out).source_of("training.batch_size") == str(out)


def test_cli_arguments(tmp_path):
    parser = add_config_arguments(argparse.ArgumentParser())
    args = parser.parse_args([])
    assert (args.config, args.override) == ("standard", None)
    assert config_from_args(args) == load_preset("standard")
    override = write_yaml(tmp_path / "o.yaml", {"training": {"batch_size": 2}})
    args = parser.parse_args(["--config", "fast_test", "--override", str(override)])
    cfg = config_from_args(args)
    assert cfg.training.batch_size == 2
    assert cfg.training.training_steps == [2000, 1000]
    help_text = parser.format_help()
    assert "fast_test" in help_text
    assert "YAML" in help_text
    strict = add_config_arguments(argparse.ArgumentParser(), required=True)
    with pytest.raises(SystemExit):
        strict.parse_args([])


# --------------------------------------------------------------------------- loading errors


def test_missing_config_file(tmp_path):
    message = error_of(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in message
    assert "does not exist" in message
    assert "fast_test, max_quality, standard" in message
    assert "does not exist" in error_of("missing.yml")


def test_unknown_preset_name():
    message = error_of("stndard")
    assert "Unknown preset 'stndard'" in message
    assert "Did you mean 'standard'?" in message
    assert "fast_test, max_quality, standard" in message
    with pytest.raises(ConfigError, match="Unknown preset 'nope'"):
        load_preset("nope")


def test_config_path_is_a_folder(tmp_path):
    (tmp_path / "cfgdir").mkdir()
    assert "is a folder" in error_of(tmp_path / "cfgdir")


# --------------------------------------------------------------------------- auto_tuning (mww-autotune)


def test_presets_list_the_auto_tuning_section_with_the_defaults():
    from mww.config.schema import AutoTuningConfig

    defaults = dataclasses.asdict(AutoTuningConfig())
    raw = yaml.safe_load((PRESET_DIR / "standard.yaml").read_text())
    assert raw["auto_tuning"] == defaults
    for name in PRESETS:
        assert load_preset(name).auto_tuning == AutoTuningConfig()
