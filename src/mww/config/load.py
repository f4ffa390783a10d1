"""Loading, merging and validating the mww configuration (presets and user YAML files).

A configuration is built in layers, later layers winning:

1. the dataclass defaults of `mww.config.schema` (equal to the `standard` preset);
2. `config`: a preset name (fast_test, standard, max_quality) or a path to a YAML file. A YAML file may
   start with `base: <preset name or path>` to build on another config (a relative path is taken from
   the YAML file's folder); without `base:` it is merged over the defaults;
3. `override`: a YAML file merged on top.

Dicts merge key by key; lists are replaced, never concatenated. `${VAR}` and `${VAR:-default}` are
substituted in every string value; a value that is entirely one substitution is re-read as YAML, so
`batch_size: ${BS:-32}` gives the int 32 (while a text field keeps the text).

Relative paths (the `paths` section, performance.profile_output_dir, performance.tensorboard_log_dir,
augmentation.impulse_paths and augmentation.background_paths) are resolved against the CURRENT WORKING
DIRECTORY at load time, not against the YAML file's folder; a loaded config holds absolute paths.

Every problem raises `ConfigError`, whose message is one paragraph naming the dotted key, the value given,
what is allowed, the file responsible and what to do. `MwwConfig.source_of(key)` tells which file set a key.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import math
import numbers
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from mww.atomic import atomic_write_text
from mww.config.schema import (
    AUGMENTATION_NAMES,
    BLOCK_PARSERS,
    SECTION_TYPES,
    AugmentationConfig,
    DataConfig,
    ExportConfig,
    HardNegativeMiningConfig,
    HardwareConfig,
    ModelConfig,
    MwwConfig,
    PathsConfig,
    PerformanceConfig,
    SpeakerClusteringConfig,
    TrainingConfig,
    parse_int_list,
    parse_kernel_lists,
)
from mww.errors import MwwError

__all__ = [
    "AUGMENTATION_NAMES",
    "DEFAULT_PRESET",
    "AugmentationConfig",
    "ConfigError",
    "DataConfig",
    "ExportConfig",
    "HardNegativeMiningConfig",
    "HardwareConfig",
    "ModelConfig",
    "MwwConfig",
    "PathsConfig",
    "PerformanceConfig",
    "SpeakerClusteringConfig",
    "TrainingConfig",
    "add_config_arguments",
    "available_presets",
    "config_from_args",
    "config_from_dict",
    "deep_merge",
    "dump_config",
    "load_full_config",
    "load_preset",
    "parse_int_list",
    "parse_kernel_lists",
    "validate_config",
]

DEFAULT_PRESET = "standard"
DEFAULTS_SOURCE = "the built-in defaults"
_CODE_SOURCE = "the MwwConfig object built in code"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

_FRONT_END = "the ESP32 front end in ESPHome computes features"
_DIFFERENT = "so a model trained with another value would get different features on the device"
_WONT_RUN = "so a model exported with another type would not run on the device"
_FIXED_REASONS = {
    "hardware.sample_rate_hz": f"{_FRONT_END} from audio at exactly {{v}} Hz, {_DIFFERENT}",
    "hardware.mel_bins": f"{_FRONT_END} with exactly {{v}} mel bins, {_DIFFERENT}",
    "hardware.window_size_ms": f"{_FRONT_END} with windows of exactly {{v}} ms, {_DIFFERENT}",
    "hardware.window_step_ms": f"{_FRONT_END} with a window step of exactly {{v}} ms, {_DIFFERENT}",
    "export.inference_input_type": (
        f"the micro_wake_word runtime in ESPHome feeds the model {{v}} features, {_WONT_RUN}"
    ),
    "export.inference_output_type": (
        f"the micro_wake_word runtime in ESPHome reads the model output as a {{v}} probability, {_WONT_RUN}"
    ),
}

_CHOICE_NOTES = {
    "training.minimization_metric": (
        " These are the validation metrics where lower is better; checkpoint selection keeps the "
        "lowest until it is at or below 'training.target_minimization'."
    ),
    "training.maximization_metric": (
        " These are the validation metrics where higher is better; checkpoint selection keeps the "
        "highest among the checkpoints within 'training.target_minimization'."
    ),
}

_BLOCK_FORMATS = {
    "ints": "comma-separated whole numbers, one per block, like '60,60,60,60'",
    "kernels": "comma-separated bracketed lists of kernel sizes, one list per block, like '[5],[9],[13],[21]'"
    " or '[3,5],[9]'",
}


class ConfigError(MwwError):
    """A configuration problem, explained in one paragraph."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))


