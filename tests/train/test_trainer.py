"""The trainer on tiny tone datasets: outputs, selection, resume, class weights and bad input."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mww.config.load import config_from_dict
from mww.data.sampler import step_rng
from mww.data.sources import NOISE_SNRS_DB, TrainDataError, check_window, noise_key
from mww.train.checkpoints import BEST_NAME
from mww.train.errors import TrainError
from mww.train.trainer import Trainer, phase_of
from tests.conftest import build_dataset, dataset_paths, tone, write

TINY_MODEL = {
    "first_conv_filters": 8,
    "first_conv_kernel_size": 3,
    "pointwise_filters": "8,8",
    "mixconv_kernel_sizes": "[3],[5]",
    "repeat_in_block": "1,1",
    "residual_connection": "0,0",
}


def tiny_config(data_root: Path, root: Path, **training):
    paths = {**dataset_paths(data_root, root / "processed"), "checkpoint_dir": str(root / "checkpoints")}
    return config_from_dict(
        {
            "hardware": {"clip_duration_ms": 500},
            "paths": paths,
            "model": TINY_MODEL,
            "augmentation": {"enabled": False, "augmentation_duration_s": 1.5},
            "training": {
                "training_steps": [30, 20],
                "learning_rates": [0.01, 0.001],
                "batch_size": 16,
                "eval_step_interval": 25,
                "positive_class_weight": [1.0, 1.0],
                "negative_class_weight": [2.0, 3.0],
                "hard_negative_class_weight": [4.0, 5.0],
                **training,
            },
            "performance": {
                "num_workers": 1,
                "tensorboard_log_dir": str(root / "logs"),
                "profile_output_dir": str(root / "profiles"),
            },
            "hard_negative_mining": {"mining_interval_epochs": 1, "fp_threshold": 0.0, "max_samples": 5},
        }
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    build_dataset(root, speakers=6, per_speaker=4, negatives=24)
    return root


def run(cfg, resume=False, stop_after=None):
    out = io.StringIO()
    trainer = Trainer(cfg, progress=False, out=out)
    trainer.stop_after = stop_after
    return trainer.train(resume=resume), out.getvalue()


def test_phase_of():
    assert phase_of(0, [3, 2]) == 0 and phase_of(2, [3, 2]) == 0 and phase_of(3, [3, 2]) == 1
    assert phase_of(4, [3, 2]) == 1


def test_training_writes_checkpoints_logs_and_calibration(dataset, tmp_path):
    cfg = tiny_config(dataset, tmp_path)
    result, out = run(cfg)
    print(out[-1500:])
    ckpt = tmp_path / "checkpoints"
    assert result.best_checkpoint == ckpt / BEST_NAME and result.best_checkpoint.is_file()
    assert not result.interrupted and result.last_step == 50
    names = {p.name for p in ckpt.iterdir()}
    assert {"checkpoint_step_25.weights.h5", "checkpoint_step_50.weights.h5", "calibration.json"} <= names
    assert any(n.startswith("best_fah_step_") for n in names)
    sidecar = json.loads((ckpt / "best_weights.json").read_text())
    assert sidecar["step"] == result.best_step and 0 < sidecar["probability_cutoff"] < 1
    for key in (
        "accuracy",
        "f1",
        "auc_roc",
        "ambient_false_positives_per_hour",
        "hard_negative_false_detection_rate",
        *(noise_key(snr) for snr in NOISE_SNRS_DB),  # the dataset has background audio
    ):
        assert key in sidecar["metrics"]
    assert 0.0 <= sidecar["metrics"][noise_key(20.0)] <= 1.0
    assert "operating point recall in noise: 20 dB SNR " in out
    assert "Phase 1 • 10/50 • 20.0%" in out and "Phase 2 • 50/50 • 100.0%" in out
    assert "» FA/hour (ambient+neg.)" in out
    assert result.log_path.read_text().count("Validation at step") == 2
    assert list((tmp_path / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    # mining ran at the first evaluation (interval 1 evaluation, threshold 0): windows were kept
    mined = json.loads((ckpt / "mined_hard_negatives.json").read_text())
    assert mined["step"] == 25 and len(mined["windows"]) == 5
    assert (ckpt / "mined_hard_negatives.csv").is_file()


def test_sample_weights_follow_source_and_phase(dataset, tmp_path):
    cfg = tiny_config(dataset, tmp_path)
    trainer = Trainer(cfg, progress=False, out=io.StringIO())
    from mww.data.sources import build_training_data

    data = build_training_data(cfg, trainer.input_frames, progress=False)
    trainer.sampler = trainer._sampler(data, [])
    trainer.spec_augment = lambda batch, rng, **_: batch
    for step, expected in ((0, {1.0: 1.0, 0.0: {2.0, 4.0}}), (40, {1.0: 3.0, 0.0: {3.0, 5.0}})):
        x, y, w = trainer._make_batch(step)
        assert x.shape == (16, trainer.input_frames, 40)
        assert set(w[y == 1].tolist()) <= {1.0}
        assert set(w[y == 0].tolist()) <= expected[0.0]
    batch = trainer.sampler.sample(step_rng(0, 0))
    names = [trainer.sampler.sources[i].name for i in batch.source]
    assert {"positive", "negative"} <= set(names)


def test_resume_continues_exactly_where_it_stopped(dataset, tmp_path):
    import keras

    full_cfg = tiny_config(dataset, tmp_path / "full")
    run(full_cfg)
    split_cfg = tiny_config(dataset, tmp_path / "split")
    first, out = run(split_cfg, stop_after=35)
    assert first.interrupted and first.last_step == 35 and "continue with --resume" in out
    second, out = run(split_cfg, resume=True)
    assert "resumed at step 35" in out and second.last_step == 50
    from mww.model.builder import build_model

    weights = []
    for cfg in (full_cfg, split_cfg):
        model = build_model(cfg.model, (Trainer(cfg, progress=False).input_frames, 40))
        model.load_weights(Path(cfg.paths.checkpoint_dir) / "checkpoint_step_50.weights.h5")
        weights.append(model.get_weights())
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(*weights, strict=True))
    print(f"resumed vs uninterrupted: max |weight difference| {worst:.2e}")
    assert worst < 1e-4
    keras.backend.clear_session()


def test_with_a_weight_average_checkpoints_hold_the_average_and_resume_is_exact(dataset, tmp_path):
    import keras

    from mww.model.builder import build_model

    full_cfg = tiny_config(dataset, tmp_path / "full", ema_decay=0.9)
    _, out = run(full_cfg)
    assert "moving average (decay 0.9)" in out
    split_cfg = tiny_config(dataset, tmp_path / "split", ema_decay=0.9)
    run(split_cfg, stop_after=35)
    second, out = run(split_cfg, resume=True)
    assert "resumed at step 35" in out and second.last_step == 50

    def weights(cfg, path):
        model = build_model(cfg.model, (Trainer(cfg, progress=False).input_frames, 40))
        model.load_weights(path)
        return model.get_weights()

    ckpt = Path(full_cfg.paths.checkpoint_dir)
    saved = weights(full_cfg, ckpt / "checkpoint_step_50.weights.h5")
    resumed = weights(split_cfg, Path(split_cfg.paths.checkpoint_dir) / "checkpoint_step_50.weights.h5")
    raw = weights(full_cfg, ckpt / "resume" / "weights.weights.h5")  # the trained weights themselves
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(saved, resumed, strict=True))
    apart = max(float(np.max(np.abs(a - b))) for a, b in zip(saved, raw, strict=True))
    print(f"averaged: resumed vs uninterrupted {worst:.2e}; average vs trained weights {apart:.2e}")
    assert worst < 1e-4
    assert apart > 1e-3  # what was validated and saved is the average, not the last step's weights
    keras.backend.clear_session()


def test_resume_without_state_and_with_another_config_is_refused(dataset, tmp_path):
    cfg = tiny_config(dataset, tmp_path)
    with pytest.raises(TrainError, match="found no resumable checkpoint"):
        run(cfg, resume=True)
    run(cfg, stop_after=26)
    changed = tiny_config(dataset, tmp_path, batch_size=8)
    with pytest.raises(TrainError, match="different config"):
        run(changed, resume=True)
    averaged = tiny_config(dataset, tmp_path / "averaged", ema_decay=0.9)
    run(averaged, stop_after=26)
    (Path(averaged.paths.checkpoint_dir) / "resume" / "average.npz").unlink()
    with pytest.raises(TrainError, match=r"moving average in .*average\.npz is missing"):
        run(averaged, resume=True)


def test_missing_ambient_and_negatives_are_explained(tmp_path):
    root = tmp_path
    build_dataset(root / "data", speakers=4, per_speaker=2, negatives=4)
    for f in (root / "data" / "ambient").iterdir():
        f.unlink()
    with pytest.raises(TrainDataError, match=r"no ambient recordings .* put at least two there"):
        run(tiny_config(root / "data", root))
    for f in (root / "data" / "negative").rglob("*.wav"):
        f.unlink()
    write(root / "data" / "ambient" / "a.wav", tone(5.0, 100.0))
    write(root / "data" / "ambient" / "b.wav", tone(5.0, 120.0))
    with pytest.raises(TrainDataError, match="no usable negative clips in the training split"):
        run(tiny_config(root / "data", root))


def test_selecting_by_recall_in_noise_needs_background_audio(tmp_path, capsys):
    from mww.cli.train import main
    from mww.config.load import dump_config

    build_dataset(tmp_path / "data", speakers=4, per_speaker=2, negatives=4)
    for f in (tmp_path / "data" / "background").iterdir():
        f.unlink()
    cfg = tiny_config(tmp_path / "data", tmp_path, maximization_metric=noise_key(20.0))
    assert main(["--config", str(dump_config(cfg, tmp_path / "cfg.yaml")), "--quiet"]) == 2
    err = capsys.readouterr().err
    print(f"\n{err.strip()}")
    assert "'training.maximization_metric' is 'operating_point_recall_in_noise_20db'" in err
    assert "no background audio" in err and "Traceback" not in err
    assert not (tmp_path / "processed").exists()  # refused before any data was prepared
    assert not (tmp_path / "checkpoints").exists()


def test_a_training_window_shorter_than_the_model_input_is_refused(tmp_path, capsys):
    """1.5 s clips need 168 input frames of this model; a 1.5 s window holds 148."""
    from mww.cli.evaluate import main as evaluate_main
    from mww.cli.train import main
    from mww.config.load import dump_config

    build_dataset(tmp_path / "data", speakers=4, per_speaker=2, negatives=4)
    cfg = tiny_config(tmp_path / "data", tmp_path)
    cfg = dataclasses.replace(cfg, hardware=dataclasses.replace(cfg.hardware, clip_duration_ms=1500))
    cfg_path = str(dump_config(cfg, tmp_path / "cfg.yaml"))
    assert main(["--config", cfg_path, "--quiet"]) == 2
    err = capsys.readouterr().err
    print(f"\n{err.strip()}")
    assert "'augmentation.augmentation_duration_s' is 1.5 s" in err and "168 feature frames" in err
    assert "at least 1.7 s" in err and "Traceback" not in err
    assert not (tmp_path / "processed").exists()  # refused before any data was prepared
    assert not (tmp_path / "checkpoints").exists()
    fixed = dataclasses.replace(
        cfg, augmentation=dataclasses.replace(cfg.augmentation, augmentation_duration_s=1.7)
    )
    check_window(fixed, Trainer(fixed, progress=False, out=io.StringIO()).input_frames)  # the suggestion fits
    model = tmp_path / "m.weights.h5"
    model.write_bytes(b"")  # never read: the window is checked first
    assert evaluate_main(["--checkpoint", str(model), "--config", cfg_path, "--split", "val"]) == 2
    assert "'augmentation.augmentation_duration_s' is 1.5 s" in capsys.readouterr().err


def test_cli_exit_codes(dataset, tmp_path, capsys, monkeypatch):
    from mww.cli.train import main
    from mww.config.load import dump_config

    cfg_path = dump_config(tiny_config(dataset, tmp_path), tmp_path / "cfg.yaml")
    assert main(["--config", str(cfg_path), "--quiet"]) == 0
    assert "best checkpoint:" in capsys.readouterr().out
    assert main(["--config", str(cfg_path), "--override", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "missing.yaml" in err and "Traceback" not in err


# --------------------------------------------------------------------------- signals, from the command line


def _train_command(cfg_path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mww.cli.train", "--config", str(cfg_path), "--quiet", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def _signal_after_checkpoint(process: subprocess.Popen, state: Path, after_step: int, signum: int):
    """Send `signum` once the resumable state of `after_step` is on disk; (exit code, stdout, stderr)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists() and json.loads(state.read_text()).get("step", 0) >= after_step:
            process.send_signal(signum)
            break
        time.sleep(0.02)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


