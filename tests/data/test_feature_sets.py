"""Precomputed feature sets (mmap_ninja RaggedMmaps made in the tests): read like the project's own
features, drawn into training batches with their weights, heard as ambient audio in validation and
by mww-evaluate, and refused when they are not of this front end."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from mmap_ninja.ragged import RaggedMmap

from mww.config.load import config_from_dict, deep_merge, dump_config, load_full_config
from mww.config.validate import ConfigError
from mww.data.feature_sets import (
    MAX_FRONT_END_VALUE,
    FeatureSetError,
    ambient_streams,
    open_feature_sets,
    summary_lines,
    training_sources,
)
from mww.data.sampler import WindowSampler, step_rng
from mww.device.constants import FEATURE_SCALE, MEL_BINS, SAMPLE_RATE_HZ
from mww.device.features import audio_to_uint16_features
from tests.conftest import build_dataset, tone

INPUT = 60  # frames of the windows sampled in the sampler tests


def numbered(n_rows: int, first: int) -> np.ndarray:
    """uint16 rows whose first two bins say which array and which row they are (all in range)."""
    rows = np.zeros((n_rows, MEL_BINS), dtype=np.uint16)
    rows[:, 0] = first
    rows[:, 1] = np.arange(n_rows) % 600
    rows[:, 2:] = (np.arange(n_rows)[:, None] * 7 + np.arange(MEL_BINS - 2)) % 500
    return rows


def write_set(root: Path, parts: dict[str, list[list[np.ndarray]]]) -> Path:
    """A feature set: under each part folder, one `*_mmap` RaggedMmap per list of arrays."""
    for part, mmaps in parts.items():
        (root / part).mkdir(parents=True, exist_ok=True)
        for i, arrays in enumerate(mmaps):
            RaggedMmap.from_lists(root / part / f"part{i}_mmap", arrays)
    return root


def config_with(sets: list[dict], root: Path) -> object:
    return config_from_dict({"data": {"feature_sets": sets}, "paths": {"processed_dir": str(root / "p")}})


def test_a_set_feeds_training_windows_from_its_arrays(tmp_path):
    training = [[numbered(120, 1), numbered(30, 2), numbered(0, 9)], [numbered(200, 3)]]  # 0 rows: unused
    root = write_set(tmp_path / "speech", {"training": training})
    cfg = config_with([{"path": str(root), "sampling_weight": 3.0, "class_weight": 7.0}], tmp_path)
    (fs,) = open_feature_sets(cfg)
    assert fs.name == "speech" and [len(a) for a in fs.parts["training"]] == [3, 1]
    sources, counts = training_sources([fs])
    assert counts == {"speech (feature set)": 3}
    # the set's weight is shared by its arrays, so each array is drawn as often as any other
    assert [s.sampling_weight for s in sources] == pytest.approx([2.0, 1.0])
    assert all(s.label == 0 and s.class_weight == 7.0 and s.name == "feature_set:speech" for s in sources)
    np.testing.assert_array_equal(sources[1].store.get("0"), training[1][0])

    sampler = WindowSampler(sources, INPUT, batch_size=64)
    batch = sampler.sample(step_rng(0, 0))
    assert batch.features.shape == (64, INPUT, MEL_BINS) and not batch.labels.any()
    for window in np.rint(batch.features / FEATURE_SCALE).astype(np.int64):
        which = {1: training[0][0], 2: training[0][1], 3: training[1][0]}[int(window[-1, 0])]
        if which.shape[0] >= INPUT:  # "random": a slice of the array
            start = int(window[0, 1])
            np.testing.assert_array_equal(window, which[start : start + INPUT])
        else:  # shorter: left-padded with its first row
            np.testing.assert_array_equal(window[-which.shape[0] :], which)
            assert (window[: INPUT - which.shape[0]] == which[0]).all()
    print("\n" + "\n".join(summary_lines([fs])))


def test_ambient_arrays_are_streams_of_their_frame_count(tmp_path):
    long, short = numbered(500, 4), numbered(40, 5)
    root = write_set(
        tmp_path / "eval",
        {"validation_ambient": [[long, short]], "testing_ambient": [[numbered(300, 6)], [numbered(250, 7)]]},
    )
    (fs,) = open_feature_sets(config_with([{"path": str(root), "role": "ambient"}], tmp_path))
    validation = ambient_streams([fs], "validation", input_frames=100)
    assert validation.seconds == [5.0] and validation.sets == ["eval"]  # the short array cannot be scored
    np.testing.assert_allclose(validation.streams[0], long * FEATURE_SCALE)
    assert validation.paths == [root / "validation_ambient" / "part0_mmap[0]"]
    test = ambient_streams([fs], "test", input_frames=100)
    assert test.seconds == [3.0, 2.5]
    assert ambient_streams([fs], "train", input_frames=100).streams == []
    assert training_sources([fs]) == ([], {})


def test_the_front_end_never_outputs_what_the_value_check_refuses():
    rng = np.random.default_rng(0)
    t = np.arange(3 * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    loud = {
        "white noise": np.clip(rng.standard_normal(t.size), -1, 1),
        "1 kHz tone": np.sin(2 * np.pi * 1000 * t),
        "square wave": np.sign(np.sin(2 * np.pi * 300 * t)),
        "chirp": np.sin(2 * np.pi * (100 + 2000 * t) * t),
    }
    peaks = {name: int(audio_to_uint16_features(x.astype(np.float32)).max()) for name, x in loud.items()}
    print(f"\nfront-end peaks on full-scale audio: {peaks} (the check refuses above {MAX_FRONT_END_VALUE})")
    assert max(peaks.values()) < MAX_FRONT_END_VALUE


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


BAD_SETS = {
    "64 bins": ({"training": [[np.ones((50, 64), np.uint16)]]}, "training", "have 64 bins"),
    "float spectrograms": (
        {"training": [[np.ones((50, MEL_BINS), np.float32)]]},
        "training",
        "are float32, not uint16",
    ),
    "one-dimensional arrays": ({"training": [[np.ones(50, np.uint16)]]}, "training", "not two-dimensional"),
    "values of another scale": (
        {"training": [[np.full((50, MEL_BINS), 4000, np.uint16)]]},
        "training",
        "holds the value 4000",
    ),
    "no training folder": ({"validation_ambient": [[numbered(50, 1)]]}, "training", "no training/ folder"),
    "no ambient folder": ({"training": [[numbered(50, 1)]]}, "both", "no validation_ambient/ folder"),
    "no *_mmap": ({"training": []}, "training", "holds no *_mmap folder"),
}


def refusal_config(tmp_path: Path, entries: list[dict]) -> object:
    build_dataset(tmp_path / "data", speakers=3, per_speaker=1, negatives=2)
    return config_from_dict(
        {
            "paths": {
                "positive_dir": str(tmp_path / "data" / "positive"),
                "processed_dir": str(tmp_path / "processed"),
                "checkpoint_dir": str(tmp_path / "checkpoints"),
            },
            "performance": {"tensorboard_log_dir": str(tmp_path / "logs")},
            "data": {"feature_sets": entries},
        }
    )


@pytest.mark.parametrize("case", [*BAD_SETS, "empty *_mmap", "incomplete *_mmap", "not a folder", "twice"])
def test_a_set_that_is_not_ours_is_refused_and_nothing_is_written(tmp_path, capsys, case):
    from mww.cli.prepare import main

    root = tmp_path / "sets" / "speech"
    entries = [{"path": str(root), "role": "training"}]
    if case in BAD_SETS:
        parts, role, expected = BAD_SETS[case]
        write_set(root, parts)
        entries[0]["role"] = role
    elif case == "empty *_mmap":
        (root / "training" / "speech_mmap").mkdir(parents=True)
        expected = "is empty (it holds no RaggedMmap)"
    elif case == "incomplete *_mmap":
        write_set(root, {"training": [[numbered(50, 1)]]})
        for name in ("flattened_shapes", "ends"):
            for f in (root / "training" / "part0_mmap" / name).iterdir():
                f.unlink()
            (root / "training" / "part0_mmap" / name).rmdir()
        expected = "not a complete RaggedMmap (no ends, flattened_shapes)"
    elif case == "not a folder":
        expected = "is not a folder"
    else:
        other = tmp_path / "more" / "speech"
        write_set(root, {"training": [[numbered(50, 1)]]})
        write_set(other, {"training": [[numbered(50, 2)]]})
        entries.append({"path": str(other)})
        expected = "are both folders named 'speech'"
    before = _files(tmp_path / "sets") if (tmp_path / "sets").exists() else {}
    cfg = refusal_config(tmp_path, entries)
    with pytest.raises(FeatureSetError, match=re.escape(expected)):
        open_feature_sets(cfg)
    code = main(["--config", str(dump_config(cfg, tmp_path / "cfg.yaml"))])
    err = capsys.readouterr().err
    with capsys.disabled():
        print(f"\n{case}: {err.strip()}")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert expected in err and "data.feature_sets[" in err
    assert not (tmp_path / "processed").exists() and not (tmp_path / "checkpoints").exists()
    assert (_files(tmp_path / "sets") if (tmp_path / "sets").exists() else {}) == before


def test_training_refuses_a_set_of_64_bins_before_it_writes_anything(tmp_path, capsys):
    from mww.cli.train import main

    root = write_set(tmp_path / "sets" / "wide", {"training": [[np.ones((50, 64), np.uint16)]]})
    cfg = refusal_config(tmp_path, [{"path": str(root)}])
    code = main(["--config", str(dump_config(cfg, tmp_path / "cfg.yaml"))])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "have 64 bins" in err
    assert not (tmp_path / "processed").exists()
    assert not [p for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()]  # (the run's lock is gone)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"sampling_weight": 1.0}, r"'data.feature_sets\[0\]' in .* has no 'path'"),
        ({"path": "x", "rol": "ambient"}, r"Unknown key 'rol' .* Did you mean 'role'\?"),
        (
            {"path": "x", "role": "validation"},
            r"'data.feature_sets\[0\].role' .* one of: training, ambient, both",
        ),
        ({"path": "x", "sampling_weight": -1}, r"'data.feature_sets\[0\].sampling_weight' .* >= 0"),
        ({"path": "x", "truncation": "split"}, r"one of: random, end"),
        ("speech", r"'data.feature_sets\[0\]' .* must be a mapping with the keys path, sampling_weight"),
    ],
)
def test_feature_set_entries_are_validated(entry, expected):
    with pytest.raises(ConfigError, match=expected):
        config_from_dict({"data": {"feature_sets": [entry]}})


def test_feature_set_entries_load_resolve_and_dump(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yaml_file = tmp_path / "mine.yaml"
    yaml_file.write_text(
        "base: standard\ndata:\n  feature_sets:\n    - path: sets/speech\n      sampling_weight: 10\n"
        "    - {path: sets/dinner_party_eval, role: ambient, class_weight: 2}\n"
    )
    cfg = load_full_config(yaml_file)
    first, second = cfg.data.feature_sets
    assert first.path == tmp_path / "sets" / "speech" and first.sampling_weight == 10.0
    assert first.role == "training" and first.truncation == "random" and first.class_weight is None
    assert second.role == "ambient" and second.class_weight == 2.0
    assert load_full_config(dump_config(cfg, tmp_path / "dumped.yaml")) == cfg


# --------------------------------------------------------------------------- training and evaluation


def front_end(seconds: float, freq: float, seed: int) -> np.ndarray:
    """Real front-end features of a tone in noise, as the published sets hold them."""
    return audio_to_uint16_features(
        tone(seconds, freq, seed=seed) + 0.05 * tone(seconds, 3 * freq, seed=seed)
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Ten steps on a tone dataset without ambient recordings, with a set for negatives and ambient
    audio, then its checkpoint evaluated on the test split."""
    from mww.train.trainer import Trainer
    from tests.train.test_trainer import tiny_config

    root = tmp_path_factory.mktemp("feature_set_training")
    build_dataset(root / "data", speakers=6, per_speaker=3, negatives=12)
    for f in (root / "data" / "ambient").iterdir():
        f.unlink()  # the set's ambient arrays stand in for them
    sets = root / "sets"
    write_set(
        sets / "dinner",
        {
            "training": [[front_end(2.0, 500 + 40 * i, i) for i in range(6)]],
            "validation_ambient": [[front_end(6.0, 210, 1), front_end(4.0, 230, 2)]],
            "testing_ambient": [[front_end(5.0, 250, 3)]],
        },
    )
    write_set(sets / "speech", {"training": [[front_end(1.5, 700 + 30 * i, 10 + i) for i in range(4)]]})
    base = tiny_config(root / "data", root / "run").to_dict()
    cfg = config_from_dict(
        deep_merge(
            base,
            {
                "training": {"training_steps": [6, 4], "eval_step_interval": 5},
                "data": {
                    "feature_sets": [
                        {"path": str(sets / "dinner"), "role": "both", "sampling_weight": 2.0},
                        {"path": str(sets / "speech"), "class_weight": 7.0, "truncation": "end"},
                    ]
                },
                "hard_negative_mining": {"enabled": False},
            },
        )
    )
    out = io.StringIO()
    trainer = Trainer(cfg, progress=False, out=out)
    result = trainer.train()
    return cfg, trainer, result, out.getvalue()