class _EnvString(str):
    """A string that came entirely from one ${VAR} substitution; `parsed` is that text read as YAML."""

    parsed: Any


@dataclass
class _Layer:
    data: dict[str, Any]
    source: str
    folder: Path


# --------------------------------------------------------------------------- presets


def _presets_root() -> Traversable:
    try:
        return resources.files("mww.presets")
    except ModuleNotFoundError:
        # A source checkout run with PYTHONPATH=src: the presets are in the top-level config/ folder.
        return Path(__file__).resolve().parents[2] / "config"


def available_presets() -> list[str]:
    """Names of the bundled presets, sorted."""
    try:
        entries = list(_presets_root().iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(entry.name[: -len(".yaml")] for entry in entries if entry.name.endswith(".yaml"))


def _unknown_preset(name: str, referrer: str | None) -> ConfigError:
    presets = available_presets()
    close = get_close_matches(name, presets, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    where = f" (named by 'base:' in {referrer})" if referrer else ""
    return ConfigError(
        f"Unknown preset '{name}'{where}, and no file of that name exists.{hint} The presets are: "
        f"{', '.join(presets)}. Pass one of these names, or the path to a YAML config file."
    )


def _preset_layer(name: str, referrer: str | None = None) -> _Layer:
    if name not in available_presets():
        raise _unknown_preset(name, referrer)
    resource = _presets_root().joinpath(f"{name}.yaml")
    source = f"preset '{name}' ({resource})"
    return _parse_layer(_read_text(resource, source), source, Path(str(resource)).parent, allow_base=True)


# --------------------------------------------------------------------------- reading YAML


def _read_text(resource: Traversable | Path, source: str) -> str:
    try:
        return resource.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise ConfigError(
            f"The config path {source} is a folder, not a YAML file. Pass the path of a .yaml file."
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"The config file {source} is not UTF-8 text ({exc.reason} at byte {exc.start}). "
            "Save it as UTF-8 YAML and run again."
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"The config file {source} could not be read ({exc.strerror or exc}). "
            "Check that it exists and that you may read it."
        ) from None


def _parse_layer(text: str, source: str, folder: Path, *, allow_base: bool) -> _Layer:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        context = getattr(exc, "context", None)
        detail = f"{problem} ({' '.join(str(context).split())})" if context else problem
        raise ConfigError(
            f"The YAML file {source} has a syntax error{where}: {detail}. Fix the YAML there (check the "
            "indentation and colons, and quote strings that contain ':', '#', '[' or '{'), then run again."
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"The top level of {source} must be a mapping of sections (like 'training:' and 'model:'), "
            f"but it is {_kind(data)}: {_show(data)}. Write the file as 'section:' lines with indented "
            "'key: value' lines under them."
        )
    data = _check_structure(data, source, allow_base=allow_base)
    return _Layer(_substitute(data, "", source), source, folder)


def _all_keys() -> list[str]:
    return [f"{name}.{item.name}" for name, cls in SECTION_TYPES.items() for item in dataclasses.fields(cls)]


def _suggest(section: str | None, key: str) -> str | None:
    """The closest valid dotted key to `key` (given under `section`, or at the top level)."""
    if section is not None:
        local = [item.name for item in dataclasses.fields(SECTION_TYPES[section])]
        close = get_close_matches(key, local, n=1, cutoff=0.6)
        if close:
            return f"{section}.{close[0]}"
    everywhere = _all_keys()
    exact = [full for full in everywhere if full.split(".", 1)[1] == key]
    if exact:
        return exact[0]
    by_name = {full.split(".", 1)[1]: full for full in reversed(everywhere)}
    close = get_close_matches(key, list(by_name), n=1, cutoff=0.75)
    return by_name[close[0]] if close else None


def _check_structure(data: dict[Any, Any], source: str, *, allow_base: bool) -> dict[str, Any]:
    sections = list(SECTION_TYPES)
    result: dict[str, Any] = {}
    for name, body in data.items():
        if name == "base":
            if not allow_base:
                raise ConfigError(
                    f"'base' in {source} is not allowed: an override file is merged on top of the --config "
                    "file and cannot start from another config. Move 'base:' into the --config file, or "
                    "pass the base config as --config."
                )
            result["base"] = body
            continue
        if name not in SECTION_TYPES:
            close = get_close_matches(str(name), sections, n=1)
            suggestion = close[0] if close else _suggest(None, str(name))
            hint = f" Did you mean '{suggestion}'?" if suggestion else ""
            raise ConfigError(
                f"Unknown section '{name}' in {source}.{hint} The sections are: {', '.join(sections)} "
                f"(and 'base' to start from another config). Rename or remove '{name}'."
            )
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ConfigError(
                f"Section '{name}' in {source} must be a mapping of keys, but it is {_kind(body)}: "
                f"{_show(body)}. Write it as '{name}:' followed by indented 'key: value' lines."
            )
        valid = [item.name for item in dataclasses.fields(SECTION_TYPES[name])]
        for key in body:
            if key not in valid:
                suggestion = _suggest(name, str(key))
                hint = f" Did you mean '{suggestion}'?" if suggestion else ""
                raise ConfigError(
                    f"Unknown key '{name}.{key}' in {source}.{hint} The keys of '{name}' are: "
                    f"{', '.join(valid)}. Rename or remove '{name}.{key}'."
                )
        result[name] = dict(body)
    return result


# --------------------------------------------------------------------------- environment variables


def _substitute(node: Any, key: str, source: str) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, f"{key}.{k}" if key else str(k), source) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, f"{key}[{i}]", source) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        return _expand(node, key, source)
    return node


