"""The verifier's checks of an ESPHome v2 manifest: required keys, their values and types, the model
file it names and the tensor arena it declares.

Every expected value comes from `mww.device.constants`; every failed check carries a one-line fix.
`read_manifest` reads the JSON file, raising VerifyError when it cannot be checked at all.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from mww.device import constants as C
from mww.device.pymicro import rules_disagree
from mww.device.tflite_graph import VerifyError
from mww.device.tflm_arena import declared_arena_size
from mww.export.check import Check

MANIFEST_KEYS = ("type", "wake_word", "model", "trained_languages", "version", "micro")
MANIFEST_MICRO_KEYS = (
    "probability_cutoff",
    "feature_step_size",
    "sliding_window_size",
    "tensor_arena_size",
    "minimum_esphome_version",
)


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest at `path` as a JSON object; VerifyError when it is missing, not JSON or not an object."""
    if not path.is_file():
        raise VerifyError(
            f"Manifest {path} does not exist or is not a file. Pass the v2 JSON manifest written next "
            "to the model, or leave out --manifest to verify the model alone."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerifyError(
            f"Manifest {path} is not valid JSON ({exc}). ESPHome needs a version 2 JSON manifest; "
            "export the model again or fix the file."
        ) from exc
    if not isinstance(data, dict):
        raise VerifyError(
            f"Manifest {path} holds a JSON {type(data).__name__}, not an object; an ESPHome v2 "
            "manifest is a JSON object with type, wake_word, model, version and micro keys."
        )
    return data


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _got(value: object) -> str:
    """`value` as the detail shows it: repr plus the JSON type when that is the problem."""
    kinds = {bool: "boolean", str: "string", list: "list", dict: "object", float: "number", int: "integer"}
    kind = kinds.get(type(value), "null" if value is None else type(value).__name__)
    return f"{value!r} ({kind})"


def _value_check(name: str, ok: bool, value: object, expected: str, fix: str) -> Check:
    """A manifest value check; a failed one also names the JSON type of the value it got."""
    shown = repr(value) if ok else _got(value)
    return Check(name, ok, f"{shown} (expected {expected})", fix)


def _keys_check(data: dict[str, Any], micro: dict[str, Any]) -> Check:
    """Every required v2 key, top level and under `micro`, is present."""
    missing = [key for key in MANIFEST_KEYS if key not in data]
    if "micro" in data and not isinstance(data["micro"], dict):
        missing.append("micro (not an object)")
    missing += [f"micro.{key}" for key in MANIFEST_MICRO_KEYS if key not in micro]
    return Check(
        "manifest.keys",
        not missing,
        f"missing: {', '.join(missing)}" if missing else "all required v2 keys present",
        f"add the missing keys to the manifest: {', '.join(missing)}",
    )


def _format_checks(data: dict[str, Any]) -> list[Check]:
    """`type` and `version` are the ones of a v2 micro_wake_word manifest."""
    return [
        Check(
            "manifest.type",
            data.get("type") == C.MANIFEST_TYPE,
            f"{data.get('type')!r} (expected {C.MANIFEST_TYPE!r})",
            f'set "type" to "{C.MANIFEST_TYPE}"',
        ),
        _value_check(
            "manifest.version",
            data.get("version") == C.MANIFEST_VERSION and not isinstance(data.get("version"), bool),
            data.get("version"),
            f"{C.MANIFEST_VERSION}",
            f'set "version" to {C.MANIFEST_VERSION} (an integer)',
        ),
    ]


def _text_checks(data: dict[str, Any]) -> list[Check]:
    """`wake_word` is a non-empty string and `trained_languages` a list of strings, where present."""
    checks = []
    if "wake_word" in data:
        word = data["wake_word"]
        word_ok = isinstance(word, str) and bool(word.strip())
        checks.append(
            Check(
                "manifest.wake_word",
                word_ok,
                f"{word!r}" if word_ok else f"{_got(word)} (expected a non-empty string)",
                'set "wake_word" to the phrase as a string, e.g. "Hey Computer"',
            )
        )
    if "trained_languages" in data:
        languages = data["trained_languages"]
        languages_ok = isinstance(languages, list) and all(isinstance(x, str) for x in languages)
        checks.append(
            Check(
                "manifest.trained_languages",
                languages_ok,
                f"{languages!r}" if languages_ok else f"{_got(languages)} (expected a list of strings)",
                'set "trained_languages" to a list of language codes, e.g. ["en"]',
            )
        )
    return checks


def _detection_checks(micro: dict[str, Any]) -> list[Check]:
    """The front end's step, and a cutoff and window the device's detector can use."""
    step = micro.get("feature_step_size")
    cutoff = micro.get("probability_cutoff")
    window = micro.get("sliding_window_size")
    return [
        _value_check(
            "manifest.feature_step_size",
            step == C.FEATURE_STEP_SIZE_MS and not isinstance(step, bool),
            step,
            f"{C.FEATURE_STEP_SIZE_MS} ms",
            f"set micro.feature_step_size to {C.FEATURE_STEP_SIZE_MS} (the front end's step in ms)",
        ),
        _value_check(
            "manifest.probability_cutoff",
            _is_number(cutoff) and 0 < cutoff <= 1,
            cutoff,
            "a number, 0 < cutoff <= 1",
            "set micro.probability_cutoff to a number in (0, 1], e.g. 0.97 (no quotes)",
        ),
        _value_check(
            "manifest.sliding_window_size",
            _is_int(window) and window >= 1,
            window,
            "an integer >= 1",
            "set micro.sliding_window_size to an integer >= 1, e.g. 5 (no quotes)",
        ),
    ]


def _same_file(named: Path, model_bytes: bytes | None) -> bool:
    if model_bytes is None:
        return True
    try:
        return named.stat().st_size == len(model_bytes) and named.read_bytes() == model_bytes
    except OSError:
        return False


def _model_check(
    data: dict[str, Any], model_name: str | None, manifest_dir: Path | None, model_bytes: bytes | None
) -> Check | None:
    """The manifest's `model` must name a file next to the manifest, and that file must be the model."""
    named = data.get("model")
    if not isinstance(named, str) or not named.strip():
        if "model" not in data:
            return None  # reported by manifest.keys
        return Check(
            "manifest.model",
            False,
            f"{_got(named)} (expected the .tflite file name)",
            'set "model" to the file name of the .tflite next to the manifest'
            + (f", e.g. {model_name!r}" if model_name else ""),
        )
    if manifest_dir is not None:
        path = manifest_dir / named
        if not path.is_file():
            return Check(
                "manifest.model",
                False,
                f"{named!r} does not exist next to the manifest (in {manifest_dir})"
                + (f"; the verified model is {model_name!r}" if model_name and model_name != named else ""),
                f"put {named} next to the manifest or fix the model field",
            )
    if model_name is None:
        return Check("manifest.model", True, f"{named!r}" + (" (exists)" if manifest_dir else ""))
    if named != model_name:
        return Check(
            "manifest.model",
            False,
            f"{named!r} (the verified model file is {model_name!r})",
            f'set "model" to {model_name!r}, or verify {named} instead',
        )
    if manifest_dir is not None and not _same_file(manifest_dir / named, model_bytes):
        return Check(
            "manifest.model",
            False,
            f"{named!r} next to the manifest is not the verified model (the contents differ)",
            f"copy the verified model next to the manifest as {named}, or verify that file instead",
        )
    return Check(
        "manifest.model",
        True,
        f"{named!r}" + (" exists next to the manifest" if manifest_dir is not None else ""),
    )


def _arena_check(micro: dict[str, Any], measured_arena: int | None) -> Check:
    """`tensor_arena_size` is a positive integer, and at least the measured arena when it was measured."""
    arena = micro.get("tensor_arena_size")
    if not (_is_int(arena) and arena > 0):
        wanted = (
            f"at least {declared_arena_size(measured_arena)} (measured + margin)"
            if measured_arena is not None
            else "a positive integer number of bytes (mww-export measures it)"
        )
        return Check(
            "manifest.tensor_arena_size",
            False,
            f"{_got(arena)} (expected a positive integer)",
            f"set micro.tensor_arena_size to {wanted}",
        )
    if measured_arena is None:
        return Check("manifest.tensor_arena_size", True, f"declares {arena} B (not measured)")
    margin = 100.0 * (arena - measured_arena) / measured_arena
    enough = arena >= measured_arena
    return Check(
        "manifest.tensor_arena_size",
        enough,
        f"declares {arena} B, measured {measured_arena} B: margin {margin:+.1f} %"
        + ("" if enough else " (too small: the device would fail to allocate)"),
        f"set micro.tensor_arena_size to at least {declared_arena_size(measured_arena)} (measured + margin)",
    )


def validate_manifest(
    data: dict[str, Any],
    model_name: str | None,
    measured_arena: int | None = None,
    manifest_dir: str | os.PathLike[str] | None = None,
    model_bytes: bytes | None = None,
) -> list[Check]:
    """Checks of an ESPHome v2 manifest: required keys, their values and types.

    `model_name` (the verified .tflite's file name) and the measured arena, when given, are
    compared with the manifest's `model` and `tensor_arena_size`. With `manifest_dir` (the folder
    holding the manifest) the file `model` names must exist there, as ESPHome loads it from there;
    with `model_bytes` too, it must be the verified model.
    """
    if not isinstance(data, dict):
        return [
            Check(
                "manifest.keys",
                False,
                f"the manifest is a JSON {type(data).__name__}, not an object",
                "write the manifest as a JSON object (mww-export writes one next to the model)",
            )
        ]
    micro = data.get("micro")
    micro = micro if isinstance(micro, dict) else {}
    checks = [_keys_check(data, micro), *_format_checks(data), *_text_checks(data), *_detection_checks(micro)]
    model_check = _model_check(
        data, model_name, Path(manifest_dir) if manifest_dir is not None else None, model_bytes
    )
    if model_check is not None and (model_name is not None or manifest_dir is not None):
        checks.append(model_check)
    checks.append(_arena_check(micro, measured_arena))
    return checks


def manifest_warnings(data: Any) -> list[str]:
    """What the device accepts but a user should know: a cutoff that the ESP32 and Home Assistant's
    pymicro-wakeword read differently (`mww.device.pymicro.rules_disagree`)."""
    micro = data.get("micro") if isinstance(data, dict) else None
    if not isinstance(micro, dict):
        return []
    cutoff, window = micro.get("probability_cutoff"), micro.get("sliding_window_size")
    if not (_is_number(cutoff) and 0 <= cutoff <= 1 and _is_int(window) and window >= 1):
        return []  # the checks above already report it
    reason = rules_disagree(float(cutoff), int(window))
    return [f"{reason} (the same manifest would mean two different things)"] if reason else []
