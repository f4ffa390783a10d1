"""Device-faithful evaluation of a checkpoint or an exported model on one split (`evaluate_model`, the
engine of `mww-evaluate`): the split's audio, the models run over it, recall in noise, and the gap
quantization opens between a checkpoint and its int8 export.

Every clip of the split is heard the way training validates it and the device runs it: positives,
negatives and hard negatives are streamed whole, after one model input window of silence and before
`mww.data.augment.STREAM_TAIL_S` of it (`mww.data.sources.clip_stream`), so every moment of the recording
is scored, and ambient recordings are streamed whole. The features are the device's front end over
that audio. An exported model runs in TFLite Micro, a checkpoint as the float Keras model
(`mww.evaluate.outputs`); `mww.evaluate.measure` measures the outputs as the device's detector hears them.

Recall in noise: the same positives, streamed the same way, with the dataset's background audio mixed
in all along at each of `mww.data.sources.NOISE_SNRS_DB`, scored at the same cutoff and window. The
mixing is AddBackgroundNoise, as augmentation does it; the SNR is the recording's power over its file
against the noise's (the added silence does not count). Clean clips say how well the model knows the
phrase; a device hears it over a room.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mww.config.schema import MwwConfig
from mww.data.sources import NOISE_SNRS_DB, EvalData
from mww.device.detection import detected_in
from mww.device.features import silence_output_u8
from mww.device.pymicro import check_rule
from mww.device.runtime import WakeWordModel
from mww.errors import MwwError
from mww.evaluate.measure import Evaluation, Settings, measure
from mww.evaluate.outputs import (
    Outputs,
    OutputsFn,
    keras_outputs_fn,
    run_outputs,
    tflite_outputs_fn,
)
from mww.evaluate.report import write_outputs

if TYPE_CHECKING:
    from mww.data.prepare import PreparedData

SPLITS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}


class EvaluateError(MwwError):
    """The evaluation cannot run as asked; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass
class _Run:
    """One model run over the split: what it is, the function that gave its outputs, the outputs."""

    kind: str
    path: str
    fn: OutputsFn
    out: Outputs


def evaluate_model(
    config: MwwConfig,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    tflite: str | os.PathLike[str] | None = None,
    manifest: str | os.PathLike[str] | None = None,
    split: str = "test",
    analyze: bool = False,
    output_dir: str | os.PathLike[str] | None = None,
    noise_snrs_db: Sequence[float] = NOISE_SNRS_DB,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    rule: str = "esphome",
) -> Evaluation:
    """Evaluate a checkpoint (float Keras) or an exported model (TFLite Micro) on one split.

    An exported model's cutoff and window come from `manifest`, by default `<tflite>.json` beside it.
    `analyze` needs a checkpoint: it also runs the int8 model (the given `tflite`, else an export of
    the checkpoint) on the same audio and reports the gap. `output_dir` gets calibration.json (the
    recommended operating point, which mww-export reads), det_curve.png and score_histogram.png.
    `noise_snrs_db`: also measure the positives' recall with the dataset's background audio mixed in
    at these SNRs (none: skip).
    Raises EvaluateError, ModelLoadError, CheckpointError, ExportError or ConfigError with a
    one-paragraph message.
    """
    from mww.model.plan import training_input_frames

    say = log or (lambda _m: None)
    ckpt = _checked_request(split, checkpoint, tflite, manifest, analyze, noise_snrs_db)
    stride = config.model.stride
    input_frames = training_input_frames(config.hardware, config.model)
    exported = exported_model(tflite, manifest, stride)
    prepared, data = load_split(config, split, input_frames, progress)
    say(
        f"{split} split: {len(data.positive_streams)} positives, {len(data.negative_streams)} negatives, "
        f"{len(data.hard_negative_streams)} hard negatives, {len(data.ambient_streams)} ambient recordings "
        f"({data.ambient_seconds / 60:.1f} min)"
    )
    float_run = _float_run(config, ckpt, data) if ckpt is not None else None
    int8_run = None
    if exported is not None or analyze:  # the given export, else the checkpoint's (--analyze)
        int8_run = _int8_run(config, exported, ckpt, data, input_frames, say)
    settings = replace(_settings(config, ckpt, exported), rule=check_rule(rule))
    main = int8_run if exported is not None else float_run
    assert main is not None

    noisy_streams, noise_note = positives_in_noise_streams(
        config, prepared, data, split, noise_snrs_db, progress, input_frames=input_frames
    )

    def measured_on(run: _Run) -> tuple[dict[str, Any], dict[float, list[np.ndarray]]]:
        noisy = {snr: run.fn(streams) for snr, streams in noisy_streams.items()}
        return measure(
            data,
            run.out,
            settings,
            input_frames=input_frames,
            stride=stride,
            target_fah=config.training.target_minimization,
            default=(config.export.probability_cutoff, config.export.sliding_window_size),
            noisy_positives=[o for outputs in noisy.values() for o in outputs],
            silence_u8=silence_output_u8(run.fn),
        ), noisy

    measured, noisy_outputs = measured_on(main)
    gap = None
    if analyze:
        assert float_run is not None and int8_run is not None
        float_m = measured if main is float_run else measured_on(float_run)[0]
        int8_m = measured if main is int8_run else measured_on(int8_run)[0]
        gap = _quantization_gap(float_m, int8_m, float_run.out, int8_run.out)
    noise = recall_in_noise(noisy_outputs, settings, stride)
    result = Evaluation(
        model={"kind": main.kind, "path": main.path, "input_frames": input_frames, "stride": stride},
        split=split,
        quantization_gap=gap,
        noise=noise,
        **measured,
    )
    _add_notes(result, noise_note)
    if output_dir is not None:
        result.files = write_outputs(result, Path(output_dir))
    return result


