"""Device-faithful evaluation of a checkpoint or an exported model on one split (`mww-evaluate`).

Every clip of the split is heard the way training validates it and the device runs it: positives,
negatives and hard negatives are streamed whole, after one model input window of silence and before
`mww.data.augment.STREAM_TAIL_S` of it (`mww.data.sources.clip_stream`), so every moment of the recording
is scored, and ambient recordings are streamed whole. The features are the device's front end over
that audio; clip-level scores are read where training decides on each clip (just after its last
sound).

* an exported model (`--tflite`, optionally its manifest) runs in TFLite Micro on the device's int8
  inputs, invoked every `stride` frames (`mww.device.runtime`);
* a checkpoint runs as the float Keras model on the same windows (`mww.model.scoring`).

Outputs produced before the model's input window has filled once are not scored (they come from the
zeroed ring buffers of a fresh start, which a listening device does not have). The uint8 outputs then
go through the device's detector (`mww.device.detection`): sliding-window mean, integer cutoff, refractory
period. A positive clip is detected when a detection fires in it (heard by a detector that has been
listening). False activations per hour are counted over the ambient recordings (device starts) and the
negative clips (one utterance each), divided by their real durations, without the silence a stream
adds (`mww.train.metrics`).

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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mww.atomic import atomic_write_bytes, atomic_write_json
from mww.config.schema import ModelConfig, MwwConfig
from mww.data.sources import NOISE_SNRS_DB, EvalData
from mww.device.constants import OUTPUT_SCALE
from mww.device.detection import (
    cutoff_to_uint8,
    detect,
    detected_in,
    first_detection_sweep,
    format_cutoff,
    probabilities_to_uint8,
)
from mww.device.runtime import WakeWordModel, invocation_seconds, stream_outputs
from mww.errors import MwwError
from mww.train.checkpoints import CALIBRATION_FILE
from mww.train.metrics import (
    CALIBRATION_CUTOFFS,
    DEFAULT_CUTOFFS,
    OPERATING_POINT_WINDOWS,
    RecallFahCurve,
    classification_metrics,
    false_activation_streams,
    recommended_operating_point,
    sweep_recall_fah,
)

if TYPE_CHECKING:
    from mww.data.prepare import PreparedData

SPLITS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}
LISTED = 10  # worst positives and loudest false activations listed
EVENTS_LISTED = 1000  # detections on negative audio listed in full (--json), in file and time order
OutputsFn = Callable[[list[np.ndarray]], list[np.ndarray]]  # float feature streams → uint8 outputs of each


class EvaluateError(MwwError):
    """The evaluation cannot run as asked; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


# --------------------------------------------------------------------------- model outputs


