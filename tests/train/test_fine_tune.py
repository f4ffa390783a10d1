"""Starting a run from a trained checkpoint (mww-train --init-from) and the one fine-tuning phase."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mww.config.load import dump_config, load_preset
from mww.model.builder import build_model
from mww.train.checkpoints import BEST_NAME, CheckpointError, sidecar_path
from mww.train.fine_tune import one_phase, per_phase_fields
from mww.train.trainer import Trainer
from tests.conftest import build_dataset
from tests.train.test_trainer import run, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny dataset and a model trained on it (50 steps); the checkpoint copied out of its run folder."""
    root = tmp_path_factory.mktemp("fine_tune")
    build_dataset(root / "data", speakers=6, per_speaker=4, negatives=24)
    cfg = tiny_config(root / "data", root / "first")
    result, _ = run(cfg)
    keep = root / "kept"
    keep.mkdir()
    for path in (result.best_checkpoint, sidecar_path(result.best_checkpoint)):
        shutil.copy(path, keep / path.name)
    return root / "data", keep / BEST_NAME


def run_from(cfg, checkpoint: Path):
    out = io.StringIO()
    return Trainer(cfg, progress=False, out=out, init_from=checkpoint).train(), out.getvalue()


def _weights(cfg, path: Path) -> list[np.ndarray]:
    """The trainable weights (BatchNorm's moving statistics follow the data at any learning rate)."""
    model = build_model(cfg.model, (Trainer(cfg, progress=False).input_frames, 40))
    model.load_weights(path)
    return [np.asarray(w) for w in model.trainable_weights]


def _largest_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


def test_a_run_starts_from_the_checkpoint_weights(trained, tmp_path):
    data, checkpoint = trained
    # a learning rate too small to move anything: what the run saves is what it started from
    cfg = one_phase(tiny_config(data, tmp_path, ema_decay=0.0), steps=10, learning_rate=1e-12)
    out = tmp_path / "checkpoints" / "checkpoint_step_10.weights.h5"
    result, log = run_from(cfg, checkpoint)
    assert f"starting from {checkpoint}" in log and result.last_step == 10
    kept = _largest_difference(_weights(cfg, out), _weights(cfg, checkpoint))
    scratch_cfg = tiny_config(data, tmp_path / "scratch", ema_decay=0.0, training_steps=[5, 5])
    run(scratch_cfg)
    scratch = _weights(scratch_cfg, tmp_path / "scratch" / "checkpoints" / "checkpoint_step_10.weights.h5")
    apart = _largest_difference(scratch, _weights(cfg, checkpoint))
    print(f"started from the checkpoint: max |weight change| {kept:.1e}; from scratch: {apart:.1e}")
    assert kept < 1e-6 < 1e-2 < apart
    sidecar = json.loads(sidecar_path(out).read_text())
    assert sidecar["input_frames"] == Trainer(cfg, progress=False).input_frames
    assert sidecar["architecture"] == "mixednet" and sidecar["clip_duration_ms"] == 500


def test_one_phase_keeps_the_last_phase_settings():
    cfg = load_preset("fast_test")
    tuned = one_phase(cfg, 400, 0.00005)
    assert tuned.training.training_steps == [400] and tuned.training.learning_rates == [0.00005]
    assert "negative_class_weight" in per_phase_fields(cfg)
    for name in per_phase_fields(cfg):
        if name != "learning_rates":
            assert getattr(tuned.training, name) == [getattr(cfg.training, name)[-1]], name
    assert cfg.training.training_steps == [2000, 1000]  # the config given is left as it was
    assert tuned.source_of("training.training_steps") == "--fine-tune-steps"