def _expand(text: str, key: str, source: str) -> str:
    if "${" in _ENV_REF.sub("", text):
        raise ConfigError(
            f"'{key}' in {source} is {_show(text)}, which contains a malformed environment reference. "
            "Write ${NAME} or ${NAME:-default}, where NAME is letters, digits and underscores."
        )

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value:
            return value
        if default is not None:
            return default
        if value is not None:
            return value
        raise ConfigError(
            f"Environment variable {name} is not set, but '{key}' in {source} uses ${{{name}}}. "
            f"Set it (for example: export {name}=...) or give a default with ${{{name}:-value}}."
        )

    result = _ENV_REF.sub(replace, text)
    if not _ENV_REF.fullmatch(text):
        return result
    whole = _EnvString(result)
    try:
        whole.parsed = yaml.safe_load(result)
    except yaml.YAMLError:
        whole.parsed = result
    return whole


# --------------------------------------------------------------------------- merging and loading


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `override` merged in: dicts merge recursively, lists and scalars replace."""
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _record_sources(data: Mapping[str, Any], source: str, prefix: str, sources: dict[str, str]) -> None:
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        sources[dotted] = source
        if isinstance(value, Mapping):
            _record_sources(value, source, dotted, sources)


def _absolute(path: str | os.PathLike[str], folder: Path | None = None) -> Path:
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = (folder or Path.cwd()) / candidate
    return Path(os.path.abspath(candidate))


def _looks_like_name(ref: str | os.PathLike[str]) -> bool:
    return (
        isinstance(ref, str)
        and "/" not in ref
        and os.sep not in ref
        and Path(ref).suffix.lower() not in (".yaml", ".yml")
    )


def _open(
    ref: str | os.PathLike[str], folder: Path | None, referrer: str | None, *, allow_base: bool
) -> _Layer:
    if isinstance(ref, str) and ref in available_presets():
        return _preset_layer(ref, referrer)
    if not isinstance(ref, str | os.PathLike) or not os.fspath(ref).strip():
        where = f"'base' in {referrer}" if referrer else "The config argument"
        raise ConfigError(
            f"{where} is {_show(ref)}, but it must be a preset name ({', '.join(available_presets())}) "
            "or the path to a YAML file. Give one of those."
        )
    path = _absolute(ref, folder)
    if not path.exists():
        if _looks_like_name(ref):
            raise _unknown_preset(str(ref), referrer)
        named_by = f", named by 'base:' in {referrer}," if referrer else ""
        raise ConfigError(
            f"The config file {path}{named_by} does not exist. Give an existing YAML file (a relative path "
            f"is taken from {'the folder of that file' if referrer else 'the current directory'}) or a "
            f"preset name: {', '.join(available_presets())}."
        )
    return _parse_layer(_read_text(path, str(path)), str(path), path.parent, allow_base=allow_base)


def _with_bases(layer: _Layer, seen: tuple[str, ...]) -> list[_Layer]:
    base = layer.data.pop("base", None)
    if base is None:
        return [layer]
    if isinstance(base, _EnvString):
        base = str(base)
    parent = _open(base, layer.folder, layer.source, allow_base=True)
    chain = (*seen, layer.source)
    if parent.source in chain:
        loop = " -> ".join((*chain, parent.source))
        raise ConfigError(
            f"The 'base:' chain loops back on itself: {loop}. Remove 'base:' from one of these files."
        )
    return [*_with_bases(parent, chain), layer]


def _build(layers: list[_Layer]) -> MwwConfig:
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.data)
        _record_sources(layer.data, layer.source, "", sources)
    sections = {name: cls(**merged.get(name, {})) for name, cls in SECTION_TYPES.items()}
    return validate_config(MwwConfig(**sections), sources)


def load_preset(name: str) -> MwwConfig:
    """Load a bundled preset by name (see `available_presets()`)."""
    return _build([_preset_layer(name)])


def load_full_config(
    config: str | os.PathLike[str] = DEFAULT_PRESET, override: str | os.PathLike[str] | None = None
) -> MwwConfig:
    """Load `config` (preset name or YAML path, following `base:`), merge `override` on top, validate.

    `override` is a YAML path (a preset name works too); it may not contain `base:`.
    """
    layers = _with_bases(_open(config, None, None, allow_base=True), ())
    if override is not None:
        layers.append(_open(override, None, None, allow_base=False))
    return _build(layers)


def config_from_dict(data: Mapping[str, Any], source: str = "a Python dict") -> MwwConfig:
    """Build a validated config from nested mappings (as in a YAML file; `base:` allowed)."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"The configuration from {source} must be a mapping of sections, but it is {_kind(data)}. "
            "Pass a dict like {'training': {'batch_size': 32}}."
        )
    checked = _check_structure(dict(data), source, allow_base=True)
    layer = _Layer(_substitute(checked, "", source), source, Path.cwd())
    return _build(_with_bases(layer, ()))