# --------------------------------------------------------------------------- what is asked


def _checked_request(
    split: str,
    checkpoint: str | os.PathLike[str] | None,
    tflite: str | os.PathLike[str] | None,
    manifest: str | os.PathLike[str] | None,
    analyze: bool,
    noise_snrs_db: Sequence[float],
) -> Path | None:
    """The checkpoint to evaluate, if any, once the request makes sense; EvaluateError when it does not."""
    if split not in SPLITS:
        raise EvaluateError(f"--split {split!r} is not a split; use one of train, val, test.")
    if checkpoint is None and tflite is None and manifest is None:
        raise EvaluateError(
            "Nothing to evaluate: pass --checkpoint (Keras weights) or --tflite (exported model)."
        )
    if analyze and checkpoint is None:
        raise EvaluateError(
            "--analyze compares the float checkpoint with its int8 export on the same audio, so it needs "
            "--checkpoint (add --tflite to compare with a model you already exported)."
        )
    bad_snrs = [snr for snr in noise_snrs_db if not math.isfinite(snr)]
    if bad_snrs:
        raise EvaluateError(
            f"--noise-snr {bad_snrs[0]} is not a number of decibels; give finite values such as 20 10."
        )
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and not ckpt.is_file():
        raise EvaluateError(
            f"The checkpoint {ckpt} does not exist. Pass a .weights.h5 file written by mww-train, for "
            "example checkpoints/best_weights.weights.h5."
        )
    return ckpt


def exported_model(
    tflite: str | os.PathLike[str] | None, manifest: str | os.PathLike[str] | None, stride: int
) -> WakeWordModel | None:
    """The exported model given (its manifest found beside it when not named), or None."""
    from mww.device.runtime import load_wake_word_model

    if tflite is not None and manifest is None and Path(tflite).with_suffix(".json").is_file():
        manifest = Path(tflite).with_suffix(".json")  # as mww-export writes it, and mww-verify finds it
    if tflite is None and manifest is None:
        return None
    exported = (
        load_wake_word_model(tflite, manifest) if tflite is not None else load_wake_word_model(manifest)  # type: ignore[arg-type]
    )
    if exported.stride != stride:
        raise EvaluateError(
            f"The model {exported.tflite_path} takes {exported.stride} frames per call but the config "
            f"has model.stride {stride}. Evaluate with the config (and override) that trained the model."
        )
    return exported


def _settings(config: MwwConfig, checkpoint: Path | None, model: WakeWordModel | None) -> Settings:
    """The manifest's settings for a model; for a checkpoint its calibration.json, else the config."""
    if model is not None:
        where = f"the manifest {model.manifest_path}" if model.manifest_path else "the command line"
        return Settings(model.probability_cutoff, model.sliding_window_size, where)
    from mww.export.manifest import load_calibration

    assert checkpoint is not None
    found = load_calibration(config, checkpoint)
    return Settings(found.probability_cutoff, found.sliding_window_size, found.source)


def load_split(
    config: MwwConfig, split: str, input_frames: int, progress: bool = False
) -> tuple[PreparedData, EvalData]:
    """The prepared dataset and the evaluation set of `split` (train, val or test); EvaluateError when
    it cannot be measured."""
    from mww.data.prepare import prepare_data
    from mww.data.sources import eval_data

    prepared = prepare_data(config, progress=progress)
    data = eval_data(config, prepared, SPLITS[split], input_frames, progress=progress)
    if not data.positive_streams:
        raise EvaluateError(
            f"The {split} split of the dataset has no positive clips to evaluate (positive folder "
            f"{config.paths.positive_dir}; splits in {Path(config.paths.processed_dir) / 'splits.json'}). "
            "Evaluate another split with --split, or add speakers so every split gets some."
        )
    if not data.ambient_streams and not data.negative_streams:
        raise EvaluateError(
            f"The {split} split has no negative clips and no ambient recordings, so false activations "
            f"cannot be measured. Add negatives ({config.paths.negative_dir}) or ambient recordings "
            f"({config.paths.ambient_dir}), or evaluate another split with --split."
        )
    return prepared, data


# --------------------------------------------------------------------------- the models over the split


