"""Every measurement of one model's outputs on one evaluation set (`measure`), and what an evaluation
holds (`Evaluation`).

The uint8 outputs go through the device's detector (`mww.device.detection`): sliding-window mean,
integer cutoff, refractory period. A positive clip is detected when a detection fires in it (heard by a
detector that has been listening). False activations per hour are counted over the ambient recordings
(device starts) and the negative clips (one utterance each), divided by their real durations, without
the silence a stream adds (`mww.train.metrics`). Clip-level scores are read where training decides on
each clip (just after its last sound). Events and peaks are timed from the start of their recording.

The recommended cutoff and window are chosen by `mww.train.calibration.calibrate` from the sweep under
both runtimes' rules (the ESP32's and Home Assistant's pymicro-wakeword, `mww.device.pymicro`), and the
evaluated settings are also measured under Home Assistant's rule (`home_assistant`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mww.data.sources import EvalData
from mww.device.constants import OUTPUT_SCALE
from mww.device.detection import cutoff_to_uint8, first_detection_sweep
from mww.device.pymicro import detect_with_rule, rules_disagree
from mww.device.runtime import invocation_seconds
from mww.evaluate.outputs import Outputs, decision_outputs, first_scored_invocation
from mww.train.calibration import CalibrationChoice, calibrate
from mww.train.metrics import (
    DEFAULT_CUTOFFS,
    OPERATING_POINT_WINDOWS,
    RecallFahCurve,
    classification_metrics,
    false_activation_streams,
    sweep_recall_fah,
)

LISTED = 10  # worst positives and loudest false activations listed
EVENTS_LISTED = 1000  # detections on negative audio listed in full (--json), in file and time order


@dataclass
class Settings:
    """The detector settings evaluated, and where they came from."""

    probability_cutoff: float
    sliding_window_size: int
    source: str
    rule: str = "esphome"  # whose detector the figures at these settings use (`mww.device.pymicro.RULES`)


@dataclass
class Evaluation:
    """Everything one evaluation measured; `to_dict` is the --json object."""

    model: dict[str, Any]
    split: str
    counts: dict[str, Any]
    at_settings: dict[str, Any]
    classification: dict[str, float]
    recommended: dict[str, Any]
    other_rule: dict[str, Any]
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
    silence_output_u8: int = 0  # the model's highest output on digital silence
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def measure(
    data: EvalData,
    out: Outputs,
    settings: Settings,
    *,
    input_frames: int,
    stride: int,
    target_fah: float,
    noisy_positives: Sequence[np.ndarray] = (),
    silence_u8: int = 0,
    default: tuple[float, int] | None = None,
) -> dict[str, Any]:
    """Every measurement of one model's outputs on one evaluation set, as plain data (the fields of
    `Evaluation` that depend on the outputs alone). `noisy_positives`: outputs on the positives with
    background audio mixed in; the recommended cutoff is calibrated on them and the clean positives
    together (a cutoff chosen on clean clips alone misses the wake word in a noisy room), while the
    sweep and every other figure are the clean positives'. `silence_u8`: the model's output on digital
    silence (`mww.device.features.silence_output_u8`); no cutoff below it is recommended. `default`: the
    config's cutoff and window, which a fallback must fire less than (`mww.train.calibration`)."""
    first = first_scored_invocation(input_frames, stride)
    fa_streams, fa_hours = false_activation_streams(
        out.ambient, out.negatives, data.ambient_seconds, stride, data.negative_seconds
    )
    negative_hours = fa_hours - data.ambient_seconds / 3600.0
    curves = _sweep(out.positives, fa_streams, fa_hours, stride, "esphome")
    calibration_positives = [*out.positives, *noisy_positives]
    esp_curves = (
        _sweep(calibration_positives, fa_streams, fa_hours, stride, "esphome") if noisy_positives else curves
    )
    ha_curves = _sweep(calibration_positives, fa_streams, fa_hours, stride, "pymicro")
    choice = calibrate(
        esp_curves, ha_curves, target_fah, len(calibration_positives), silence_u8=silence_u8, default=default
    )
    chosen = choice.point
    window = settings.sliding_window_size

    # Per stream, at the evaluated settings, heard by a detector that was listening.
    detected = _detected(out.positives, settings, stride)
    hard_fired = _detected(out.hard_negatives, settings, stride)
    events = _events(data, out, settings, stride, first)
    false_events = events["ambient"] + events["negative"]
    listed = false_events + events["hard_negative"] + events["false_wake"]
    return {
        "counts": {
            "positives": len(out.positives),
            "negatives": len(out.negatives),
            "hard_negatives": len(out.hard_negatives),
            "false_wakes": len(out.false_wakes),
            "ambient_recordings": len(out.ambient),
            "ambient_hours": data.ambient_seconds / 3600.0,
            "negative_hours": negative_hours,
            "fah_hours": fa_hours,
        },
        "at_settings": _at_settings(settings, detected, hard_fired, len(false_events), fa_hours),
        "classification": _clip_classification(data, out),
        "recommended": _recommended(choice, target_fah, curves, len(noisy_positives)),
        "silence_output_u8": int(silence_u8),
        "other_rule": _other_rule(out.positives, fa_streams, fa_hours, settings),
        "equal_error": _equal_error(out, curves, chosen.window, stride),
        "sweep": _curves_dict(curves),
        "per_speaker": _per_speaker(data.positive_speakers, detected),
        "per_source": _per_source(data, out, events, detected, hard_fired, negative_hours),
        "peaks": {
            kind: [round(peak_window_mean(x, window)[0], 4) for x in streams]
            for kind, streams in (
                ("positive", out.positives),
                ("negative", out.negatives),
                ("hard_negative", out.hard_negatives),
                ("false_wake", out.false_wakes),
            )
        },
        "worst_positives": _worst_positives(data, out, detected, window, first, stride)[:LISTED],
        "events": sorted(listed, key=lambda e: (e["source"], e["file"], e["time_s"]))[:EVENTS_LISTED],
        "loudest_false_activations": sorted(listed, key=lambda e: -e["probability"])[:LISTED],
    }


