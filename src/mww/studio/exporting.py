"""The Export page: `mww-export` with the cutoff and window chosen, `mww-verify` on what it wrote, and
the files to download.

The chosen cutoff and window are written as a calibration file (`.studio/export_calibration.json`) and
passed to `mww.export.convert.convert_model_saved` as `mww-export --calibration` passes one, so the
same rules apply: a cutoff the two runtimes would read differently is replaced by the config's, with
the reason shown. The verification is `mww.export.verify.verify_model`, the engine of `mww-verify`,
on the published model and manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mww.atomic import atomic_write_json
from mww.config.schema import MwwConfig
from mww.studio.evaluation import load_choice
from mww.studio.project import CONFIG_NAME, Project, StudioError
from mww.train.checkpoints import BEST_NAME, CALIBRATION_FILE, WEIGHTS_SUFFIX

EXPORT_CALIBRATION = "export_calibration.json"
ESPHOME_YAML = "esphome.yaml"
DOWNLOADABLE = (".tflite", ".json", ".yaml")


def default_model_name(config: MwwConfig) -> str:
    """The wake word as a file name: "Hey Computer" -> "hey_computer"."""
    name = "_".join("".join(c if c.isalnum() else " " for c in config.export.wake_word.lower()).split())
    return name or "wake_word"


def export_defaults(project: Project, config: MwwConfig) -> dict[str, Any]:
    """What the page starts from: the cutoff and window picked on the Evaluate page, else the best
    checkpoint's calibration, else the config's; the model name; the files already exported."""
    cutoff, window = config.export.probability_cutoff, config.export.sliding_window_size
    source = "the config"
    calibration = Path(config.paths.checkpoint_dir) / CALIBRATION_FILE
    choice = load_choice(project)
    if choice:
        cutoff, window, source = (
            choice["probability_cutoff"],
            choice["sliding_window_size"],
            "the Evaluate page",
        )
    elif calibration.is_file():
        try:
            data = json.loads(calibration.read_text(encoding="utf-8"))
            cutoff, window = float(data["probability_cutoff"]), int(data["sliding_window_size"])
            source = str(calibration)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return {
        "probability_cutoff": cutoff,
        "sliding_window_size": window,
        "source": source,
        "model_name": default_model_name(config),
        **exported_files(config),
    }


def exported_files(config: MwwConfig) -> dict[str, Any]:
    """The downloadable files in the export folder, and the ESPHome YAML block if there is one."""
    folder = Path(config.paths.export_dir)
    files = (
        sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in DOWNLOADABLE)
        if folder.is_dir()
        else []
    )
    yaml_path = folder / ESPHOME_YAML
    return {
        "export_dir": str(folder),
        "files": files,
        "yaml": yaml_path.read_text(encoding="utf-8") if yaml_path.is_file() else None,
    }


def download_path(config: MwwConfig, name: str) -> Path:
    """A file of the export folder that may be downloaded; StudioError for any other name."""
    folder = Path(config.paths.export_dir)
    path = folder / name
    if Path(name).name != name or path.suffix not in DOWNLOADABLE or not path.is_file():
        raise StudioError(
            f"{name!r} is not an exported file in {folder}: export a model first, then download its "
            ".tflite, .json or esphome.yaml."
        )
    return path


def _checkpoint(config: MwwConfig, name: str) -> Path:
    folder = Path(config.paths.checkpoint_dir)
    if not name or Path(name).name != name or not name.endswith(WEIGHTS_SUFFIX):
        raise StudioError(
            f"{name!r} is not a checkpoint of this project: pick a {WEIGHTS_SUFFIX} file of {folder} "
            f"(the best one is {BEST_NAME})."
        )
    return folder / name


def export_model(
    project: Project, config: MwwConfig, checkpoint: str, model_name: str, cutoff: object, window: object
) -> dict[str, Any]:
    """Export `checkpoint` with this cutoff and window, verify it; everything the page shows."""
    from mww.export.convert import convert_model_saved
    from mww.export.verify import verify_model
    from mww.studio.evaluation import save_choice

    chosen = save_choice(project, cutoff, window)
    calibration = atomic_write_json(
        project.state_dir / EXPORT_CALIBRATION, {**chosen, "source": "mww-studio (chosen on the Export page)"}
    )
    path = _checkpoint(config, checkpoint)
    lines: list[str] = []
    result = convert_model_saved(
        path,
        config.paths.export_dir,
        model_name,
        config,
        quantize=config.export.quantize,
        calibration_path=calibration,
        log=lines.append,
    )
    verification = verify_model(result.tflite_path, result.manifest_path)
    warnings = [*([result.calibration.warning] if result.calibration.warning else []), *verification.warnings]
    command = (
        f"mww-export --checkpoint {path} --config {CONFIG_NAME} --calibration {calibration} --model-name "
        f"{model_name}; mww-verify {result.tflite_path}"
    )
    return {
        "command": command,
        "lines": lines,
        "ok": verification.ok,
        "checks": [check.to_dict() for check in verification.checks],
        "warnings": warnings,
        "manifest": result.manifest,
        **exported_files(config),
    }