def first_scored_invocation(input_frames: int, stride: int) -> int:
    """0-based index of the first invocation whose input window has filled once."""
    return -(-input_frames // stride) - 1


def tflite_outputs_fn(model: WakeWordModel, input_frames: int) -> OutputsFn:
    """TFLite Micro outputs of one device start, from the first invocation with a full window on."""
    skip = first_scored_invocation(input_frames, model.stride)
    return lambda streams: [stream_outputs(model, features)[skip:] for features in streams]


def keras_outputs_fn(model: Any, model_cfg: ModelConfig) -> OutputsFn:
    """The float Keras model's outputs on the same windows, as uint8 (the output quantization)."""
    from mww.model.streaming import sequence_scorer

    score = sequence_scorer(model, model_cfg)
    return lambda streams: [probabilities_to_uint8(p) for p in score(streams)]


@dataclass
class Outputs:
    """uint8 outputs per evaluated stream, aligned with the EvalData lists."""

    positives: list[np.ndarray]
    negatives: list[np.ndarray]
    hard_negatives: list[np.ndarray]
    ambient: list[np.ndarray]

    def all(self) -> list[np.ndarray]:
        """Every stream, in a fixed order (for comparing two models on the same audio)."""
        return [*self.positives, *self.negatives, *self.hard_negatives, *self.ambient]


def run_outputs(data: EvalData, outputs: OutputsFn) -> Outputs:
    """Run one model over every stream of an evaluation set."""
    return Outputs(
        positives=outputs(data.positive_streams),
        negatives=outputs(data.negative_streams),
        hard_negatives=outputs(data.hard_negative_streams),
        ambient=outputs(data.ambient_streams),
    )


# --------------------------------------------------------------------------- the measurements


@dataclass
class Settings:
    """The detector settings evaluated, and where they came from."""

    probability_cutoff: float
    sliding_window_size: int
    source: str


@dataclass
class Evaluation:
    """Everything one evaluation measured; `to_dict` is the --json object."""

    model: dict[str, Any]
    split: str
    counts: dict[str, Any]
    at_settings: dict[str, Any]
    classification: dict[str, float]
    recommended: dict[str, Any]
    equal_error: dict[str, Any]
    sweep: dict[str, Any]
    per_speaker: list[dict[str, Any]]
    per_source: dict[str, Any]
    peaks: dict[str, list[float]]
    worst_positives: list[dict[str, Any]]
    events: list[dict[str, Any]]
    loudest_false_activations: list[dict[str, Any]]
    quantization_gap: dict[str, Any] | None = None
    noise: list[dict[str, Any]] = field(default_factory=list)  # recall in noise, one row per SNR
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _mean_at(stream: np.ndarray, k: int, window: int) -> float:
    """The window mean the detector compared at output k, as a probability."""
    part = stream[max(0, k - window + 1) : k + 1].astype(np.float64)
    return float(part.sum() / window * OUTPUT_SCALE)


def peak_window_mean(stream: np.ndarray, window: int) -> tuple[float, int]:
    """Highest sliding-window mean of a stream (as a probability) and the output index it ends at."""
    means = np.convolve(stream.astype(np.float64), np.ones(window) / window, mode="valid")
    if means.size == 0:
        return 0.0, 0
    return float(means.max()) * OUTPUT_SCALE, int(np.argmax(means)) + window - 1


def _time_in_file(invocation: int, stride: int, offset_s: float) -> float:
    """Seconds into its file of a stream's invocation, the file starting `offset_s` into the stream."""
    return round(float(invocation_seconds(invocation, stride)) - offset_s, 3)


def _event_list(
    streams: list[np.ndarray],
    paths: list[Path],
    source: str,
    settings: Settings,
    stride: int,
    first: int,
    armed: bool,
    offsets: dict[Path, float] | None = None,
) -> list[dict[str, Any]]:
    """Every detection on these streams with its file, time in the file (`offsets`: where in its
    stream each file starts, 0 if not listed) and window mean."""
    events = []
    offsets = offsets or {}
    for stream, path in zip(streams, paths, strict=True):
        hits = detect(
            stream,
            settings.probability_cutoff,
            settings.sliding_window_size,
            stride=stride,
            armed_at_start=armed,
        )
        for k in hits:
            events.append(
                {
                    "file": str(path),
                    "source": source,
                    "time_s": _time_in_file(k + first, stride, offsets.get(path, 0.0)),
                    "probability": round(_mean_at(stream, k, settings.sliding_window_size), 4),
                }
            )
    return events


def _curves_dict(curves: list[RecallFahCurve]) -> dict[str, Any]:
    return {
        "cutoffs": [float(c) for c in curves[0].cutoffs],
        "windows": {
            str(c.window): {
                "recall": [round(float(r), 6) for r in c.recall],
                "false_rejection_rate": [round(1.0 - float(r), 6) for r in c.recall],
                "fah": [round(float(f), 6) for f in c.fah],
            }
            for c in curves
        },
    }


def _equal_error(out: Outputs, curves: list[RecallFahCurve], window: int, stride: int) -> dict[str, Any]:
    """Where the false rejection rate equals the rate of negative clips that fire, at `window`."""
    clips = [*out.negatives, *out.hard_negatives]
    curve = next(c for c in curves if c.window == window)
    frr = 1.0 - curve.recall
    if not clips:
        return {"window": window, "available": False, "reason": "no negative clips in the split"}
    fired = first_detection_sweep(clips, curve.cutoffs_u8, [window], stride=stride, armed_at_start=True)
    far = (fired[:, 0, :] >= 0).mean(axis=0)
    gap = np.abs(frr - far)
    gap[(curve.cutoffs <= 0.0) | (curve.cutoffs >= 1.0)] = np.inf  # cutoffs 0 and 1 never detect
    best = np.flatnonzero(gap == gap.min())[-1]  # ties: the higher cutoff
    return {
        "window": window,
        "available": True,
        "cutoff": float(curve.cutoffs[best]),
        "false_rejection_rate": float(frr[best]),
        "false_acceptance_rate": float(far[best]),
        "equal_error_rate": float((frr[best] + far[best]) / 2.0),
        "fah": float(curve.fah[best]),
    }


def decision_outputs(data: EvalData, out: Outputs) -> list[int]:
    """Each positive, negative and hard negative clip's output where training decides on it: just
    after its last sound, `data.silence_after` invocations before the end of its stream."""
    streams = [*out.positives, *out.negatives, *out.hard_negatives]
    back = data.silence_after or [0] * len(streams)
    return [int(s[max(0, s.size - 1 - b)]) if s.size else 0 for s, b in zip(streams, back, strict=True)]


def measure(
    data: EvalData,
    out: Outputs,
    settings: Settings,
    *,
    input_frames: int,
    stride: int,
    target_fah: float,
) -> dict[str, Any]:
    """Every measurement of one model's outputs on one evaluation set, as plain data."""
    first = first_scored_invocation(input_frames, stride)
    fa_streams, fa_hours = false_activation_streams(
        out.ambient, out.negatives, data.ambient_seconds, stride, data.negative_seconds
    )
    negative_hours = fa_hours - data.ambient_seconds / 3600.0
    common = {"stride": stride, "positives_armed_at_start": True, "check_duration": False}
    curves = sweep_recall_fah(
        out.positives,
        fa_streams,
        fa_hours,
        cutoffs=DEFAULT_CUTOFFS,
        windows=OPERATING_POINT_WINDOWS,
        **common,
    )
    # Calibration chooses among the inner cutoffs of the same sweep (0 and 1 never detect on the device).
    inner = np.isin(DEFAULT_CUTOFFS, CALIBRATION_CUTOFFS)
    calibration = [
        replace(
            c,
            cutoffs=c.cutoffs[inner],
            cutoffs_u8=c.cutoffs_u8[inner],
            recall=c.recall[inner],
            fah=c.fah[inner],
            ambient_events=c.ambient_events[inner],
        )
        for c in curves
    ]
    chosen = recommended_operating_point(calibration, target_fah)
    cutoff, window = settings.probability_cutoff, settings.sliding_window_size

    # Per stream, at the evaluated settings, heard by a detector that was listening.
    detected = detected_in(out.positives, cutoff, window, stride=stride, armed_at_start=True)
    hard_fired = detected_in(out.hard_negatives, cutoff, window, stride=stride, armed_at_start=True)
    ambient_events = _event_list(out.ambient, data.ambient_paths, "ambient", settings, stride, first, False)
    offsets = data.stream_offsets_s
    negative_events = _event_list(
        out.negatives, data.negative_paths, "negative", settings, stride, first, True, offsets
    )
    hard_events = _event_list(
        out.hard_negatives, data.hard_negative_paths, "hard_negative", settings, stride, first, True, offsets
    )
    false_events = ambient_events + negative_events
    recall = sum(detected) / len(detected)
    ambient_rows = []
    for path, seconds, stream in zip(data.ambient_paths, data.ambient_durations, out.ambient, strict=True):
        n = sum(e["file"] == str(path) for e in ambient_events)
        hours = seconds / 3600.0
        ambient_rows.append(
            {
                "file": str(path),
                "hours": round(hours, 6),
                "false_activations": n,
                "fah": round(n / hours, 4) if hours > 0 else None,
                "peak_probability": round(float(stream.max(initial=0)) * OUTPUT_SCALE, 4),
            }
        )

    speakers: dict[str, list[bool]] = {}
    for speaker, hit in zip(data.positive_speakers, detected, strict=True):
        speakers.setdefault(speaker, []).append(hit)
    per_speaker = sorted(
        (
            {"speaker": s, "clips": len(h), "detected": int(sum(h)), "recall": sum(h) / len(h)}
            for s, h in speakers.items()
        ),
        key=lambda row: (row["recall"], row["speaker"]),
    )
    worst = []
    for path, speaker, stream, hit in zip(
        data.positive_paths, data.positive_speakers, out.positives, detected, strict=True
    ):
        top, peak = peak_window_mean(stream, window)
        worst.append(
            {
                "file": str(path),
                "speaker": speaker,
                "detected": hit,
                "peak_probability": round(top, 4),
                "peak_time_s": _time_in_file(peak + first, stride, offsets.get(path, 0.0)),
            }
        )
    worst.sort(key=lambda row: (row["detected"], row["peak_probability"]))

    labels = np.array([1] * len(out.positives) + [0] * (len(out.negatives) + len(out.hard_negatives)))
    clip_scores = np.asarray(decision_outputs(data, out), dtype=np.float64) * OUTPUT_SCALE
    n_false = len(false_events)
    return {
        "counts": {
            "positives": len(out.positives),
            "negatives": len(out.negatives),
            "hard_negatives": len(out.hard_negatives),
            "ambient_recordings": len(out.ambient),
            "ambient_hours": data.ambient_seconds / 3600.0,
            "negative_hours": negative_hours,
            "fah_hours": fa_hours,
        },
        "at_settings": {
            "probability_cutoff": cutoff,
            "probability_cutoff_u8": cutoff_to_uint8(cutoff),
            "sliding_window_size": window,
            "settings_from": settings.source,
            "recall": recall,
            "false_rejection_rate": 1.0 - recall,
            "false_activations": n_false,
            "fah": n_false / fa_hours if fa_hours > 0 else math.inf,
            "hard_negative_false_detection_rate": (sum(hard_fired) / len(hard_fired)) if hard_fired else 0.0,
        },
        "classification": classification_metrics(labels, clip_scores) if len(set(labels.tolist())) else {},
        "recommended": {
            "probability_cutoff": chosen.cutoff,
            "sliding_window_size": chosen.window,
            "recall": chosen.recall,
            "fah": chosen.fah,
            "meets_target": chosen.meets_target,
            "target_fah": float(target_fah),
        },
        "equal_error": _equal_error(out, curves, chosen.window, stride),
        "sweep": _curves_dict(curves),
        "per_speaker": per_speaker,
        "per_source": {
            "positive": {"clips": len(detected), "detected": int(sum(detected))},
            "negative": {
                "clips": len(out.negatives),
                "clips_with_detection": len({e["file"] for e in negative_events}),
                "false_activations": len(negative_events),
                "hours": negative_hours,
            },
            "hard_negative": {
                "clips": len(hard_fired),
                "clips_with_detection": int(sum(hard_fired)),
                "false_detection_rate": (sum(hard_fired) / len(hard_fired)) if hard_fired else 0.0,
            },
            "ambient": ambient_rows,
        },
        "peaks": {
            kind: [round(peak_window_mean(x, window)[0], 4) for x in streams]
            for kind, streams in (
                ("positive", out.positives),
                ("negative", out.negatives),
                ("hard_negative", out.hard_negatives),
            )
        },
        "worst_positives": worst[:LISTED],
        "events": sorted(false_events + hard_events, key=lambda e: (e["source"], e["file"], e["time_s"]))[
            :EVENTS_LISTED
        ],
        "loudest_false_activations": sorted(false_events + hard_events, key=lambda e: -e["probability"])[
            :LISTED
        ],
    }


# --------------------------------------------------------------------------- the command


def _settings(config: MwwConfig, checkpoint: Path | None, model: WakeWordModel | None) -> Settings:
    """The manifest's settings for a model; for a checkpoint its calibration.json, else the config."""
    if model is not None:
        where = f"the manifest {model.manifest_path}" if model.manifest_path else "the command line"
        return Settings(model.probability_cutoff, model.sliding_window_size, where)
    from mww.export.convert import load_calibration

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


def recall_in_noise(
    config: MwwConfig,
    prepared: PreparedData,
    data: EvalData,
    split: str,
    settings: Settings,
    outputs: OutputsFn,
    snrs_db: Sequence[float],
    progress: bool = False,
    *,
    input_frames: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Recall of the split's positives with background audio mixed in, at each SNR and the evaluated
    settings: what a room does to the model. Returns (one row per SNR, a note when not measured)."""
    from mww.data.augment import augmentation_files
    from mww.data.sources import positives_in_noise

    if not snrs_db:
        return [], None
    background, _ = augmentation_files(config)
    if not background:
        return [], (
            f"recall in noise was not measured: no background audio in {config.paths.background_dir} (or "
            "augmentation.background_paths); add recordings of everyday noise there"
        )
    rows = []
    for snr in snrs_db:
        streams = positives_in_noise(
            config, prepared, SPLITS[split], float(snr), background, input_frames, progress
        )
        paths = [p for p in data.positive_paths if p in streams]
        hits = detected_in(
            outputs([streams[p] for p in paths]),
            settings.probability_cutoff,
            settings.sliding_window_size,
            stride=config.model.stride,
            armed_at_start=True,
        )
        rows.append(
            {
                "snr_db": float(snr),
                "clips": len(hits),
                "detected": int(sum(hits)),
                "recall": sum(hits) / len(hits) if hits else 0.0,
            }
        )
    return rows, None


def _quantized_twin(checkpoint: Path, config: MwwConfig, folder: Path, say: Callable[[str], None]) -> Path:
    """Export the checkpoint to int8 in `folder` (for --analyze); returns the manifest."""
    from mww.export.convert import convert_model_saved

    say("exporting the checkpoint to int8 to measure what quantization costs")
    result = convert_model_saved(checkpoint, folder, "analyze", config, quantize=True)
    return result.manifest_path


def _gap(float_m: dict[str, Any], int8_m: dict[str, Any], f_out: Outputs, q_out: Outputs) -> dict[str, Any]:
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
) -> Evaluation:
    """Evaluate a checkpoint (float Keras) or an exported model (TFLite Micro) on one split.

    An exported model's cutoff and window come from `manifest`, by default `<tflite>.json` beside it.
    `analyze` needs a checkpoint: it also runs the int8 model (the given `tflite`, else an export of
    the checkpoint) on the same audio and reports the gap. `output_dir` gets calibration.json (the
    recommended operating point, which mww-export reads), det_curve.png and score_histogram.png.
    `noise_snrs_db`: also measure the positives' recall with the dataset's background audio mixed in
    at these SNRs (none: skip).
    Raises EvaluateError, ModelLoadError, ExportError or ConfigError with a one-paragraph message.
    """
    from mww.device.runtime import load_wake_word_model
    from mww.model.builder import training_input_frames

    say = log or (lambda _m: None)
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
    if tflite is not None and manifest is None and Path(tflite).with_suffix(".json").is_file():
        manifest = Path(tflite).with_suffix(".json")  # as mww-export writes it, and mww-verify finds it
    stride = config.model.stride
    input_frames = training_input_frames(config.hardware, config.model)
    exported = None
    if tflite is not None or manifest is not None:
        exported = (
            load_wake_word_model(tflite, manifest) if tflite is not None else load_wake_word_model(manifest)  # type: ignore[arg-type]
        )
        if exported.stride != stride:
            raise EvaluateError(
                f"The model {exported.tflite_path} takes {exported.stride} frames per call but the config "
                f"has model.stride {stride}. Evaluate with the config (and override) that trained the model."
            )
    evaluated_tflite = exported is not None and not (analyze and tflite is None and manifest is None)
    prepared, data = load_split(config, split, input_frames, progress)
    say(
        f"{split} split: {len(data.positive_streams)} positives, {len(data.negative_streams)} negatives, "
        f"{len(data.hard_negative_streams)} hard negatives, {len(data.ambient_streams)} ambient recordings "
        f"({data.ambient_seconds / 60:.1f} min)"
    )
    target = config.training.target_minimization
    kw = {"input_frames": input_frames, "stride": stride, "target_fah": target}

    keras_out = None
    keras_m = None
    keras_fn: OutputsFn | None = None
    if ckpt is not None:
        from mww.export.convert import load_checkpoint

        keras_fn = keras_outputs_fn(load_checkpoint(ckpt, config), config.model)
        keras_out = run_outputs(data, keras_fn)
    with tempfile.TemporaryDirectory(prefix="mww-evaluate-") as tmp:
        if analyze and exported is None:
            assert ckpt is not None
            exported = load_wake_word_model(_quantized_twin(ckpt, config, Path(tmp), say))
        tflite_fn = tflite_outputs_fn(exported, input_frames) if exported else None
        tflite_out = run_outputs(data, tflite_fn) if tflite_fn else None
    settings = _settings(config, ckpt, exported if evaluated_tflite else None)
    if ckpt is not None and evaluated_tflite is False:
        assert keras_out is not None and keras_fn is not None
        main_out, main_fn = keras_out, keras_fn
        kind, path = "checkpoint (float Keras model)", str(ckpt)
    else:
        assert tflite_out is not None and tflite_fn is not None and exported is not None
        main_out, main_fn = tflite_out, tflite_fn
        kind, path = "tflite (int8, TFLite Micro)", str(exported.tflite_path)
    measured = measure(data, main_out, settings, **kw)
    gap = None
    if analyze:
        assert keras_out is not None and tflite_out is not None
        keras_m = measured if main_out is keras_out else measure(data, keras_out, settings, **kw)
        int8_m = measured if main_out is tflite_out else measure(data, tflite_out, settings, **kw)
        gap = _gap(keras_m, int8_m, keras_out, tflite_out)
    noise, noise_note = recall_in_noise(
        config, prepared, data, split, settings, main_fn, noise_snrs_db, progress, input_frames=input_frames
    )
    result = Evaluation(
        model={"kind": kind, "path": path, "input_frames": input_frames, "stride": stride},
        split=split,
        quantization_gap=gap,
        noise=noise,
        **measured,
    )
    if noise_note:
        result.notes.append(noise_note)
    if split == "test":
        result.notes.append(
            "calibration chosen on the test split makes the test numbers optimistic: choose the cutoff on "
            "--split val and report the test numbers at it"
        )
    if output_dir is not None:
        result.files = write_outputs(result, Path(output_dir))
    return result


# --------------------------------------------------------------------------- files and the report


def calibration_data(result: Evaluation) -> dict[str, Any] | None:
    """calibration.json content (what mww-export reads), or None when no usable cutoff was found."""
    rec = result.recommended
    if not 0.0 < rec["probability_cutoff"] < 1.0 or rec["recall"] <= 0.0:
        return None
    return {
        "probability_cutoff": rec["probability_cutoff"],
        "sliding_window_size": rec["sliding_window_size"],
        "recall": rec["recall"],
        "fah": rec["fah"],
        "meets_target": rec["meets_target"],
        "target_fah": rec["target_fah"],
        "split": result.split,
        "model": result.model["path"],
        "source": "mww-evaluate",
    }


def write_outputs(result: Evaluation, folder: Path) -> dict[str, str]:
    """calibration.json, det_curve.png and score_histogram.png in `folder`; returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    calibration = calibration_data(result)
    if calibration is not None:
        files["calibration"] = str(atomic_write_json(folder / CALIBRATION_FILE, calibration))
    else:
        result.notes.append("no cutoff detects any positive: calibration.json was not written")
    files["det_curve"] = str(atomic_write_bytes(folder / "det_curve.png", det_curve_png(result)))
    files["score_histogram"] = str(atomic_write_bytes(folder / "score_histogram.png", histogram_png(result)))
    return files


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.subplots(figsize=(7, 4.5), dpi=100)


def _png(plt: Any, fig: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def det_curve_png(result: Evaluation) -> bytes:
    """DET curve: false rejection rate against false activations per hour, a few windows."""
    plt, (fig, ax) = _figure()
    rec = result.recommended
    shown = sorted({1, 5, 10, rec["sliding_window_size"]} & set(map(int, result.sweep["windows"])))
    inner = [i for i, c in enumerate(result.sweep["cutoffs"]) if 0.0 < c < 1.0]  # 0 and 1 never detect
    for window in shown:
        w = result.sweep["windows"][str(window)]
        fah = [w["fah"][i] for i in inner]
        frr = [w["false_rejection_rate"][i] for i in inner]
        ax.plot(fah, frr, marker=".", ms=3, label=f"window {window}")
    ax.plot([rec["fah"]], [1.0 - rec["recall"]], "k*", ms=12, label="recommended")
    ax.axvline(rec["target_fah"], color="grey", ls="--", lw=1, label=f"target {rec['target_fah']} FA/h")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlim(left=0.0)
    ax.set_xlabel("false activations per hour")
    ax.set_ylabel("false rejection rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"DET curve ({result.split} split)")
    ax.legend(fontsize=8)
    return _png(plt, fig)


def histogram_png(result: Evaluation) -> bytes:
    """Highest window mean per clip: positives against negatives and hard negatives."""
    plt, (fig, ax) = _figure()
    for kind, label in (
        ("negative", "negatives"),
        ("hard_negative", "hard negatives"),
        ("positive", "positives"),
    ):
        values = result.peaks.get(kind) or []
        if values:
            ax.hist(values, bins=40, range=(0, 1), alpha=0.55, label=f"{label} ({len(values)})")
    ax.axvline(result.at_settings["probability_cutoff"], color="k", ls="--", lw=1, label="cutoff")
    ax.set_xlabel("window mean probability")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    return _png(plt, fig)


def _pct(value: float) -> str:
    return f"{100.0 * value:5.1f} %"


def _fah(value: float) -> str:
    return "inf" if not math.isfinite(value) else f"{value:.2f}"


def format_report(result: Evaluation) -> list[str]:
    """The human report: settings, the key figures, the recommendation, breakdowns, worst cases."""
    at, rec, counts = result.at_settings, result.recommended, result.counts
    eer = result.equal_error
    lines = [
        f"model     {result.model['path']}  [{result.model['kind']}]",
        f"split     {result.split}: {counts['positives']} positives, {counts['negatives']} negatives, "
        f"{counts['hard_negatives']} hard negatives, {counts['ambient_recordings']} ambient recordings",
        f"FA/h over {counts['fah_hours'] * 60:.1f} min of audio ({counts['ambient_hours'] * 60:.1f} min "
        f"ambient + {counts['negative_hours'] * 60:.1f} min negatives)",
        "",
        f"at cutoff {format_cutoff(at['probability_cutoff'])} (uint8 {at['probability_cutoff_u8']}), window "
        f"{at['sliding_window_size']}  (from {at['settings_from']})",
        f"  {'recall':<34}{_pct(at['recall'])}",
        f"  {'false rejection rate':<34}{_pct(at['false_rejection_rate'])}",
        f"  {'false activations per hour':<34}{_fah(at['fah'])}  ({at['false_activations']} events)",
        f"  {'hard negatives detected':<34}{_pct(at['hard_negative_false_detection_rate'])}",
    ]
    cls = result.classification
    if cls:
        lines.append(
            f"  clip level: accuracy {cls['accuracy']:.3f}  precision {cls['precision']:.3f}  recall "
            f"{cls['recall']:.3f}  F1 {cls['f1']:.3f}  AUC-ROC {cls['auc_roc']:.3f}"
        )
    for row in result.noise:
        label = f"recall in noise, {row['snr_db']:g} dB SNR"
        lines.append(f"  {label:<34}{_pct(row['recall'])}  ({row['detected']}/{row['clips']})")
    verdict = "meets" if rec["meets_target"] else "MISSES"
    lines += [
        "",
        f"recommended: cutoff {format_cutoff(rec['probability_cutoff'])}, window "
        f"{rec['sliding_window_size']}: recall {_pct(rec['recall'])}, {_fah(rec['fah'])} FA/h ({verdict} "
        f"the target of {rec['target_fah']} FA/h)",
    ]
    if eer.get("available"):
        lines.append(
            f"equal error (window {eer['window']}): cutoff {format_cutoff(eer['cutoff'])}, FRR "
            f"{_pct(eer['false_rejection_rate'])} = negative clips detected "
            f"{_pct(eer['false_acceptance_rate'])}, {_fah(eer['fah'])} FA/h"
        )
    gap = result.quantization_gap
    if gap:
        diff = gap["output_difference_uint8"]
        lines += [
            "",
            f"quantization (int8 TFLite Micro vs float, same audio, {diff['outputs_compared']} outputs): "
            f"mean {diff['mean']:.2f}, p99 {diff['p99']:.1f}, max {diff['max']} uint8 steps",
            f"  recall {_pct(gap['float']['recall'])} float -> {_pct(gap['int8']['recall'])} int8; FA/h "
            f"{_fah(gap['float']['fah'])} -> {_fah(gap['int8']['fah'])}",
        ]
    lines += ["", "cutoff sweep at the recommended window (cutoff: recall, FA/h)"]
    sweep = result.sweep["windows"][str(rec["sliding_window_size"])]
    row = []
    for i, cutoff in enumerate(result.sweep["cutoffs"]):
        if 0.0 < cutoff < 1.0 and (round(cutoff * 100) % 10 == 0 or cutoff >= 0.9):
            row.append(f"{format_cutoff(cutoff)}: {sweep['recall'][i]:.2f}, {_fah(sweep['fah'][i])}")
    lines += ["  " + "   ".join(row[i : i + 4]) for i in range(0, len(row), 4)]
    lines += ["", "per speaker (lowest recall first)"]
    lines += [
        f"  {r['speaker']:<28}{r['detected']:>4}/{r['clips']:<4}{_pct(r['recall'])}"
        for r in result.per_speaker
    ]
    lines += ["", "per ambient recording"]
    lines += [
        f"  {Path(r['file']).name:<40}{r['hours'] * 60:7.1f} min  {r['false_activations']:>3} events  "
        f"peak {r['peak_probability']:.2f}"
        for r in result.per_source["ambient"]
    ]
    lines += ["", "worst positives"]
    lines += [
        f"  {'detected' if r['detected'] else 'MISSED  '}  peak {r['peak_probability']:.2f} at "
        f"{r['peak_time_s']:.2f} s  {r['file']}"
        for r in result.worst_positives
    ]
    lines += ["", "loudest false activations"]
    lines += [
        f"  {r['probability']:.2f}  {r['source']:<13} {r['time_s']:8.2f} s  {r['file']}"
        for r in result.loudest_false_activations
    ] or ["  none"]
    for name, path in result.files.items():
        lines.append(f"wrote {name}: {path}")
    lines += [f"note: {n}" for n in result.notes]
    return lines