def test_training_draws_the_sets_with_their_weights(trained):
    _, trainer, result, log = trained
    assert result.best_checkpoint is not None and result.last_step == 10
    assert "dinner (feature set) 6, speech (feature set) 4" in log
    names = [s.name for s in trainer.sampler.sources]
    assert {"feature_set:dinner", "feature_set:speech", "positive", "negative"} <= set(names)
    weights = dict(zip(names, trainer._weights_for(1).tolist(), strict=True))
    # class weights: the set's own, else the negatives' of the phase (tiny_config: 2.0 then 3.0)
    assert weights["feature_set:speech"] == 7.0 and weights["feature_set:dinner"] == 3.0
    batch = trainer.sampler.sample(step_rng(0, 3))
    drawn = {trainer.sampler.sources[i].name for i in batch.source}
    assert {"feature_set:dinner", "feature_set:speech"} <= drawn
    line = next(x for x in log.splitlines() if x.startswith("training examples"))
    print("\n" + line)


def test_validation_and_evaluate_hear_the_ambient_arrays_of_a_set(trained, capsys):
    from mww.cli.evaluate import main
    from mww.data.prepare import prepare_data
    from mww.data.sources import eval_data

    cfg, trainer, result, _ = trained
    dinner = Path(cfg.data.feature_sets[0].path)

    def seconds(part: str) -> list[float]:  # 10 ms per frame
        return [a.shape[0] / 100 for a in RaggedMmap(dinner / part / "part0_mmap")]

    validation = eval_data(cfg, prepare_data(cfg, progress=False), "validation", trainer.input_frames)
    assert validation.ambient_sources == ["dinner", "dinner"]  # the dataset has no ambient recordings
    assert validation.ambient_durations == seconds("validation_ambient")
    assert validation.ambient_seconds == pytest.approx(sum(seconds("validation_ambient")))
    config_file = dump_config(cfg, Path(cfg.paths.checkpoint_dir).parent / "config.yaml")
    code = main(
        ["--checkpoint", str(result.best_checkpoint), "--config", str(config_file), "--split", "test"]
    )
    out = capsys.readouterr().out
    assert code == 0
    code = main(
        [
            "--checkpoint",
            str(result.best_checkpoint),
            "--config",
            str(config_file),
            "--split",
            "test",
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    row = report["per_source"]["feature_sets"]["dinner"]
    (test_seconds,) = seconds("testing_ambient")
    assert row["arrays"] == 1 and row["hours"] == pytest.approx(test_seconds / 3600)
    assert report["counts"]["ambient_hours"] == pytest.approx(test_seconds / 3600)
    assert row["false_activations"] == sum(e["source"] == "feature_set:dinner" for e in report["events"])
    assert report["per_source"]["ambient"] == []  # no recordings of the dataset's own
    assert "per feature set heard as ambient audio" in out and "dinner" in out
    with capsys.disabled():
        print(f"\ntest split of the set 'dinner': {row}")
    assert os.path.isfile(result.best_checkpoint)
