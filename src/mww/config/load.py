"""Loading and merging the mww configuration: presets, user YAML files, `base:` chains and ${VAR}.

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

The merged layers are checked by `mww.config.validate`; every problem raises its `ConfigError`, whose
message is one paragraph naming the dotted key, the value given, what is allowed, the file responsible and
what to do. `MwwConfig.source_of(key)` tells which file set a key.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from mww.atomic import atomic_write_text
from mww.config.schema import SECTION_TYPES, MwwConfig
from mww.config.validate import (
    ConfigError,
    EnvString,
    absolute_path,
    check_structure,
    kind_of,
    show_value,
    validate_config,
)

__all__ = [
    "DEFAULT_PRESET",
    "add_config_arguments",
    "available_presets",
    "config_from_args",
    "config_from_dict",
    "deep_merge",
    "dump_config",
    "load_full_config",
    "load_preset",
]

DEFAULT_PRESET = "standard"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class _Layer:
    """One YAML layer: its checked data, the file it came from and the folder its `base:` starts from."""

    data: dict[str, Any]
    source: str
    folder: Path


# --------------------------------------------------------------------------- presets


def _presets_root() -> Traversable:
    try:
        return resources.files("mww.presets")
    except ModuleNotFoundError:
        # A source checkout run with PYTHONPATH=src: the presets are in the top-level config/ folder.
        return Path(__file__).resolve().parents[3] / "config"


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
            f"but it is {kind_of(data)}: {show_value(data)}. Write the file as 'section:' lines with "
            "indented 'key: value' lines under them."
        )
    data = check_structure(data, source, allow_base=allow_base)
    return _Layer(_substitute(data, "", source), source, folder)


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
            f"'{key}' in {source} is {show_value(text)}, which contains a malformed environment reference. "
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
    whole = EnvString(result)
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
            f"{where} is {show_value(ref)}, but it must be a preset name ({', '.join(available_presets())}) "
            "or the path to a YAML file. Give one of those."
        )
    path = absolute_path(ref, folder)
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
    if isinstance(base, EnvString):
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
            f"The configuration from {source} must be a mapping of sections, but it is {kind_of(data)}. "
            "Pass a dict like {'training': {'batch_size': 32}}."
        )
    checked = check_structure(dict(data), source, allow_base=True)
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
