"""A tiny studio project: tone clips in the project's dataset/ folder, a small model in project.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mww.studio.project import Project, open_project
from tests.conftest import build_dataset
from tests.train.test_trainer import TINY_MODEL


def tiny_layer(steps: list[int], eval_every: int) -> dict:
    """project.yaml of a tiny project: fast_test with a small model on half-second clips."""
    return {
        "base": "fast_test",
        "hardware": {"clip_duration_ms": 500},
        "model": dict(TINY_MODEL),
        "augmentation": {"enabled": False, "augmentation_duration_s": 1.5},
        "training": {
            "training_steps": steps,
            "learning_rates": [0.01, 0.001][: len(steps)],
            "batch_size": 16,
            "eval_step_interval": eval_every,
        },
        "performance": {"num_workers": 1},
    }


def make_project(root: Path, steps: list[int] | None = None, eval_every: int = 20) -> Project:
    """A project in `root` with a tone dataset and a tiny config."""
    build_dataset(root / "dataset", speakers=6, per_speaker=4, negatives=24)
    (root / "project.yaml").write_text(yaml.safe_dump(tiny_layer(steps or [60, 20], eval_every)))
    return open_project(root)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A tiny project, with the working directory in it (as mww-studio runs)."""
    monkeypatch.chdir(tmp_path)
    return make_project(tmp_path)
