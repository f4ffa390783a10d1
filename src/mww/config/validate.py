"""What a valid mww configuration is, and `ConfigError`, the one-paragraph explanation of what is not.

`check_structure` refuses unknown sections and keys in the raw data of one YAML layer (suggesting the
closest valid key). `validate_config` then walks the dataclasses of `mww.config.schema`: it converts
every value to its field's type hint (resolving paths against the current directory), enforces the
rules each field declares in its metadata (bounds, choices, the device constants fixed by ESPHome,
relations between fields, the model block strings) and refuses architectures the device cannot run.
Messages name the dotted key, the value given, what is allowed, the file that set it and what to do.
"""

from __future__ import annotations

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
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from mww.config.schema import BLOCK_PARSERS, SECTION_TYPES, ModelConfig, MwwConfig
from mww.errors import MwwError

__all__ = [
    "DEFAULTS_SOURCE",
    "ConfigError",
    "EnvString",
    "absolute_path",
    "check_structure",
    "kind_of",
    "show_value",
    "validate_config",
]

DEFAULTS_SOURCE = "the built-in defaults"
_CODE_SOURCE = "the MwwConfig object built in code"

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
        "lowest until it is at or below 'training.selection_target' (null: "
        "'training.target_minimization')."
    ),
    "training.maximization_metric": (
        " These are the validation metrics where higher is better; checkpoint selection keeps the "
        "highest among the checkpoints within that target."
    ),
}

_BLOCK_FORMATS = {
    "ints": "comma-separated whole numbers, one per block, like '60,60,60,60'",
    "kernels": "comma-separated bracketed lists of kernel sizes, one list per block, like '[5],[9],[13],[21]'"
    " or '[3,5],[9]'",
}


# --------------------------------------------------------------------------- the error and its words


class ConfigError(MwwError):
    """A configuration problem, explained in one paragraph."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))


class EnvString(str):
    """A string that came entirely from one ${VAR} substitution; `parsed` is that text read as YAML."""

    parsed: Any


def kind_of(value: Any) -> str:
    """What `value` is, in the words of a YAML file ("a whole number", "a list", ...)."""
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


def show_value(value: Any) -> str:
    """`value` as it would be written (JSON), cut to 80 characters."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------- sections and keys


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


def check_structure(data: dict[Any, Any], source: str, *, allow_base: bool) -> dict[str, Any]:
    """The sections of one layer's raw data (`base` kept where allowed); unknown sections or keys refused."""
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
                f"Section '{name}' in {source} must be a mapping of keys, but it is {kind_of(body)}: "
                f"{show_value(body)}. Write it as '{name}:' followed by indented 'key: value' lines."
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


# --------------------------------------------------------------------------- values


def absolute_path(path: str | os.PathLike[str], folder: Path | None = None) -> Path:
    """`path` made absolute: `~` expanded, a relative path taken from `folder` (default: the current one)."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = (folder or Path.cwd()) / candidate
    return Path(os.path.abspath(candidate))


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
                f"{kind_of(section)}. Build the config with load_full_config() or config_from_dict()."
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
            f"'{key}' is {show_value(model.architecture)} in {source_of(key)}, but {reason}. Use 'mixednet' "
            "(the default, a streaming depthwise-separable CNN) or 'cnn' (or 'dnn') instead."
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
    if isinstance(value, EnvString) and hint not in (str, Path):
        value = value.parsed
    origin = typing.get_origin(hint)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise _type_error(key, value, hint, source)
        items = [_convert(item, item_hint, f"{key}[{i}]", source, {}) for i, item in enumerate(value)]
        if rules.get("path"):
            items = [str(absolute_path(item)) if item.strip() else item for item in items]
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
                f"Invalid value for '{key}' in {source}: got {show_value(value)}, but it must be a finite "
                f"number. Set '{key}' to an ordinary number."
            )
        return float(value)
    if hint is str and isinstance(value, str):
        return str(value)
    if hint is Path and isinstance(value, str | os.PathLike) and os.fspath(value).strip():
        return absolute_path(value)
    if dataclasses.is_dataclass(hint):
        return _convert_entry(value, hint, key, source)
    if hint not in (bool, int, float, str, Path):
        raise TypeError(f"config field {key} has an unsupported type hint {hint!r}")
    raise _type_error(key, value, hint, source)


def _convert_entry(value: Any, cls: Any, key: str, source: str) -> Any:
    """One mapping in a list of mappings (an entry of 'data.feature_sets'), as its dataclass: unknown
    keys refused, keys without a default required, every value converted and checked by its field."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {item.name: getattr(value, item.name) for item in dataclasses.fields(value)}
    names = [item.name for item in dataclasses.fields(cls)]
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"Wrong type for '{key}' in {source}: got {show_value(value)} ({kind_of(value)}), but it must be "
            f"a mapping with the keys {', '.join(names)}. Write it as an indented entry starting with "
            f"'- {names[0]}: ...'."
        )
    for name in value:
        if name not in names:
            close = get_close_matches(str(name), names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"Unknown key '{name}' in '{key}' in {source}.{hint} The keys of each entry are: "
                f"{', '.join(names)}. Rename or remove '{name}'."
            )
    hints, converted = _hints(cls), {}
    for item in dataclasses.fields(cls):
        if item.name not in value:
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                raise ConfigError(
                    f"'{key}' in {source} has no '{item.name}', which every entry needs. Add "
                    f"'{item.name}: ...' to it."
                )
            continue
        sub = f"{key}.{item.name}"
        converted[item.name] = _convert(value[item.name], hints[item.name], sub, source, item.metadata)
        _check_rules(converted[item.name], item.metadata, sub, source)
    return cls(**converted)