@pytest.mark.slow
def test_sigint_and_sigterm_stop_training_cleanly_and_resume_finishes_the_run(dataset, tmp_path, capsys):
    """A real mww-train process, stopped with Ctrl-C after its first checkpoint, resumed and stopped with
    SIGTERM after its second: each stop exits non-zero without a traceback and saves the resumable
    state; `mww-train --resume` then ends the run at the configured total of steps."""
    from mww.cli.train import main
    from mww.config.load import dump_config

    cfg = tiny_config(dataset, tmp_path, training_steps=[150, 150], eval_step_interval=50)
    cfg_path = dump_config(cfg, tmp_path / "cfg.yaml")
    state = tmp_path / "checkpoints" / "resume" / "state.json"
    stops = []
    for signum, after, resume in ((signal.SIGINT, 50, ()), (signal.SIGTERM, 100, ("--resume",))):
        code, out, err = _signal_after_checkpoint(_train_command(cfg_path, *resume), state, after, signum)
        stopped_at = json.loads(state.read_text())["step"]
        with capsys.disabled():
            name = signal.Signals(signum).name
            print(f"\n{name} after step {after}: exit {code}, resumable state at step {stopped_at}")
        assert "Traceback" not in err, err
        assert code == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], (out, err)
        assert "interrupted at step" in out and "--resume" in out
        assert after <= stopped_at < cfg.training.total_steps
        stops.append(stopped_at)
    code = main(["--config", str(cfg_path), "--quiet", "--resume"])
    out = capsys.readouterr().out
    with capsys.disabled():
        print(f"mww-train --resume from step {stops[-1]}: exit {code}")
    assert code == 0 and f"resumed at step {stops[-1]}" in out and "best checkpoint:" in out
    assert json.loads(state.read_text())["step"] == cfg.training.total_steps == 300
    assert not (tmp_path / "checkpoints" / ".mww-train.lock").exists()
