"""generate → train → export → stream through TFLite Micro: the whole path on a small dataset.

A smaller version of the demo: a few espeak voices, a small MixedNet and a few hundred steps.
Every held-out clip is streamed through the exported int8 model in TFLite Micro as the device
runs it; the output at the decision point (0.2 s after the clip's sound ends) must rank the held-out
voices' wake words above their negatives and confusable phrases (AUC), far from the 0.5 of a
trainer that learns nothing.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest

from mww.config.load import config_from_dict, deep_merge, load_full_config
from mww.data.prepare import prepare_data
from mww.data.sources import NOISE_SNRS_DB, eval_data
from mww.device.audio import load_audio, to_pcm16, write_wav
from mww.device.constants import SAMPLE_RATE_HZ
from mww.device.detection import cutoff_to_uint8, detect
from mww.device.runtime import invocation_seconds
from mww.evaluate.outputs import first_scored_invocation
from mww.evaluate.run import evaluate_model
from mww.export.convert import convert_model_saved, tflm_stream
from mww.synth.dataset import generate_dataset
from mww.train.metrics import auc_roc
from mww.train.trainer import Trainer

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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Generate a small demo dataset, train a small model on it and export the last checkpoint."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        return _train_and_export(tmp_path)


def _train_and_export(tmp_path):
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
    return summary, config, result, last, exported


def test_generate_train_export_stream(trained):
    summary, config, result, _, exported = trained
    manifest = json.loads(exported.manifest_path.read_text())["micro"]
    cutoff, window = manifest["probability_cutoff"], manifest["sliding_window_size"]

    prepared = prepare_data(config, progress=False)
    test = eval_data(config, prepared, "test", exported.input_frames)
    held_out = set(summary.held_out_speakers)
    assert held_out and all(p.parent.name in held_out for p in test.positive_paths)
    model_bytes, stride = exported.tflite_path.read_bytes(), config.model.stride

    def outputs(features):
        return tflm_stream(model_bytes, features, manifest["tensor_arena_size"], stride)

    # The decision point: each clip's output 0.2 s after its last sound (where training decides on
    # it), `silence_after` invocations before the end of the recording it is streamed as.
    pos_out = [outputs(f) for f in test.positive_streams]
    neg_out = [outputs(f) for f in test.negative_streams]
    labels = [1] * len(pos_out) + [0] * len(neg_out)
    back = test.silence_after[: len(pos_out) + len(neg_out)]
    auc = auc_roc(labels, [int(o[-1 - b]) for o, b in zip(pos_out + neg_out, back, strict=True)])
    peak_auc = auc_roc(labels, [int(o.max()) for o in pos_out + neg_out])
    print(
        f"\nend to end: step {result.last_step}, manifest cutoff {cutoff}, window {window}; held-out voices "
        f"through TFLite Micro (int8), {len(pos_out)} positives vs {len(neg_out)} negatives: AUC at the "
        f"decision point {auc:.3f}, AUC of the peak over the whole clip {peak_auc:.3f}"
    )
    assert auc >= MIN_AUC


def test_checkpoint_and_tflite_evaluations_agree_within_the_reported_gap(trained):
    """mww-evaluate on the checkpoint (--analyze) and on its export run the same int8 path, and the int8
    model decides as the float model does."""
    _, config, _, last, exported = trained
    keras = evaluate_model(config, checkpoint=last, analyze=True, split="test")
    tflite = evaluate_model(
        config, tflite=exported.tflite_path, manifest=exported.manifest_path, split="test"
    )
    gap = keras.quantization_gap
    assert gap is not None
    keys = ("recall", "fah", "false_activations")
    assert (keras.at_settings["probability_cutoff"], keras.at_settings["sliding_window_size"]) == (
        tflite.at_settings["probability_cutoff"],
        tflite.at_settings["sliding_window_size"],
    )
    assert {k: tflite.at_settings[k] for k in keys} == gap["int8"]
    assert {k: keras.at_settings[k] for k in keys} == gap["float"]
    assert tflite.at_settings["recall"] - keras.at_settings["recall"] == pytest.approx(gap["recall_gap"])
    assert tflite.at_settings["fah"] - keras.at_settings["fah"] == pytest.approx(gap["fah_gap"])
    diff = gap["output_difference_uint8"]
    print(
        f"\nevaluate, test split at cutoff {tflite.at_settings['probability_cutoff']} window "
        f"{tflite.at_settings['sliding_window_size']}: float recall {keras.at_settings['recall']:.3f} / "
        f"{keras.at_settings['fah']:.2f} FA/h, int8 recall {tflite.at_settings['recall']:.3f} / "
        f"{tflite.at_settings['fah']:.2f} FA/h; outputs differ by mean {diff['mean']:.2f}, max "
        f"{diff['max']} steps; int8 recall in noise "
        + ", ".join(f"{r['recall']:.3f} at {r['snr_db']:g} dB" for r in tflite.noise)
    )
    # Settled: the int8 model must make the float model's decisions (recall within 1 point, FA/h within
    # 0.5 on the same audio); per-output uint8 differences are reported above, not asserted.
    assert abs(gap["recall_gap"]) <= 0.01 and abs(gap["fah_gap"]) <= 0.5
    # the generated dataset has background audio: every test positive is also heard over it
    assert [r["clips"] for r in tflite.noise] == [tflite.counts["positives"]] * len(NOISE_SNRS_DB)


def test_evaluate_detection_times_match_pymicro_wakeword(trained, tmp_path):
    """The same exported model in pymicro-wakeword (TFLite, its own front-end wrapper) on the same
    audio, a short set of held-out wake words: through the device's detector, every detection lands
    within one 30 ms step of mww-evaluate's."""
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures

    summary, config, _, _, exported = trained
    held_out = set(summary.held_out_speakers)
    clips = sorted(p for p in (summary.output_dir / "positive").rglob("*.wav") if p.parent.name in held_out)
    rng = np.random.default_rng(0)
    parts = [np.zeros(int(1.5 * SAMPLE_RATE_HZ), np.float32)]
    for clip in clips[:10]:
        parts += [
            load_audio(clip),
            (0.003 * rng.standard_normal(int(2.5 * SAMPLE_RATE_HZ))).astype(np.float32),
        ]
    clip_set = write_wav(tmp_path / "clip_set" / "clip_set.wav", np.concatenate(parts))
    paths = {"ambient_dir": str(clip_set.parent), "processed_dir": str(tmp_path / "processed")}
    cfg = config_from_dict(deep_merge(config.to_dict(), {"paths": paths}))
    ours = evaluate_model(cfg, manifest=exported.manifest_path, split="val")  # one recording: validation
    settings = ours.at_settings
    cutoff, window, stride = settings["probability_cutoff"], settings["sliding_window_size"], cfg.model.stride
    mine = [e["time_s"] for e in ours.events if e["source"] == "ambient"]

    # pymicro-wakeword's raw outputs (window 1), then the device's detector at the same settings.
    manifest = json.loads(exported.manifest_path.read_text())
    manifest["micro"]["sliding_window_size"] = 1
    shutil.copy(exported.tflite_path, tmp_path / manifest["model"])
    (tmp_path / "raw.json").write_text(json.dumps(manifest))
    model, frontend = MicroWakeWord.from_config(tmp_path / "raw.json"), MicroWakeWordFeatures()
    raw = []
    for i, features in enumerate(frontend.process_streaming(to_pcm16(load_audio(clip_set)).tobytes())):
        p = model.process_streaming_prob(features)
        if (i + 1) % model.stride == 0:
            raw.append(round(p * 256))
    first = first_scored_invocation(ours.model["input_frames"], stride)
    theirs = [
        round(float(invocation_seconds(k + first, stride)), 3)
        for k in detect(np.asarray(raw[first:], dtype=np.uint8), cutoff, window, stride=stride)
    ]
    print(
        f"\n{len(clips[:10])} held-out wake words at cutoff {cutoff}, window {window}: mww-evaluate {mine}; "
        f"pymicro-wakeword {theirs}"
    )
    # pymicro-wakeword runs TFLite, not TFLite Micro: an output can differ by a step, so a window
    # mean right at the cutoff may fire in one and not the other. Every other detection must match.
    raw_u8 = np.asarray(raw, dtype=np.float64)
    cutoff_u8 = cutoff_to_uint8(cutoff)

    def pymicro_mean_at(time_s: float) -> float:
        k = first + round((time_s - float(invocation_seconds(first, stride))) / (stride * 0.010))
        return float(raw_u8[max(0, k - window + 1) : k + 1].mean())

    matched = [(a, b) for a in mine for b in theirs if abs(a - b) <= 0.030 + 1e-9]
    unmatched = [t for t in mine if all(t != a for a, _ in matched)]
    unmatched += [t for t in theirs if all(t != b for _, b in matched)]
    borderline = {t: round(pymicro_mean_at(t), 1) for t in unmatched}
    print(f"matched {len(matched)}; unmatched, with pymicro-wakeword's window mean there: {borderline}")
    assert len(matched) >= 3 and len(matched) == len({a for a, _ in matched}) == len({b for _, b in matched})
    assert all(abs(mean - cutoff_u8) <= 2 for mean in borderline.values())