def _describe(hint: Any) -> str:
    if dataclasses.is_dataclass(hint):
        return "mappings with the keys " + ", ".join(item.name for item in dataclasses.fields(hint))
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
        f"Wrong type for '{key}' in {source}: got {show_value(value)} ({kind_of(value)}), but it must be "
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
                f"'{key}' in {source} is {show_value(value)}, but it needs at least {rules['min_len']} "
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
            f"'{key}' is set to {show_value(value)} in {source}, but it can only be {show_value(fixed)}: "
            f"{reason}. Remove '{key}' from {source}; the device value from mww.device.constants is always "
            "used."
        )
    if "choices" in rules and value not in rules["choices"]:
        choices = ", ".join(str(choice) for choice in rules["choices"])
        close = get_close_matches(str(value), [str(c) for c in rules["choices"]], n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"Invalid choice for '{shown_key}' in {source}: got {show_value(value)}, but it must be one of: "
            f"{choices}.{_CHOICE_NOTES.get(key, '')}{hint} Set '{shown_key}' to one of these."
        )
    if isinstance(value, numbers.Real) and not _in_bounds(value, rules):
        raise ConfigError(
            f"Out of range: '{shown_key}' in {source} is {show_value(value)}, but it must be "
            f"{_bounds_text(rules)}. Set '{shown_key}' in {source} to a value in that range."
        )
    if rules.get("not_blank") and isinstance(value, str) and not value.strip():
        raise ConfigError(
            f"'{shown_key}' in {source} is {show_value(value)}, but it must be a non-empty string. "
            f"Give '{shown_key}' a value."
        )
    if "pattern" in rules and isinstance(value, str) and not re.fullmatch(rules["pattern"], value):
        raise ConfigError(
            f"Invalid value for '{shown_key}' in {source}: got {show_value(value)}, but it must be "
            f"{rules.get('pattern_hint', 'of the form ' + rules['pattern'])}. Correct '{shown_key}'."
        )


def _fields_with(section: Any, rule: str) -> Iterator[tuple[str, Any, Any]]:
    for item in dataclasses.fields(section):
        if rule in item.metadata:
            yield item.name, getattr(section, item.name), item.metadata[rule]


def _check_relations(section: Any, name: str, source_of: Any) -> None:
    def show(field_name: str) -> str:
        key = f"{name}.{field_name}"
        return f"'{key}' ({show_value(getattr(section, field_name))}, from {source_of(key)})"

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
                f"({show_value(value)}), but there are {phases} training phase(s): 'training.training_steps' "
                f"is {show_value(section.training_steps)} (from {source_of('training.training_steps')}). "
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
                f"Bad model block string: '{key}' in {source_of(key)} is {show_value(text)}, but it must be "
                f"{_BLOCK_FORMATS[rules['blocks']]}. Fix '{key}' (quote it in YAML)."
            ) from None
        flat = [v for entry in parsed for v in (entry if isinstance(entry, list) else [entry])]
        low, choices = rules.get("block_min"), rules.get("block_choices")
        if any((low is not None and v < low) or (choices is not None and v not in choices) for v in flat):
            allowed = f">= {low}" if low is not None else "one of " + ", ".join(str(c) for c in choices)
            raise ConfigError(
                f"Bad model block string: '{key}' in {source_of(key)} is {show_value(text)}, but every entry "
                f"must be {allowed}. Fix '{key}'."
            )
        counts[key] = len(parsed)
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"'{key}' has {n} (from {source_of(key)})" for key, n in counts.items())
        raise ConfigError(
            f"The model block strings describe different numbers of blocks: {listing}. All of them must "
            "describe the same number of blocks; give them the same number of comma-separated entries."
        )