def _float_run(config: MwwConfig, checkpoint: Path, data: EvalData) -> _Run:
    """The checkpoint as the float Keras model over every stream of the split."""
    from mww.train.checkpoints import load_checkpoint

    fn = keras_outputs_fn(load_checkpoint(checkpoint, config), config.model)
    return _Run("checkpoint (float Keras model)", str(checkpoint), fn, run_outputs(data, fn))


def _int8_run(
    config: MwwConfig,
    exported: WakeWordModel | None,
    checkpoint: Path | None,
    data: EvalData,
    input_frames: int,
    say: Callable[[str], None],
) -> _Run:
    """The exported model in TFLite Micro over every stream of the split; without one, the checkpoint's
    int8 export (for --analyze), made in a folder that is gone afterwards."""
    from mww.device.runtime import load_wake_word_model

    with tempfile.TemporaryDirectory(prefix="mww-evaluate-") as tmp:
        if exported is None:
            assert checkpoint is not None
            exported = load_wake_word_model(_quantized_twin(checkpoint, config, Path(tmp), say))
        fn = tflite_outputs_fn(exported, input_frames)
        return _Run("tflite (int8, TFLite Micro)", str(exported.tflite_path), fn, run_outputs(data, fn))


def _quantized_twin(checkpoint: Path, config: MwwConfig, folder: Path, say: Callable[[str], None]) -> Path:
    """Export the checkpoint to int8 in `folder` (for --analyze); returns the manifest."""
    from mww.export.convert import convert_model_saved

    say("exporting the checkpoint to int8 to measure what quantization costs")
    result = convert_model_saved(checkpoint, folder, "analyze", config, quantize=True)
    return result.manifest_path


def _quantization_gap(
    float_m: dict[str, Any], int8_m: dict[str, Any], f_out: Outputs, q_out: Outputs
) -> dict[str, Any]:
    """How far the int8 model's outputs are from the float model's on the same audio, and what that
    does to recall, FA/h and the recommended operating point."""
    diffs = np.concatenate(
        [
            np.abs(a.astype(np.int64) - b.astype(np.int64))
            for a, b in zip(f_out.all(), q_out.all(), strict=True)
        ]
    )
    keys = ("recall", "fah", "false_activations")
    return {
        "output_difference_uint8": {
            "mean": float(diffs.mean()) if diffs.size else 0.0,
            "p99": float(np.percentile(diffs, 99)) if diffs.size else 0.0,
            "max": int(diffs.max(initial=0)),
            "outputs_compared": int(diffs.size),
        },
        "float": {k: float_m["at_settings"][k] for k in keys},
        "int8": {k: int8_m["at_settings"][k] for k in keys},
        "recall_gap": int8_m["at_settings"]["recall"] - float_m["at_settings"]["recall"],
        "fah_gap": int8_m["at_settings"]["fah"] - float_m["at_settings"]["fah"],
        "float_recommended": float_m["recommended"],
        "int8_recommended": int8_m["recommended"],
    }


# --------------------------------------------------------------------------- recall in noise, notes


def positives_in_noise_streams(
    config: MwwConfig,
    prepared: PreparedData,
    data: EvalData,
    split: str,
    snrs_db: Sequence[float],
    progress: bool = False,
    *,
    input_frames: int,
) -> tuple[dict[float, list[np.ndarray]], str | None]:
    """The split's positive streams with the dataset's background audio mixed in at each SNR (in the
    order of `data.positive_paths`), and a note when there is no background audio to mix in."""
    from mww.data.augment import augmentation_files
    from mww.data.sources import positives_in_noise

    if not snrs_db:
        return {}, None
    background, _ = augmentation_files(config)
    if not background:
        return {}, (
            f"recall in noise was not measured: no background audio in {config.paths.background_dir} (or "
            "augmentation.background_paths); add recordings of everyday noise there"
        )
    noisy = {}
    for snr in snrs_db:
        streams = positives_in_noise(
            config, prepared, SPLITS[split], float(snr), background, input_frames, progress
        )
        noisy[float(snr)] = [streams[p] for p in data.positive_paths if p in streams]
    return noisy, None


def recall_in_noise(
    noisy_outputs: dict[float, list[np.ndarray]], settings: Settings, stride: int
) -> list[dict[str, Any]]:
    """Recall of the positives with background audio mixed in, at each SNR and the evaluated settings
    (the ESP32's detector): what a room does to the model. One row per SNR."""
    rows = []
    for snr, outputs in noisy_outputs.items():
        hits = detected_in(
            outputs,
            settings.probability_cutoff,
            settings.sliding_window_size,
            stride=stride,
            armed_at_start=True,
        )
        rows.append(
            {
                "snr_db": snr,
                "clips": len(hits),
                "detected": int(sum(hits)),
                "recall": sum(hits) / len(hits) if hits else 0.0,
            }
        )
    return rows


def _add_notes(result: Evaluation, noise_note: str | None) -> None:
    """Why recall in noise is missing, and the caution calibrating on the test split calls for."""
    if noise_note:
        result.notes.append(noise_note)
    if result.split == "test":
        result.notes.append(
            "calibration chosen on the test split makes the test numbers optimistic: choose the cutoff on "
            "--split val and report the test numbers at it"
        )