def _sweep(
    positives: Sequence[np.ndarray], fa_streams: list[np.ndarray], fa_hours: float, stride: int, rule: str
) -> list[RecallFahCurve]:
    """Recall and FA/h over the default cutoff grid and every operating-point window, under `rule`."""
    return sweep_recall_fah(
        list(positives),
        fa_streams,
        fa_hours,
        cutoffs=DEFAULT_CUTOFFS,
        windows=OPERATING_POINT_WINDOWS,
        stride=stride,
        positives_armed_at_start=True,
        check_duration=False,
        rule=rule,
    )


# --------------------------------------------------------------------------- the detector's events


def _detected(streams: list[np.ndarray], settings: Settings, stride: int) -> list[bool]:
    """Whether a detection fires in each stream at the evaluated settings (the detector armed)."""
    cutoff, window = settings.probability_cutoff, settings.sliding_window_size
    return [
        bool(detect_with_rule(s, cutoff, window, settings.rule, stride=stride, armed_at_start=True))
        for s in streams
    ]


def _rate(hits: list[bool]) -> float:
    return (sum(hits) / len(hits)) if hits else 0.0


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
        hits = detect_with_rule(
            stream,
            settings.probability_cutoff,
            settings.sliding_window_size,
            settings.rule,
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


def _events(
    data: EvalData, out: Outputs, settings: Settings, stride: int, first: int
) -> dict[str, list[dict[str, Any]]]:
    """Every detection on negative audio, by source: ambient recordings are device starts, clips are
    heard by a detector that was listening."""

    def clip_events(streams: list[np.ndarray], paths: list[Path], source: str) -> list[dict[str, Any]]:
        return _event_list(streams, paths, source, settings, stride, first, True, data.stream_offsets_s)

    sources = data.ambient_sources or ["ambient"] * len(out.ambient)
    ambient = []  # the dataset's recordings (source "ambient"), then each feature set's arrays
    for name in dict.fromkeys(sources):
        chosen = [i for i, s in enumerate(sources) if s == name]
        label = name if name == "ambient" else f"feature_set:{name}"
        streams, paths = [out.ambient[i] for i in chosen], [data.ambient_paths[i] for i in chosen]
        ambient += _event_list(streams, paths, label, settings, stride, first, False)
    return {
        "ambient": ambient,
        "negative": clip_events(out.negatives, data.negative_paths, "negative"),
        "hard_negative": clip_events(out.hard_negatives, data.hard_negative_paths, "hard_negative"),
        "false_wake": clip_events(out.false_wakes, data.false_wake_paths, "false_wake"),
    }


# --------------------------------------------------------------------------- at the evaluated settings


def _at_settings(
    settings: Settings, detected: list[bool], hard_fired: list[bool], n_false: int, fa_hours: float
) -> dict[str, Any]:
    """Recall, false activations and hard negatives detected at the evaluated cutoff and window."""
    cutoff = settings.probability_cutoff
    recall = sum(detected) / len(detected)
    return {
        "probability_cutoff": cutoff,
        "probability_cutoff_u8": cutoff_to_uint8(cutoff),
        "sliding_window_size": settings.sliding_window_size,
        "settings_from": settings.source,
        "rule": settings.rule,
        "recall": recall,
        "false_rejection_rate": 1.0 - recall,
        "false_activations": n_false,
        "fah": n_false / fa_hours if fa_hours > 0 else math.inf,
        "hard_negative_false_detection_rate": _rate(hard_fired),
    }


def _clip_classification(data: EvalData, out: Outputs) -> dict[str, float]:
    """Clip-level accuracy, precision, recall, F1 and AUC-ROC on the outputs where training decides."""
    negatives = len(out.negatives) + len(out.hard_negatives) + len(out.false_wakes)
    labels = np.array([1] * len(out.positives) + [0] * negatives)
    clip_scores = np.asarray(decision_outputs(data, out), dtype=np.float64) * OUTPUT_SCALE
    return classification_metrics(labels, clip_scores) if len(set(labels.tolist())) else {}


def _per_speaker(speakers: list[str], detected: list[bool]) -> list[dict[str, Any]]:
    """Recall per speaker of the positives, lowest first."""
    hits: dict[str, list[bool]] = {}
    for speaker, hit in zip(speakers, detected, strict=True):
        hits.setdefault(speaker, []).append(hit)
    return sorted(
        (
            {"speaker": s, "clips": len(h), "detected": int(sum(h)), "recall": sum(h) / len(h)}
            for s, h in hits.items()
        ),
        key=lambda row: (row["recall"], row["speaker"]),
    )


def _ambient_rows(data: EvalData, out: Outputs, ambient_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per ambient recording of the dataset's folder: its length, its false activations and its highest
    output (a feature set's arrays are summed up per set, `_feature_set_rows`)."""
    rows = []
    sources = data.ambient_sources or ["ambient"] * len(out.ambient)
    for path, seconds, stream, source in zip(
        data.ambient_paths, data.ambient_durations, out.ambient, sources, strict=True
    ):
        if source != "ambient":
            continue
        n = sum(e["file"] == str(path) for e in ambient_events)
        hours = seconds / 3600.0
        rows.append(
            {
                "file": str(path),
                "hours": round(hours, 6),
                "false_activations": n,
                "fah": round(n / hours, 4) if hours > 0 else None,
                "peak_probability": round(float(stream.max(initial=0)) * OUTPUT_SCALE, 4),
            }
        )
    return rows


def _per_source(
    data: EvalData,
    out: Outputs,
    events: dict[str, list[dict[str, Any]]],
    detected: list[bool],
    hard_fired: list[bool],
    negative_hours: float,
) -> dict[str, Any]:
    """What each kind of audio contributed: detections, false activations, and each ambient recording."""
    return {
        "positive": {"clips": len(detected), "detected": int(sum(detected))},
        "negative": {
            "clips": len(out.negatives),
            "clips_with_detection": len({e["file"] for e in events["negative"]}),
            "false_activations": len(events["negative"]),
            "hours": negative_hours,
        },
        "hard_negative": {
            "clips": len(hard_fired),
            "clips_with_detection": int(sum(hard_fired)),
            "false_detection_rate": _rate(hard_fired),
        },
        "ambient": _ambient_rows(data, out, events["ambient"]),
        "false_wake": _false_wake_row(data, events["false_wake"]),
        "feature_sets": _feature_set_rows(data, events["ambient"]),
    }


def _false_wake_row(data: EvalData, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The recordings that woke a device before: how many the model still detects in."""
    fired = {e["file"] for e in events}
    clips = len(data.false_wake_paths)
    return {
        "clips": clips,
        "clips_with_detection": len(fired),
        "detection_rate": len(fired) / clips if clips else 0.0,
        "detections": len(events),
    }


def _feature_set_rows(data: EvalData, ambient_events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per feature set heard as ambient audio: its arrays, hours and false activations (FA/h)."""
    rows: dict[str, dict[str, Any]] = {}
    for source, seconds in zip(data.ambient_sources, data.ambient_durations, strict=False):
        if source != "ambient":  # (no sources listed: every recording is the folder's)
            row = rows.setdefault(source, {"arrays": 0, "hours": 0.0})
            row["arrays"] += 1
            row["hours"] += seconds / 3600.0
    for name, row in rows.items():
        n = sum(e["source"] == f"feature_set:{name}" for e in ambient_events)
        row["false_activations"] = n
        row["fah"] = round(n / row["hours"], 4) if row["hours"] > 0 else None
    return rows


def _worst_positives(
    data: EvalData, out: Outputs, detected: list[bool], window: int, first: int, stride: int
) -> list[dict[str, Any]]:
    """Every positive with its highest window mean and when in its file: missed ones first, then the
    weakest."""
    offsets = data.stream_offsets_s
    rows = []
    for path, speaker, stream, hit in zip(
        data.positive_paths, data.positive_speakers, out.positives, detected, strict=True
    ):
        top, peak = peak_window_mean(stream, window)
        rows.append(
            {
                "file": str(path),
                "speaker": speaker,
                "detected": hit,
                "peak_probability": round(top, 4),
                "peak_time_s": _time_in_file(peak + first, stride, offsets.get(path, 0.0)),
            }
        )
    rows.sort(key=lambda row: (row["detected"], row["peak_probability"]))
    return rows


# --------------------------------------------------------------------------- over every cutoff and window


def _recommended(
    choice: CalibrationChoice, target_fah: float, clean: list[RecallFahCurve], noisy: int
) -> dict[str, Any]:
    """The calibrated point; its `recall` is the clean positives' (as in the sweep), and
    `recall_with_noisy` that of the clean and noisy copies together, which calibration maximized."""
    point = choice.point
    curve = next(c for c in clean if c.window == point.window)
    i = int(np.argmin(np.abs(curve.cutoffs - point.cutoff)))
    return {
        **choice.to_dict(),
        "recall": float(curve.recall[i]),
        "recall_with_noisy": float(point.recall),
        "noisy_positives": noisy,
        "target_fah": float(target_fah),
    }


def _other_rule(
    positives: list[np.ndarray], fa_streams: list[np.ndarray], fa_hours: float, settings: Settings
) -> dict[str, Any]:
    """Recall and FA/h at the evaluated settings under the other runtime's detector (Home Assistant's
    pymicro-wakeword beside the ESP32's, or the other way round), and whether the two read the cutoff
    differently."""
    cutoff, window = settings.probability_cutoff, settings.sliding_window_size
    rule = "pymicro" if settings.rule == "esphome" else "esphome"
    curve = sweep_recall_fah(
        positives,
        fa_streams,
        fa_hours,
        cutoffs=[cutoff],
        windows=[window],
        check_duration=False,
        positives_armed_at_start=True,
        rule=rule,
    )[0]
    return {
        "rule": rule,
        "recall": float(curve.recall[0]),
        "false_activations": int(curve.ambient_events[0]),
        "fah": float(curve.fah[0]),
        "disagreement": rules_disagree(cutoff, window),
    }


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
    clips = [*out.negatives, *out.hard_negatives, *out.false_wakes]
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