def _other_checkpoint(tmp_path: Path, data: Path, **model) -> Path:
    """A checkpoint, with its sidecar, of the tiny config with other model keys."""
    from mww.train.checkpoints import write_checkpoint

    cfg = tiny_config(data, tmp_path / "other")
    cfg.model.__dict__.update(model)
    frames = Trainer(cfg, progress=False).input_frames
    return write_checkpoint(build_model(cfg.model, (frames, 40)), tmp_path / "o.weights.h5", 5, {}, cfg)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ({"architecture": "cnn"}, "is a 'cnn' model .* but this config builds model.architecture 'mixednet'"),
        ({"pointwise_filters": "12,8"}, r"different model than the config describes .* shape"),
    ],
)
def test_cli_refuses_a_checkpoint_of_another_model(trained, tmp_path, capsys, model, match):
    from mww.cli.train import main

    data, _ = trained
    checkpoint = _other_checkpoint(tmp_path, data, **model)
    cfg = tiny_config(data, tmp_path)
    config = dump_config(cfg, tmp_path / "cfg.yaml")
    assert main(["--config", str(config), "--init-from", str(checkpoint), "--quiet"]) == 2
    err = capsys.readouterr().err
    print(err)
    assert err.count("\n") == 1 and "Traceback" not in err and "--init-from needs a checkpoint" in err
    assert re.search(match, err)
    assert not Path(cfg.paths.checkpoint_dir).exists()  # refused before anything was written
    assert not Path(cfg.paths.processed_dir).exists()  # and before the data was prepared


def test_a_checkpoint_of_another_input_length_is_refused(trained, tmp_path):
    data, checkpoint = trained
    longer = tiny_config(data, tmp_path)
    longer.hardware.clip_duration_ms = 700
    with pytest.raises(CheckpointError, match=r"trained on inputs of \d+ feature frames \(hardware.clip"):
        Trainer(longer, progress=False, init_from=checkpoint).train()
    # without its sidecar the weights themselves tell: the head sees more frames
    bare = tmp_path / "bare" / BEST_NAME
    bare.parent.mkdir()
    shutil.copy(checkpoint, bare)
    with pytest.raises(CheckpointError, match=r"weights .* have shape"):
        Trainer(longer, progress=False, init_from=bare).train()
    assert not Path(longer.paths.checkpoint_dir).exists()


def test_a_checkpoint_in_the_run_folder_or_missing_is_refused(trained, tmp_path):
    data, checkpoint = trained
    cfg = tiny_config(data, tmp_path)
    inside = Path(cfg.paths.checkpoint_dir) / BEST_NAME
    inside.parent.mkdir(parents=True)
    shutil.copy(checkpoint, inside)
    with pytest.raises(CheckpointError, match=r"the paths\.checkpoint_dir this run writes"):
        Trainer(cfg, progress=False, init_from=inside).train()
    assert inside.read_bytes() == checkpoint.read_bytes()
    with pytest.raises(CheckpointError, match="does not exist"):
        Trainer(cfg, progress=False, init_from=tmp_path / "none.weights.h5").train()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--fine-tune-steps", "100"], "give the checkpoint to start from with --init-from"),
        (["--fine-tune-learning-rate", "0.001"], "give both"),
    ],
)
def test_cli_fine_tune_flags_need_their_partners(tmp_path, capsys, argv, match):
    from mww.cli.train import main

    config = dump_config(tiny_config(tmp_path / "data", tmp_path), tmp_path / "cfg.yaml")
    assert main(["--config", str(config), *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    with pytest.raises(SystemExit, match="2"):
        main(["--config", str(config), "--init-from", "x.weights.h5", "--fine-tune-steps", "0"])
    assert "0 steps: give at least 1" in capsys.readouterr().err


def test_cli_fine_tunes_from_a_checkpoint(trained, tmp_path, capsys):
    from mww.cli.train import main

    data, checkpoint = trained
    cfg = tiny_config(data, tmp_path)
    config = dump_config(cfg, tmp_path / "cfg.yaml")
    argv = ["--config", str(config), "--init-from", str(checkpoint), "--fine-tune-steps", "20", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 phase(s), 20 steps" in out and f"starting from {checkpoint}" in out
    assert (Path(cfg.paths.checkpoint_dir) / BEST_NAME).is_file()


def test_an_interrupted_fine_tuning_run_resumes_from_its_own_state(trained, tmp_path):
    data, checkpoint = trained
    cfg = one_phase(tiny_config(data, tmp_path), steps=30, learning_rate=0.001)
    trainer = Trainer(cfg, progress=False, out=io.StringIO(), init_from=checkpoint)
    trainer.stop_after = 12
    assert trainer.train().interrupted
    out = io.StringIO()
    result = Trainer(cfg, progress=False, out=out, init_from=checkpoint).train(resume=True)
    log = out.getvalue()
    assert "resumed at step 12" in log and f"starting from {checkpoint}" in log
    assert result.last_step == 30 and not result.interrupted
