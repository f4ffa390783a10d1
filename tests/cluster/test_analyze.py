"""mww-cluster-analyze (runs in .venv-torch): model loading, the embedding cache, outputs, the audit run.

The clustering itself is tested in test_speaker_tree.py, the leakage audit in test_leakage.py.

The speaker model is a tiny ECAPA-TDNN with random (seeded) weights, saved in SpeechBrain's format by
the tests and loaded through the same `EncoderClassifier.from_hparams` path users take; no network.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mww.cli.cluster_analyze import main as analyze_main
from mww.cluster.embeddings import EmbeddingCache, SpeechBrainEmbedder, embed_files
from mww.data.ingest import discover, ingest, load_namelist
from tests.conftest import build_dataset, dataset_paths, make_config, tone, write

TINY_HPARAMS = """\
# A tiny ECAPA-TDNN in the layout of speechbrain/spkrec-ecapa-voxceleb (random weights, for tests).
n_mels: 20
pretrained_path: speechbrain/spkrec-ecapa-voxceleb

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [16, 16, 16, 16, 48]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 8
    res2net_scale: 4
    se_channels: 8
    lin_neurons: 16

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 16
    out_neurons: 2

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
"""


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """Save a tiny random ECAPA-TDNN as a local SpeechBrain model folder."""
    import torch
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hyperparams.yaml").write_text(TINY_HPARAMS)
    torch.manual_seed(seed)
    model = ECAPA_TDNN(
        20,
        channels=[16, 16, 16, 16, 48],
        kernel_sizes=[5, 3, 3, 3, 1],
        dilations=[1, 2, 3, 4, 1],
        attention_channels=8,
        res2net_scale=4,
        se_channels=8,
        lin_neurons=16,
    )
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny_ecapa")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No test may reach a model hub: offline mode and an empty Hugging Face cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


def write_config(root: Path, extra: dict | None = None) -> Path:
    import yaml

    data = {"paths": dataset_paths(root / "dataset", root / "processed")}
    for section, values in (extra or {}).items():
        data.setdefault(section, {}).update(values)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def small_dataset(root: Path, speakers: int = 3, per_speaker: int = 3) -> Path:
    for s in range(speakers):
        for i in range(per_speaker):
            write(
                root / "positive" / f"spk{s}" / f"{i}.wav", tone(1.0, 200 + 150 * s + 7 * i, seed=10 * s + i)
            )
    return root


# --------------------------------------------------------------------------- the model


def test_local_model_folder_loads_through_from_hparams_offline(tiny_model):
    import torch

    embedder = SpeechBrainEmbedder(str(tiny_model))
    saved = torch.load(tiny_model / "embedding_model.ckpt")
    loaded = embedder.classifier.mods.embedding_model.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)  # our weights, not a fresh init
    out = embedder.embed([tone(1.0, 300), tone(0.6, 500, seed=1)])
    assert out.shape == (2, 16) and np.all(np.isfinite(out))
    assert SpeechBrainEmbedder(str(tiny_model)).fingerprint == embedder.fingerprint
    assert not any(p.is_symlink() for p in tiny_model.iterdir())


def test_a_different_model_has_a_different_fingerprint(tiny_model, tmp_path):
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert SpeechBrainEmbedder(str(other)).fingerprint != SpeechBrainEmbedder(str(tiny_model)).fingerprint


def test_uncached_model_id_offline_says_to_pass_model_source(tmp_path, capsys):
    small_dataset(tmp_path / "dataset")
    code = analyze_main(
        ["--config", str(write_config(tmp_path)), "--model-source", "someone/not-a-cached-model", "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "--model-source DIR" in err and "someone/not-a-cached-model" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_model_folder_without_hyperparams_is_a_clear_error(tmp_path, capsys):
    small_dataset(tmp_path / "dataset")
    (tmp_path / "empty_model").mkdir()
    code = analyze_main(
        ["--config", str(write_config(tmp_path)), "--model-source", str(tmp_path / "empty_model"), "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "holds no hyperparams.yaml" in err and "Traceback" not in err


# --------------------------------------------------------------------------- embeddings and cache


class CountingEmbedder:
    name = "counting"
    fingerprint = "counting-v1"

    def __init__(self):
        self.calls = 0
        self.clips = 0

    def embed(self, waveforms):
        self.calls += 1
        self.clips += len(waveforms)
        return np.stack([[w.size, float(np.abs(w).mean()) + 1e-3, 1.0] for w in waveforms]).astype(np.float32)


def test_embeddings_are_batched_and_cached_by_content(tmp_path):
    files = [write(tmp_path / "d" / f"{i}.wav", tone(0.5 + 0.1 * i, 300 + i)) for i in range(5)]
    copy = tmp_path / "d" / "copy.wav"
    copy.write_bytes(files[0].read_bytes())  # same content: embedded once
    bad = tmp_path / "d" / "bad.wav"
    bad.write_bytes(b"not audio at all")
    paths = sorted(discover(tmp_path / "d"))
    embedder = CountingEmbedder()
    first = embed_files(
        paths, embedder, EmbeddingCache(tmp_path / "cache", "counting-v1"), batch_size=2, progress=False
    )
    assert embedder.clips == 5 and embedder.calls == 3  # batches of 2
    assert [p.name for p, _ in first.skipped] == ["bad.wav"] and "unreadable" in first.skipped[0][1]
    assert len(first.paths) == 6
    assert np.array_equal(
        first.embeddings[first.paths.index(copy)], first.embeddings[first.paths.index(files[0])]
    )
    files[0].rename(tmp_path / "d" / "renamed.wav")  # a move does not need a new embedding
    write(tmp_path / "d" / "new.wav", tone(0.7, 999))
    again = CountingEmbedder()
    second = embed_files(
        sorted(discover(tmp_path / "d")),
        again,
        EmbeddingCache(tmp_path / "cache", "counting-v1"),
        progress=False,
    )
    assert again.clips == 1 and second.computed == 1 and second.reused == 6
    assert np.allclose(
        second.embeddings[second.paths.index(tmp_path / "d" / "renamed.wav")], first.embeddings[0]
    )
    other_model = CountingEmbedder()
    embed_files(files[1:3], other_model, EmbeddingCache(tmp_path / "cache", "another-model"), progress=False)
    assert other_model.clips == 2  # a cache is per model


def test_rerun_of_the_command_embeds_only_new_files(tiny_model, tmp_path, monkeypatch):
    small_dataset(tmp_path / "dataset")
    calls = []
    original = SpeechBrainEmbedder.embed

    def counting(self, waveforms):
        calls.append(len(waveforms))
        return original(self, waveforms)

    monkeypatch.setattr(SpeechBrainEmbedder, "embed", counting)
    args = ["--config", str(write_config(tmp_path)), "--model-source", str(tiny_model), "--quiet"]
    args += ["--output-dir", str(tmp_path / "out"), "--n-clusters", "3", "--batch-size", "4"]
    assert analyze_main(args) == 0
    assert sum(calls) == 9 and max(calls) <= 4
    calls.clear()
    assert analyze_main(args) == 0
    assert calls == []
    write(tmp_path / "dataset" / "positive" / "spk9" / "x.wav", tone(1.0, 777))
    assert analyze_main(args) == 0
    assert calls == [1]


# --------------------------------------------------------------------------- the command


def run_analyze(root: Path, model: Path, *extra: str, config_extra: dict | None = None) -> int:
    args = ["--config", str(write_config(root, config_extra)), "--model-source", str(model), "--quiet"]
    return analyze_main([*args, "--output-dir", str(root / "out"), *extra])


def test_analyze_writes_namelist_and_report_and_moves_nothing(tiny_model, tmp_path, capsys):
    data = small_dataset(tmp_path / "dataset")
    broken = data / "positive" / "spk1" / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt garbage")
    before = snapshot(data)
    assert run_analyze(tmp_path, tiny_model, "--n-clusters", "3") == 0
    out = capsys.readouterr().out
    assert snapshot(data) == before
    assert "broken.wav" in out and "skipped 1 file" in out
    namelist = json.loads((tmp_path / "out" / "positive_namelist.json").read_text())
    assert set(namelist) == {"_meta", "mappings"}
    meta = namelist["_meta"]
    assert {"model", "method", "threshold", "n_clusters", "counts", "date"} <= set(meta)
    assert meta["n_clusters"] == 3 and meta["threshold"] is None and meta["model"] == str(tiny_model)
    assert meta["counts"]["files"] == 9 and meta["counts"]["clusters"] == 3 and meta["counts"]["skipped"] == 1
    assert meta["algorithm"] == "exact" and meta["linkage"] == "average"
    mappings = namelist["mappings"]
    assert len(mappings) == 9 and all(Path(k).is_absolute() for k in mappings)
    assert set(mappings.values()) == {"speaker_0001", "speaker_0002", "speaker_0003"}
    loaded = load_namelist(tmp_path / "out" / "positive_namelist.json", data / "positive")
    assert {str(k): v for k, v in loaded.items()} == mappings
    report = (tmp_path / "out" / "positive_cluster_report.txt").read_text()
    for heading in (
        "## cluster sizes",
        "## singletons",
        "## most cohesive",
        "## least cohesive",
        "suggested n",
    ):
        assert heading in report
    assert "broken.wav" in report
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_analyze_threshold_from_the_config_and_the_flag(tiny_model, tmp_path):
    small_dataset(tmp_path / "dataset")
    extra = {"speaker_clustering": {"similarity_threshold": 1.0, "method": "threshold"}}
    assert run_analyze(tmp_path, tiny_model, config_extra=extra) == 0
    meta = json.loads((tmp_path / "out" / "positive_namelist.json").read_text())["_meta"]
    assert meta["threshold"] == 1.0 and meta["method"] == "threshold" and meta["linkage"] == "single"
    assert meta["counts"]["clusters"] == 9  # nothing is identical
    assert run_analyze(tmp_path, tiny_model, "--threshold", "-1") == 0
    meta = json.loads((tmp_path / "out" / "positive_namelist.json").read_text())["_meta"]
    assert meta["threshold"] == -1.0 and meta["counts"]["clusters"] == 1


@pytest.mark.parametrize(
    ("setup", "flags", "expected"),
    [
        ("empty", [], "No audio files were found for --dataset positive"),
        ("small", ["--n-clusters", "10"], "10 clusters were asked for"),
        ("broken", [], "None of the 2 audio file(s)"),
        ("small", ["--fail-on-leak"], "--fail-on-leak needs the training split manifest"),
        ("small", ["--dataset", "negative"], "No audio files were found for --dataset negative"),
    ],
)
def test_bad_input_is_one_clear_paragraph_and_exit_2(tiny_model, tmp_path, capsys, setup, flags, expected):
    data = tmp_path / "dataset"
    (data / "positive").mkdir(parents=True)
    if setup == "small":
        small_dataset(data)
    elif setup == "broken":
        (data / "positive" / "a.wav").write_bytes(b"junk")
        (data / "positive" / "b.flac").write_bytes(b"")
    assert run_analyze(tmp_path, tiny_model, *flags) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    if setup == "broken":
        assert "a.wav" in err and "b.flac" in err


def test_an_unreadable_split_manifest_skips_the_audit_or_fails_it(tiny_model, tmp_path, capsys):
    small_dataset(tmp_path / "dataset")
    (tmp_path / "processed").mkdir()
    (tmp_path / "processed" / "splits.json").write_text("{not json")
    assert run_analyze(tmp_path, tiny_model, "--n-clusters", "2") == 0
    assert "leakage audit: skipped: The training split manifest" in capsys.readouterr().out
    assert run_analyze(tmp_path, tiny_model, "--n-clusters", "2", "--fail-on-leak") == 2
    err = capsys.readouterr().err
    assert "splits.json could not be read" in err and "mww-prepare" in err


def test_cuda_without_a_gpu_is_a_clear_error(tiny_model, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    small_dataset(tmp_path / "dataset")
    assert run_analyze(tmp_path, tiny_model, "--device", "cuda") == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_too_many_clusters_for_the_usable_files(tiny_model, tmp_path, capsys):
    data = small_dataset(tmp_path / "dataset", speakers=1, per_speaker=2)
    (data / "positive" / "spk0" / "junk.wav").write_bytes(b"junk")
    assert run_analyze(tmp_path, tiny_model, "--n-clusters", "3") == 2
    err = capsys.readouterr().err
    assert "only 2 of the 3 files" in err and "junk.wav" in err and "Ask for at most 2 clusters" in err


def test_leakage_audit_from_the_split_manifest_and_fail_on_leak(tiny_model, tmp_path, capsys):
    build_dataset(tmp_path / "dataset", speakers=6, per_speaker=2, negatives=0)
    duplicate = tmp_path / "dataset" / "positive" / "spk05" / "copy_of_spk00.wav"
    duplicate.write_bytes((tmp_path / "dataset" / "positive" / "spk00" / "0.wav").read_bytes())
    config = make_config(tmp_path / "dataset")
    config.paths.processed_dir = tmp_path / "processed"
    result = ingest(config)
    splits = {c.speaker: c.split for c in result.of("positive")}
    assert len(set(splits.values())) > 1
    assert run_analyze(tmp_path, tiny_model, "--n-clusters", "1", "--fail-on-leak") == 1
    captured = capsys.readouterr()
    assert "leakage found" in captured.err
    text = (tmp_path / "out" / "positive_leakage_report.txt").read_text()
    assert "speaker_0001" in text and "clusters (voices) in more than one split: 1" in text
    if splits["spk00"] != splits["spk05"]:
        assert "identical file" in text and "copy_of_spk00.wav" in text
    assert "positive_leakage_report.txt" in (tmp_path / "out" / "positive_cluster_report.txt").read_text()
    # without --fail-on-leak the audit still runs (config default) but the exit status is 0
    assert run_analyze(tmp_path, tiny_model, "--n-clusters", "1") == 0
    # one cluster per clip: no voice crosses a split
    extra = {"speaker_clustering": {"near_duplicate_threshold": 1.0}}
    n = len(list((tmp_path / "dataset" / "positive").rglob("*.wav")))
    code = run_analyze(tmp_path, tiny_model, "--n-clusters", str(n), "--fail-on-leak", config_extra=extra)
    text = (tmp_path / "out" / "positive_leakage_report.txt").read_text()
    assert "clusters (voices) in more than one split: 0" in text
    assert code == (1 if splits["spk00"] != splits["spk05"] else 0)  # the identical copy is still a leak


def test_dataset_all_clusters_every_kind_together(tiny_model, tmp_path):
    data = small_dataset(tmp_path / "dataset", speakers=2, per_speaker=2)
    write(data / "negative" / "n0.wav", tone(1.0, 800))
    write(data / "hard_negative" / "h0.wav", tone(1.0, 820))
    assert run_analyze(tmp_path, tiny_model, "--dataset", "all", "--n-clusters", "2", "--max-files", "5") == 0
    namelist = json.loads((tmp_path / "out" / "all_namelist.json").read_text())
    assert namelist["_meta"]["counts"]["files"] == 5 and len(namelist["mappings"]) == 5
    assert set(namelist["_meta"]["dataset_dirs"]) == {"positive", "negative", "hard_negative"}
    assert (tmp_path / "out" / "all_cluster_report.txt").exists()


def test_analyze_then_apply_then_ingest_reads_the_speakers(tiny_model, tmp_path):
    from mww.cli.cluster_apply import main as apply_main

    data = small_dataset(tmp_path / "dataset")
    flat = data / "positive"
    for wav in list(flat.rglob("*.wav")):  # a dataset without speaker folders: what clustering is for
        wav.rename(flat / f"{wav.parent.name}_{wav.name}")
    for folder in [p for p in flat.iterdir() if p.is_dir()]:
        folder.rmdir()
    before = snapshot(data)
    assert run_analyze(tmp_path, tiny_model, "--n-clusters", "3") == 0
    namelist = tmp_path / "out" / "positive_namelist.json"
    mappings = json.loads(namelist.read_text())["mappings"]
    assert apply_main(["--namelist", str(namelist), "--output-dir", str(tmp_path / "out"), "--quiet"]) == 0
    config = make_config(data)
    config.paths.processed_dir = tmp_path / "processed"
    result = ingest(config)
    by_name = {c.path.name: c.speaker for c in result.of("positive")}
    assert by_name == {Path(k).name: v for k, v in mappings.items()}
    manifest = next((tmp_path / "out").glob("apply_manifest_*.json"))
    assert apply_main(["--undo", str(manifest), "--quiet"]) == 0
    assert snapshot(data) == before
    assert sorted(p.name for p in flat.iterdir()) == sorted(Path(k).name for k in mappings)


def test_the_base_modules_stay_free_of_tensorflow(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, mww.cluster.analyze, mww.cluster.speaker_tree, mww.cluster.leakage, mww.cluster.apply, "
        "mww.cluster.embeddings, "
        "mww.cli.cluster_analyze, mww.cli.cluster_apply; assert 'tensorflow' not in sys.modules; "
        "assert 'torch' not in sys.modules, 'torch is loaded only with a model'; print('ok')"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [os.environ.get("PYTHONPATH", "")] if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_dataset_reached_through_a_symlink_is_sorted_into_its_own_speaker_folders(tiny_model, tmp_path):
    from mww.cli.cluster_apply import main as apply_main

    small_dataset(tmp_path / "real" / "dataset", speakers=2, per_speaker=2)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real")
    assert run_analyze(link, tiny_model, "--n-clusters", "1") == 0
    namelist = link / "out" / "positive_namelist.json"
    assert apply_main(["--namelist", str(namelist), "--output-dir", str(link / "out"), "--quiet"]) == 0
    moved = sorted(p.relative_to(tmp_path / "real") for p in (tmp_path / "real").rglob("*.wav"))
    assert [p.parts[:3] for p in moved] == [("dataset", "positive", "speaker_0001")] * 4


def test_a_linked_recording_folder_is_analyzed_like_a_real_one_each_file_once(tiny_model, tmp_path, capsys):
    """Recordings linked in from elsewhere (twice, and with a link back up) count like the same
    recordings copied in, each real file once; a link that points nowhere is skipped by name."""
    copied = small_dataset(tmp_path / "copied" / "dataset")
    write(copied / "positive" / "mine" / "a.wav", tone(1.0, 900, seed=1))
    write(copied / "positive" / "mine" / "b.wav", tone(1.0, 950, seed=2))
    linked = small_dataset(tmp_path / "linked" / "dataset")
    elsewhere = tmp_path / "elsewhere" / "mine"
    write(elsewhere / "a.wav", tone(1.0, 900, seed=1))
    write(elsewhere / "b.wav", tone(1.0, 950, seed=2))
    (linked / "positive" / "mine").symlink_to(elsewhere, target_is_directory=True)
    (linked / "positive" / "spk0" / "again").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "up").symlink_to(linked / "positive", target_is_directory=True)
    (linked / "positive" / "spk1" / "unplugged.wav").symlink_to(tmp_path / "gone.wav")
    results = {}
    for name in ("copied", "linked"):
        assert run_analyze(tmp_path / name, tiny_model, "--n-clusters", "2") == 0
        out = capsys.readouterr().out
        namelist = json.loads((tmp_path / name / "out" / "positive_namelist.json").read_text())
        results[name] = (namelist["mappings"], out)
    mappings, out = results["linked"]
    real = sorted({os.path.realpath(p) for p in mappings})
    with capsys.disabled():
        print(
            f"\nlinked dataset: {len(mappings)} files analyzed, {len(real)} real files; copied: "
            f"{len(results['copied'][0])}"
        )
    assert len(mappings) == len(real) == len(results["copied"][0]) == 11
    assert "unplugged.wav" in out and "skipped 1 file" in out
    assert sorted(results["copied"][0].values()) == sorted(mappings.values())  # the same cluster sizes