class _Dumper(yaml.SafeDumper):
    """Block-style mappings with flow-style lists, as in the presets."""


_Dumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def dump_config(cfg: MwwConfig, path: str | os.PathLike[str]) -> Path:
    """Write `cfg` as YAML to `path` atomically; the file loads back to an equal config."""
    header = (
        "# mww configuration written by mww.config.load.dump_config.\n"
        "# Paths are absolute; load it with --config <this file>.\n"
    )
    body = yaml.dump(cfg.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return atomic_write_text(path, header + body)


# --------------------------------------------------------------------------- validation


def validate_config(cfg: MwwConfig, sources: Mapping[str, str] | None = None) -> MwwConfig:
    """Check and normalize every value of `cfg` in place (types, ranges, paths); return it.

    `sources` maps dotted keys to the file that set them, for error messages (default: those recorded
    when `cfg` was loaded).
    """
    known = dict(sources if sources is not None else cfg._sources)
    fallback = DEFAULTS_SOURCE if sources is not None or known else _CODE_SOURCE

    def source_of(key: str) -> str:
        return known.get(key) or known.get(key.split(".", 1)[0]) or fallback

    for section_field in dataclasses.fields(MwwConfig):
        name = section_field.name
        section = getattr(cfg, name)
        expected = SECTION_TYPES[name]
        if not isinstance(section, expected):
            raise ConfigError(
                f"Section '{name}' of {source_of(name)} must be a {expected.__name__}, but it is "
                f"{_kind(section)}. Build the config with load_full_config() or config_from_dict()."
            )
        hints = _hints(expected)
        for item in dataclasses.fields(section):
            key = f"{name}.{item.name}"
            value = _convert(
                getattr(section, item.name), hints[item.name], key, source_of(key), item.metadata
            )
            setattr(section, item.name, value)
            _check_rules(value, item.metadata, key, source_of(key))
        _check_relations(section, name, source_of)
    _check_streamable_architecture(cfg.model, source_of)
    _check_first_kernel_covers_stride(cfg.model, source_of)
    cfg._sources = known  # type: ignore[misc]
    return cfg


# Architectures the schema names but the device cannot run: refused here, before any training.
_UNSTREAMABLE_ARCHITECTURES = {
    "crnn": (
        "a CRNN's GRU/LSTM layers need recurrent ops (UNIDIRECTIONAL_SEQUENCE_LSTM, WHILE, ...) that are not "
        "in the op list ESPHome's micro_wake_word registers, so the exported model would fail at tensor "
        "allocation on the ESP32"
    ),
}


def _check_streamable_architecture(model: ModelConfig, source_of: Any) -> None:
    reason = _UNSTREAMABLE_ARCHITECTURES.get(model.architecture)
    if reason is not None:
        key = "model.architecture"
        raise ConfigError(
            f"'{key}' is {_show(model.architecture)} in {source_of(key)}, but {reason}. Use 'mixednet' (the "
            "default, a streaming depthwise-separable CNN) or 'cnn' (or 'dnn') instead."
        )


def _check_first_kernel_covers_stride(model: ModelConfig, source_of: Any) -> None:
    if model.first_conv_kernel_size < model.stride:
        kernel, stride = "model.first_conv_kernel_size", "model.stride"
        raise ConfigError(
            f"'{kernel}' is {model.first_conv_kernel_size} (from {source_of(kernel)}) but '{stride}' is "
            f"{model.stride} (from {source_of(stride)}): a first convolution shorter than its stride never "
            f"sees {model.stride - model.first_conv_kernel_size} of every {model.stride} feature frames, and "
            "TensorFlow's CPU kernels (oneDNN) compute such a convolution wrongly at random. Set "
            f"'{kernel}' to at least {model.stride}."
        )


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(
    value: Any,
    hint: Any,
    key: str,
    source: str,
    rules: Mapping[str, Any],
) -> Any:
    if isinstance(value, _EnvString) and hint not in (str, Path):
        value = value.parsed
    origin = typing.get_origin(hint)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise _type_error(key, value, hint, source)
        items = [_convert(item, item_hint, f"{key}[{i}]", source, {}) for i, item in enumerate(value)]
        if rules.get("path"):
            items = [str(_absolute(item)) if item.strip() else item for item in items]
        return items
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _convert(value, inner, key, source, rules)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if hint is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ConfigError(
                f"Invalid value for '{key}' in {source}: got {_show(value)}, but it must be a finite number. "
                f"Set '{key}' to an ordinary number."
            )
        return float(value)
    if hint is str and isinstance(value, str):
        return str(value)
    if hint is Path and isinstance(value, str | os.PathLike) and os.fspath(value).strip():
        return _absolute(value)
    if hint not in (bool, int, float, str, Path):
        raise TypeError(f"config field {key} has an unsupported type hint {hint!r}")
    raise _type_error(key, value, hint, source)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is list:
        item = typing.get_args(hint)[0]
        return {int: "a list of whole numbers", float: "a list of numbers", str: "a list of strings"}.get(
            item, f"a list of {_describe(item)}"
        )
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        inner = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        return f"{_describe(inner)} or null"
    return {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "a string",
        Path: "a non-empty path",
    }.get(hint, str(hint))


def _type_error(key: str, value: Any, hint: Any, source: str) -> ConfigError:
    base = typing.get_origin(hint)
    fix = f"Change '{key}' in {source} to {_describe(hint)}."
    if isinstance(value, str) and hint in (int, float):
        fix = f"Write the number without quotes in {source}."
        if re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+\s*", value):
            fix = (
                f"YAML reads {value.strip()} as text; write it with a decimal point (like 1.0e-3) or as a "
                f"plain decimal (like 0.001) in {source}."
            )
    elif isinstance(value, bool) and hint in (int, float):
        fix = f"true/false is not a number; write a number for '{key}' in {source}."
    elif isinstance(value, numbers.Number) and hint is str:
        fix = f"Put the value of '{key}' in quotes in {source}."
    elif base is list and not isinstance(value, list):
        fix = f"Write '{key}' as a YAML list in {source}, like [1, 2]."
    return ConfigError(
        f"Wrong type for '{key}' in {source}: got {_show(value)} ({_kind(value)}), but it must be "
        f"{_describe(hint)}. {fix}"
    )


def _bounds_text(rules: Mapping[str, Any]) -> str:
    parts = []
    if "min" in rules:
        parts.append(f">= {rules['min']}")
    if "gt" in rules:
        parts.append(f"> {rules['gt']}")
    if "max" in rules:
        parts.append(f"<= {rules['max']}")
    if "lt" in rules:
        parts.append(f"< {rules['lt']}")
    return " and ".join(parts)


def _in_bounds(value: float, rules: Mapping[str, Any]) -> bool:
    return not (
        ("min" in rules and value < rules["min"])
        or ("gt" in rules and value <= rules["gt"])
        or ("max" in rules and value > rules["max"])
        or ("lt" in rules and value >= rules["lt"])
    )


def _check_rules(value: Any, rules: Mapping[str, Any], key: str, source: str) -> None:
    if value is None:
        return
    if isinstance(value, list):
        if len(value) < rules.get("min_len", 0):
            raise ConfigError(
                f"'{key}' in {source} is {_show(value)}, but it needs at least {rules['min_len']} "
                f"entr{'y' if rules['min_len'] == 1 else 'ies'}. Give '{key}' at least that many."
            )
        for index, item in enumerate(value):
            _check_scalar(item, rules, f"{key}[{index}]", key, source)
    else:
        _check_scalar(value, rules, key, key, source)


def _check_scalar(value: Any, rules: Mapping[str, Any], shown_key: str, key: str, source: str) -> None:
    if "fixed" in rules and value != rules["fixed"]:
        fixed = rules["fixed"]
        reason = _FIXED_REASONS.get(
            key, "it is fixed by the ESPHome device contract in mww.device.constants"
        ).format(v=fixed)
        raise ConfigError(
            f"'{key}' is set to {_show(value)} in {source}, but it can only be {_show(fixed)}: {reason}. "
            f"Remove '{key}' from {source}; the device value from mww.device.constants is always used."
        )
    if "choices" in rules and value not in rules["choices"]:
        choices = ", ".join(str(choice) for choice in rules["choices"])
        close = get_close_matches(str(value), [str(c) for c in rules["choices"]], n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"Invalid choice for '{shown_key}' in {source}: got {_show(value)}, but it must be one of: "
            f"{choices}.{_CHOICE_NOTES.get(key, '')}{hint} Set '{shown_key}' to one of these."
        )
    if isinstance(value, numbers.Real) and not _in_bounds(value, rules):
        raise ConfigError(
            f"Out of range: '{shown_key}' in {source} is {_show(value)}, but it must be "
            f"{_bounds_text(rules)}. Set '{shown_key}' in {source} to a value in that range."
        )
    if rules.get("not_blank") and isinstance(value, str) and not value.strip():
        raise ConfigError(
            f"'{shown_key}' in {source} is {_show(value)}, but it must be a non-empty string. "
            f"Give '{shown_key}' a value."
        )
    if "pattern" in rules and isinstance(value, str) and not re.fullmatch(rules["pattern"], value):
        raise ConfigError(
            f"Invalid value for '{shown_key}' in {source}: got {_show(value)}, but it must be "
            f"{rules.get('pattern_hint', 'of the form ' + rules['pattern'])}. Correct '{shown_key}'."
        )


def _fields_with(section: Any, rule: str) -> Iterator[tuple[str, Any, Any]]:
    for item in dataclasses.fields(section):
        if rule in item.metadata:
            yield item.name, getattr(section, item.name), item.metadata[rule]


def _check_relations(section: Any, name: str, source_of: Any) -> None:
    def show(field_name: str) -> str:
        key = f"{name}.{field_name}"
        return f"'{key}' ({_show(getattr(section, field_name))}, from {source_of(key)})"

    for rule, holds, word in (("ge_field", float.__ge__, ">="), ("gt_field", float.__gt__, ">")):
        for field_name, value, other in _fields_with(section, rule):
            if not holds(float(value), float(getattr(section, other))):
                raise ConfigError(
                    f"{show(field_name)} must be {word} {show(other)}. Raise '{name}.{field_name}' or "
                    f"lower '{name}.{other}' so that this holds."
                )
    for field_name, value, (other, limit) in _fields_with(section, "sum_below"):
        if value + getattr(section, other) >= limit:
            raise ConfigError(
                f"{show(field_name)} plus {show(other)} must be < {limit}, or nothing is left for training. "
                f"Lower one of them."
            )
    for field_name, value, other in _fields_with(section, "disjoint_with"):
        both = sorted(set(value) & set(getattr(section, other)))
        if both:
            raise ConfigError(
                f"{', '.join(repr(item) for item in both)} appear(s) in both {show(field_name)} and "
                f"{show(other)}, but a speaker can be forced into one split only. Remove it from one list."
            )
    for field_name, value, _ in _fields_with(section, "per_phase"):
        phases = len(section.training_steps)
        if len(value) != phases:
            key = f"{name}.{field_name}"
            raise ConfigError(
                f"Per-phase list length mismatch: '{key}' in {source_of(key)} has {len(value)} value(s) "
                f"({_show(value)}), but there are {phases} training phase(s): 'training.training_steps' is "
                f"{_show(section.training_steps)} (from {source_of('training.training_steps')}). "
                f"Give '{key}' exactly {phases} value(s), one per phase, or change 'training.training_steps'."
            )
    _check_blocks(section, name, source_of)


def _check_blocks(section: Any, name: str, source_of: Any) -> None:
    counts: dict[str, int] = {}
    for item in dataclasses.fields(section):
        rules = item.metadata
        if "blocks" not in rules:
            continue
        key, text = f"{name}.{item.name}", getattr(section, item.name)
        try:
            parsed = BLOCK_PARSERS[rules["blocks"]](text)
        except ValueError:
            raise ConfigError(
                f"Bad model block string: '{key}' in {source_of(key)} is {_show(text)}, but it must be "
                f"{_BLOCK_FORMATS[rules['blocks']]}. Fix '{key}' (quote it in YAML)."
            ) from None
        flat = [v for entry in parsed for v in (entry if isinstance(entry, list) else [entry])]
        low, choices = rules.get("block_min"), rules.get("block_choices")
        if any((low is not None and v < low) or (choices is not None and v not in choices) for v in flat):
            allowed = f">= {low}" if low is not None else "one of " + ", ".join(str(c) for c in choices)
            raise ConfigError(
                f"Bad model block string: '{key}' in {source_of(key)} is {_show(text)}, but every entry "
                f"must be {allowed}. Fix '{key}'."
            )
        counts[key] = len(parsed)
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"'{key}' has {n} (from {source_of(key)})" for key, n in counts.items())
        raise ConfigError(
            f"The model block strings describe different numbers of blocks: {listing}. All of them must "
            "describe the same number of blocks; give them the same number of comma-separated entries."
        )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, numbers.Integral):
        return "a whole number"
    if isinstance(value, numbers.Real):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------- command line


def add_config_arguments(
    parser: argparse.ArgumentParser, *, required: bool = False
) -> argparse.ArgumentParser:
    """Add the shared --config and --override options to `parser`; return it."""
    presets = ", ".join(available_presets()) or DEFAULT_PRESET
    parser.add_argument(
        "--config",
        required=required,
        default=None if required else DEFAULT_PRESET,
        metavar="PRESET_OR_YAML",
        help=f"a preset name ({presets}) or the path to a YAML config file"
        + ("" if required else f" (default: {DEFAULT_PRESET})"),
    )
    parser.add_argument(
        "--override",
        default=None,
        metavar="YAML",
        help="a YAML file merged on top of --config (mappings merge, lists are replaced)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> MwwConfig:
    """Load the config named by the --config / --override options of `args`."""
    return load_full_config(args.config, getattr(args, "override", None))
