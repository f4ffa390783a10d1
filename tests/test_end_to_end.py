"""generate → train → export → stream through TFLite Micro: the whole path on a small dataset.

A smaller version of the demo: a few espeak voices, a small MixedNet and a few hundred steps.
Every held-out clip is streamed through the exported int8 model in TFLite Micro as the device
runs it; the output at the decision point (0.2 s after the clip ends) must rank the held-out
voices' wake words above their negatives and confusable phrases (AUC), far from the 0.5 of a
trainer that learns nothing.
"""

from __future__ import annotations

import io
import json

import pytest

from mww.config import load_full_config
from mww.export import convert_model_saved, tflm_stream
from mww.generate import generate_dataset
from mww.metrics import auc_roc
from mww.prepare import prepare_data
from mww.train import Trainer
from mww.train_data import eval_data

pytestmark = pytest.mark.slow

COUNTS = {
    "positives": 120,
    "negatives": 160,
    "hard_negatives": 40,
    "background": 4,
    "rirs": 2,
    "ambient_seconds": 120.0,
    "speakers": 10,
}
MIN_AUC = 0.8


def test_generate_train_export_stream(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = generate_dataset(tmp_path / "dataset", "hey computer", seed=3, progress=False, counts=COUNTS)
    override = tmp_path / "e2e.yaml"
    override.write_text(
        (tmp_path / "dataset" / "demo_override.yaml").read_text()
        + "model:\n  first_conv_filters: 16\n  pointwise_filters: '24,24,24'\n"
        "  mixconv_kernel_sizes: '[5],[9],[13]'\n  repeat_in_block: '1,1,1'\n  residual_connection: '0,0,0'\n"
        "training:\n  training_steps: [300, 100]\n  eval_step_interval: 100\n  batch_size: 32\n"
        "  negative_class_weight: [1.0, 1.0]\n  hard_negative_class_weight: [2.0, 2.0]\n"
        "performance:\n  num_workers: 1\n"
    )
    config = load_full_config("fast_test", override)
    result = Trainer(config, progress=False, out=io.StringIO()).train()
    assert result.best_checkpoint is not None

    # The last checkpoint: with a few hundred steps and under a minute of validation audio the
    # selection signal is too coarse to be the subject here (it has unit tests of its own).
    last = result.best_checkpoint.parent / f"checkpoint_step_{result.last_step}.weights.h5"
    exported = convert_model_saved(last, tmp_path / "models", "hey_computer", config)
    assert exported.verification is not None and exported.verification.ok
    manifest = json.loads(exported.manifest_path.read_text())["micro"]
    cutoff, window = manifest["probability_cutoff"], manifest["sliding_window_size"]

    prepared = prepare_data(config, progress=False)
    test = eval_data(config, prepared, "test", exported.input_frames)
    held_out = set(summary.held_out_speakers)
    assert held_out and all(p.parent.name in held_out for p in test.positive_paths)
    model_bytes, stride = exported.tflite_path.read_bytes(), config.model.stride

    def outputs(features):
        return tflm_stream(model_bytes, features, manifest["tensor_arena_size"], stride)

    # The decision point: the last output of each placed clip, when the clip ended 0.2 s ago.
    pos_out = [outputs(f) for f in test.positive_streams]
    neg_out = [outputs(f) for f in test.negative_streams]
    labels = [1] * len(pos_out) + [0] * len(neg_out)
    auc = auc_roc(labels, [int(o[-1]) for o in pos_out + neg_out])
    peak_auc = auc_roc(labels, [int(o.max()) for o in pos_out + neg_out])
    print(
        f"\nend to end: step {result.last_step}, manifest cutoff {cutoff}, window {window}; held-out voices "
        f"through TFLite Micro (int8), {len(pos_out)} positives vs {len(neg_out)} negatives: AUC at the "
        f"decision point {auc:.3f}, AUC of the peak over the whole clip {peak_auc:.3f}"
    )
    assert auc >= MIN_AUC
