"""The Evaluate page: `mww-evaluate` on a split, its report kept as JSON, the cutoff and window picked
from it, and the loudest false activations to hear.

An evaluation is `mww.evaluate.run.evaluate_model`, the engine of `mww-evaluate`, with
`--output-dir evaluation/<split>` (calibration.json, det_curve.png, score_histogram.png); its report
is kept beside them as `evaluation.json`, the object `mww-evaluate --json` prints. The page draws the
DET curve, the score histogram and the picker from that object alone: the sweep holds recall and FA/h
at every cutoff and window under the ESP32's detector. The cutoff and window picked there go to
`.studio/choice.json`, which the Export page starts from.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from mww.atomic import atomic_write_json, atomic_write_text
from mww.config.schema import MwwConfig
from mww.data.ingest import kind_dirs
from mww.device.audio import AUDIO_EXTENSIONS, load_audio
from mww.device.constants import SAMPLE_RATE_HZ
from mww.studio.project import Project, StudioError
from mww.train.checkpoints import BEST_NAME, WEIGHTS_SUFFIX

EVALUATION_DIR = "evaluation"
REPORT_NAME = "evaluation.json"
CHOICE_NAME = "choice.json"
SPLITS = ("val", "test", "train")
SNIPPET_BEFORE_S = 2.0  # a false activation is heard from this long before it...
SNIPPET_AFTER_S = 1.0  # ...to this long after


def finite(value: Any) -> Any:
    """`value` with every infinite or NaN number replaced by None (JSON for a browser)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def model_choices(config: MwwConfig) -> dict[str, list[str]]:
    """The checkpoints (best first) and exported models a page may pick."""
    ckpt_dir, export_dir = Path(config.paths.checkpoint_dir), Path(config.paths.export_dir)
    names = sorted(p.name for p in ckpt_dir.glob(f"*{WEIGHTS_SUFFIX}")) if ckpt_dir.is_dir() else []
    step = lambda name: int("".join(c for c in name if c.isdigit()) or 0)  # noqa: E731
    names.sort(key=lambda n: (n != BEST_NAME, not n.startswith("checkpoint_step_"), step(n)))
    exported = sorted(p.name for p in export_dir.glob("*.tflite")) if export_dir.is_dir() else []
    return {"checkpoints": names, "exported": exported}


def model_path(config: MwwConfig, choice: str) -> tuple[str, Path]:
    """("checkpoint" or "tflite", path) of a model named `checkpoint:NAME` or `tflite:NAME`."""
    kind, _, name = str(choice).partition(":")
    folders = {"checkpoint": Path(config.paths.checkpoint_dir), "tflite": Path(config.paths.export_dir)}
    if kind not in folders or not name or Path(name).name != name:
        raise StudioError(
            f"{choice!r} is not a model of this project: pick a checkpoint (checkpoint:NAME) or an exported "
            "model (tflite:NAME.tflite) from the list."
        )
    return kind, folders[kind] / name


def split_folder(project: Project, split: str) -> Path:
    """`evaluation/<split>/` of the project; StudioError for an unknown split."""
    if split not in SPLITS:
        raise StudioError(f"{split!r} is not a split: evaluate on one of {', '.join(SPLITS)}.")
    return project.root / EVALUATION_DIR / split


def run_evaluation(project: Project, config: MwwConfig, model: str, split: str) -> dict[str, Any]:
    """`mww-evaluate --checkpoint|--tflite MODEL --split SPLIT --output-dir evaluation/SPLIT`; keeps
    the report as evaluation.json and returns it (infinite numbers as None)."""
    from mww.evaluate.run import evaluate_model

    folder = split_folder(project, split)
    kind, path = model_path(config, model)
    result = evaluate_model(
        config,
        checkpoint=path if kind == "checkpoint" else None,
        tflite=path if kind == "tflite" else None,
        split=split,
        output_dir=folder,
    )
    report = result.to_dict()
    atomic_write_text(folder / REPORT_NAME, json.dumps(report) + "\n")
    return finite(report)


def load_evaluation(project: Project, split: str) -> dict[str, Any] | None:
    """The last evaluation of `split` (evaluation.json), or None."""
    path = split_folder(project, split) / REPORT_NAME
    if not path.is_file():
        return None
    try:
        return finite(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise StudioError(
            f"The evaluation report {path} could not be read ({exc}). Run the evaluation again (it is "
            "rewritten) or delete the file."
        ) from exc


def save_choice(project: Project, cutoff: object, window: object) -> dict[str, Any]:
    """The cutoff and window picked on the Evaluate page, for the Export page."""
    try:
        value, size = float(str(cutoff)), int(str(window))
    except ValueError:
        value, size = -1.0, 0
    if not 0.0 < value < 1.0 or size < 1:
        raise StudioError(
            f"The cutoff {cutoff!r} and window {window!r} cannot be used: the cutoff is a probability "
            "between 0 and 1 (exclusive) and the window a whole number of at least 1."
        )
    choice = {"probability_cutoff": value, "sliding_window_size": size}
    atomic_write_json(project.state_dir / CHOICE_NAME, choice)
    return choice


def load_choice(project: Project) -> dict[str, Any] | None:
    """The last cutoff and window picked, or None."""
    try:
        return json.loads((project.state_dir / CHOICE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def snippet_wav(config: MwwConfig, file: str, time_s: object) -> bytes:
    """A WAV of the audio around `time_s` in a dataset file: what a false activation heard."""
    path = Path(file).resolve()
    roots = [d.resolve() for d in kind_dirs(config.paths).values()]
    if not any(path.is_relative_to(r) for r in roots) or path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise StudioError(f"{file} is not an audio file of this project's dataset, so it is not played.")
    try:
        at = float(str(time_s))
    except ValueError:
        raise StudioError(f"{time_s!r} is not a time in seconds.") from None
    samples = load_audio(path)
    start = max(0, round((at - SNIPPET_BEFORE_S) * SAMPLE_RATE_HZ))
    end = min(samples.size, round((at + SNIPPET_AFTER_S) * SAMPLE_RATE_HZ))
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(samples[start:end]), SAMPLE_RATE_HZ, subtype="PCM_16", format="WAV")
    return buffer.getvalue()
