"""A studio project: one folder laid out as the commands lay it out when run there, and its config.

The project folder holds `project.yaml` (a config file like any other: `base: <preset>` and the keys
changed), the dataset in `dataset/`, and what the commands write by default: `data/processed/`,
`checkpoints/`, `logs/` and `models/exported/`. The studio adds `evaluation/<split>/` (what
`mww-evaluate --output-dir` writes, and its `--json` report as `evaluation.json`), `tryit/` (audio
heard on the Try it page) and `.studio/` (the training process's state, uploads in transit, the chosen
cutoff). The server works inside the project folder, so the config's relative paths resolve as they
do for a command run there.

The Train page edits a few keys of `project.yaml` (`SETTINGS`); every other key in the file is kept, and
a change is written only once the whole config validates.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mww.atomic import atomic_write_text
from mww.config.load import available_presets, config_from_dict, deep_merge, load_full_config
from mww.config.schema import MwwConfig
from mww.errors import MwwError

CONFIG_NAME = "project.yaml"
STATE_DIR = ".studio"
NEW_PROJECT_PRESET = "standard"
# The keys the Train page edits: name -> (section, key) in the config.
SETTINGS = {
    "wake_word": ("export", "wake_word"),
    "training_steps": ("training", "training_steps"),
    "batch_size": ("training", "batch_size"),
    "augmentation": ("augmentation", "enabled"),
}


class StudioError(MwwError):
    """An action of the studio that cannot run as asked; the message is one paragraph."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass(frozen=True)
class Project:
    """A project folder (absolute)."""

    root: Path

    @property
    def config_path(self) -> Path:
        """The project's config file, `project.yaml`."""
        return self.root / CONFIG_NAME

    @property
    def state_dir(self) -> Path:
        """`.studio/`: the studio's own state (created on first use)."""
        folder = self.root / STATE_DIR
        folder.mkdir(exist_ok=True)
        return folder

    def config(self) -> MwwConfig:
        """The project's config (`project.yaml`, or the new-project preset while there is none); ConfigError
        with the file's name when it does not load."""
        return load_full_config(self.config_path if self.config_path.is_file() else NEW_PROJECT_PRESET)


def open_project(folder: str | os.PathLike[str]) -> Project:
    """The project in `folder`, created when missing; StudioError when it cannot be a project."""
    root = Path(folder).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise StudioError(
            f"The project folder {root} is a file, not a folder. Pass a folder with --project (it is "
            "created when missing)."
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / STATE_DIR
        probe.mkdir(exist_ok=True)
        if not os.access(probe, os.W_OK):
            raise PermissionError(13, "not writable")
    except OSError as exc:
        raise StudioError(
            f"The project folder {root} cannot be used ({exc.strerror or exc}): the studio writes its "
            "config, dataset and models there. Pass a folder you may write to with --project."
        ) from exc
    return Project(root)


def read_layer(project: Project) -> dict[str, Any]:
    """The raw content of `project.yaml` (`{"base": NEW_PROJECT_PRESET}` while there is none)."""
    if not project.config_path.is_file():
        return {"base": NEW_PROJECT_PRESET}
    try:
        data = yaml.safe_load(project.config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise StudioError(
            f"The project config {project.config_path} could not be read as YAML ({exc}). Fix the file "
            "(or delete it to start from the standard preset)."
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StudioError(
            f"The project config {project.config_path} must be a mapping of sections (like 'training:'), "
            "but it is not. Fix the file, or delete it to start from the standard preset."
        )
    return data


def write_layer(project: Project, layer: Mapping[str, Any]) -> MwwConfig:
    """Write `layer` as `project.yaml` once the config it makes validates; returns that config."""
    config = config_from_dict(copy.deepcopy(dict(layer)), source=str(project.config_path))
    text = (
        "# mww project config, edited by mww-studio (every key is kept; comments are not).\n"
        + yaml.safe_dump(dict(layer), sort_keys=False, allow_unicode=True)
    )
    atomic_write_text(project.config_path, text)
    return config


def merge_into_config(project: Project, changes: Mapping[str, Any]) -> MwwConfig:
    """Merge `changes` (sections of keys) into `project.yaml`, as an --override would; returns the config."""
    return write_layer(project, deep_merge(read_layer(project), changes))


def settings(project: Project) -> dict[str, Any]:
    """The Train page's values: the preset, the few keys as the config has them, the presets offered."""
    layer = read_layer(project)
    config = project.config()
    values = {name: getattr(getattr(config, section), key) for name, (section, key) in SETTINGS.items()}
    return {
        "preset": layer.get("base"),
        **values,
        "presets": available_presets(),
        "config_file": str(project.config_path),
    }


def _steps(text: object) -> list[int]:
    """'2000, 1000' -> [2000, 1000]; StudioError for anything but positive whole numbers."""
    parts = [p for p in str(text).replace(",", " ").split() if p]
    try:
        steps = [int(p) for p in parts]
    except ValueError:
        steps = []
    if not steps or any(s < 1 for s in steps):
        raise StudioError(
            f"The training steps {str(text)!r} are not whole numbers of at least 1: give one number per "
            "phase, separated by commas, for example '2000, 1000'."
        )
    return steps


def _batch(text: object) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise StudioError(f"The batch size {str(text)!r} is not a whole number of at least 1 (e.g. 32).")
    return value


def save_settings(project: Project, values: Mapping[str, Any]) -> dict[str, Any]:
    """Set the preset and the few keys of the Train page in `project.yaml`; ConfigError (naming the file)
    when the result does not validate, and then nothing is written."""
    layer = read_layer(project)
    preset = values.get("preset")
    if preset:
        if preset not in available_presets():
            raise StudioError(
                f"Unknown preset {preset!r}. Pick one of {', '.join(available_presets())}, or edit "
                f"'base:' in {project.config_path} by hand."
            )
        layer["base"] = preset
    parsed = {
        "wake_word": str(values.get("wake_word", "")).strip(),
        "training_steps": _steps(values.get("training_steps", "")),
        "batch_size": _batch(values.get("batch_size", "")),
        "augmentation": bool(values.get("augmentation")),
    }
    changes: dict[str, dict[str, Any]] = {}
    for name, (section, key) in SETTINGS.items():
        changes.setdefault(section, {})[key] = parsed[name]
    write_layer(project, deep_merge(layer, changes))
    return settings(project)
