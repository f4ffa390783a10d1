"""The `micro_wake_word:` block a user pastes into an ESPHome device's YAML for an exported model.

ESPHome's `micro_wake_word` component takes a list of `models`; each `model` is a model name from
ESPHome's collection, the full path of a local manifest JSON, an http(s) URL of a manifest (ESPHome
fetches the .tflite named in it from the same folder), or a `github://` shorthand. A model may
override the manifest's `probability_cutoff` and `sliding_window_size`. The snippet written here
uses the local-path form with the manifest's full path, shows the URL forms as commented
alternatives, and states the cutoff and window the manifest got (from calibration when there was
one) explicitly, so the values the device runs are visible where the user tunes them.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mww.atomic import atomic_write_text
from mww.device.detection import cutoff_to_uint8

ESPHOME_YAML = "esphome.yaml"
_PLAIN_SCALAR = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./+-]*")


def _comment(text: object) -> str:
    """Text safe inside a one-line YAML comment."""
    return " ".join(str(text).split())


def _scalar(text: str) -> str:
    """`text` as a YAML string: plain when that is unambiguous, else double-quoted (JSON escapes)."""
    return text if _PLAIN_SCALAR.fullmatch(text) else json.dumps(text)


def esphome_id(name: str) -> str:
    """An ESPHome ID for a model file name: letters, digits and '_', not starting with a digit."""
    cleaned = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_").lower() or "wake_word"
    if cleaned[0].isdigit():
        cleaned = f"ww_{cleaned}"
    return f"{cleaned}_model"


def esphome_yaml(manifest: Mapping[str, Any], manifest_path: str | os.PathLike[str]) -> str:
    """The `micro_wake_word:` snippet for the model described by `manifest`, saved at `manifest_path`.

    `manifest_path` is where the manifest will be for ESPHome (made absolute); the model file is the
    one the manifest names, next to it. The cutoff and window are the manifest's.
    """
    path = Path(os.path.abspath(manifest_path))
    micro = manifest.get("micro")
    model_file = manifest.get("model")
    if not isinstance(micro, Mapping) or not isinstance(model_file, str):
        raise ValueError(
            f"The manifest {path} is not a micro_wake_word v2 manifest (it needs a 'model' file name and a "
            "'micro' section), so no ESPHome snippet can be written for it. Export the model again."
        )
    cutoff = float(micro["probability_cutoff"])
    window = int(micro["sliding_window_size"])
    wake_word = _comment(manifest.get("wake_word", path.stem))
    version = _comment(micro.get("minimum_esphome_version", ""))
    c = cutoff_to_uint8(cutoff)
    lines = [
        f'# ESPHome micro_wake_word block for "{wake_word}", written by mww-export: paste it into your',
        "# device's YAML (merge it with an existing micro_wake_word: block).",
        f"# Needs ESPHome {version} or newer and an ESP32 with a 16 kHz microphone." if version else "",
        "micro_wake_word:",
        "  models:",
        f"    - model: {_scalar(str(path))}",
        f"      # The manifest's full path on this computer; {model_file} must stay next to it. If ESPHome",
        f"      # runs elsewhere (e.g. Home Assistant's add-on), copy {path.name} and {model_file} there",
        f"      # and give that path instead, e.g. /config/esphome/models/{path.name}. Or host both files",
        "      # on a web server (ESPHome fetches the .tflite named in the manifest from the same folder)",
        "      # and give the manifest's URL, or a GitHub shorthand:",
        f"      # model: https://example.com/wake_words/{path.name}",
        f"      # model: github://your-name/your-repo/{path.name}@main",
        f"      id: {esphome_id(path.stem)}",
        "      # The manifest's detection settings, repeated here so they are easy to tune: the device",
        f"      # fires when the mean of the last {window} outputs is above the cutoff (which it",
        f"      # truncates to {c}/255). Raise the cutoff for fewer false wakes, lower it for fewer misses.",
        f"      probability_cutoff: {cutoff!r}",
        f"      sliding_window_size: {window}",
        "  # microphone: my_microphone   # your microphone's id, if the device has more than one",
        "  # on_wake_word_detected:",
        "  #   - logger.log: wake word detected",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def write_esphome_yaml(
    manifest_path: str | os.PathLike[str], published_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Write `esphome.yaml` next to the manifest at `manifest_path` (atomically); return its path.

    `published_dir` is the folder the manifest will finally be in (default: where it is now), for the
    path the snippet names. The file gets the manifest's permissions. OSError when reading or writing
    fails; ValueError when the manifest is not a micro_wake_word manifest.
    """
    manifest_path = Path(manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"The manifest {manifest_path} is not readable JSON ({exc}), so no ESPHome snippet can be "
            "written for it. Export the model again."
        ) from exc
    if not isinstance(manifest, dict):
        raise ValueError(f"The manifest {manifest_path} does not hold a JSON object. Export the model again.")
    final = Path(published_dir if published_dir is not None else manifest_path.parent) / manifest_path.name
    written = atomic_write_text(manifest_path.parent / ESPHOME_YAML, esphome_yaml(manifest, final))
    # The atomic write's temp file is private (0600); the snippet is as readable as the manifest.
    os.chmod(written, stat.S_IMODE(manifest_path.stat().st_mode))
    return written


__all__ = ["ESPHOME_YAML", "esphome_id", "esphome_yaml", "write_esphome_yaml"]
