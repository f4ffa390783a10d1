"""One validation of a training run: the device-faithful metrics, the checkpoints they earn and the
selection of the best one so far.

Every `eval_step_interval` steps the trainer scores the validation split the way the device would
see it: clip windows, positive clips streamed with the device's detector, and the ambient recordings
streamed for false activations per hour over their measured duration. Each validation writes
`checkpoint_step_<step>.weights.h5`; the lowest FA/h so far also `best_fah_step_<step>.weights.h5`,
and the best under the config's selection rule (`mww.train.checkpoints.is_better`) `best_weights`
plus the calibration.json that mww-export reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mww.atomic import atomic_write_json
from mww.config.schema import MwwConfig, TrainingConfig
from mww.data.sources import EvalData, noise_key
from mww.device.detection import detected_in, probabilities_to_uint8
from mww.device.features import silence_output_u8
from mww.model.scoring import StreamScorer, score_windows
from mww.train.calibration import SELECTION_FAH, SELECTION_RECALL, calibrate, shippable_recall_at
from mww.train.checkpoints import BEST_NAME, CALIBRATION_FILE, Candidate, is_better, write_checkpoint
from mww.train.metrics import (
    CALIBRATION_CUTOFFS,
    OPERATING_POINT_WINDOWS,
    compute_all_metrics,
    false_activation_streams,
    sweep_recall_fah,
)


def validation_metrics(
    config: MwwConfig, predict: Any, data: EvalData, stream: StreamScorer
) -> dict[str, Any]:
    """Device-faithful metrics of one evaluation set at the current weights.

    `predict` scores the clip windows and `stream` the streamed recordings (the trainer passes
    `mww.model.streaming.sequence_scorer` of the current weights).
    """
    stride = config.model.stride
    scores = score_windows(predict, data.windows)
    positives, ambient, negatives, hard = (
        [probabilities_to_uint8(p) for p in stream(streams)]
        for streams in (
            data.positive_streams,
            data.ambient_streams,
            data.negative_streams,
            data.hard_negative_streams,
        )
    )
    fa_streams, fa_hours = false_activation_streams(
        ambient, negatives, data.ambient_seconds, stride, data.negative_seconds
    )
    metrics = compute_all_metrics(
        data.labels,
        scores,
        positives,
        fa_streams,
        ambient_duration_hours=fa_hours,
        target_fah=config.training.target_minimization,
        cutoff=config.export.probability_cutoff,
        window=config.export.sliding_window_size,
        # Its operating point over one window only: `_calibrated` sweeps every window (both rules)
        # and replaces it.
        cutoffs=CALIBRATION_CUTOFFS,
        stride=stride,
        positives_armed_at_start=True,  # a positive clip is one utterance, not a device start-up
        # The duration is the measured audio length; the first window (about 2 s) of each
        # recording is not scored, which the consistency check would flag for short recordings.
        check_duration=False,
    )
    # Positives in noise: the shipped cutoff is calibrated on them and the clean positives together.
    noisy = {
        snr: [probabilities_to_uint8(p) for p in stream(streams)]
        for snr, streams in data.noise_streams.items()
    }
    calibration_positives = positives + [o for outputs in noisy.values() for o in outputs]
    metrics["silence_output_u8"] = silence_output_u8(stream)
    metrics.update(
        _calibrated(config, calibration_positives, fa_streams, fa_hours, metrics["silence_output_u8"])
    )
    cutoff, window = config.export.probability_cutoff, config.export.sliding_window_size
    fired = detected_in(hard, cutoff, window, stride=stride, armed_at_start=True)
    metrics["hard_negative_false_detection_rate"] = sum(fired) / len(fired) if fired else 0.0
    # Recall at the operating point (what export would use): of the clean positives, and in noise.
    at = (metrics["operating_point_cutoff"], metrics["operating_point_window"])
    clean = detected_in(positives, *at, stride=stride, armed_at_start=True)
    metrics["operating_point_recall"] = sum(clean) / len(clean) if clean else 0.0
    for snr, outputs in noisy.items():
        hits = detected_in(outputs, *at, stride=stride, armed_at_start=True)
        metrics[noise_key(snr)] = sum(hits) / len(hits) if hits else 0.0
    return metrics


def _calibrated(
    config: MwwConfig, positives: list[Any], fa_streams: list[Any], fa_hours: float, silence_u8: int = 0
) -> dict[str, Any]:
    """The operating point `mww.train.calibration.calibrate` ships from this validation: swept under
    both runtimes' rules, with its margin, minimum window and whether the data supports it."""
    common = {"cutoffs": CALIBRATION_CUTOFFS, "windows": OPERATING_POINT_WINDOWS, "check_duration": False}
    esp = sweep_recall_fah(
        positives, fa_streams, fa_hours, stride=config.model.stride, positives_armed_at_start=True, **common
    )
    ha = sweep_recall_fah(positives, fa_streams, fa_hours, rule="pymicro", **common)
    default = (config.export.probability_cutoff, config.export.sliding_window_size)
    target = config.training.target_minimization
    choice = calibrate(esp, ha, target, len(positives), silence_u8=silence_u8, default=default)
    return {
        SELECTION_RECALL: shippable_recall_at(esp, SELECTION_FAH, silence_u8),
        "operating_point_fallback": choice.to_dict().get("fallback"),
        "operating_point_cutoff": choice.point.cutoff,
        "operating_point_window": choice.point.window,
        "operating_point_recall": choice.point.recall,
        "operating_point_fah": choice.point.fah,
        "operating_point_meets_target": choice.point.meets_target,
        "operating_point_supported": choice.supported,
        "operating_point_reasons": list(choice.reasons),
    }


@dataclass
class Selection:
    """The checkpoint selection so far: the best validation, the lowest FA/h and every validation."""

    best: Candidate | None = None
    best_fah: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Selection:
        """The selection `to_state` wrote into a resumable checkpoint."""
        best = Candidate(**state["best"]) if state.get("best") else None
        return cls(best, state.get("best_fah"), state["history"])

    def to_state(self) -> dict[str, Any]:
        """JSON-ready view, for the resumable checkpoint."""
        return {
            "best": asdict(self.best) if self.best else None,
            "best_fah": self.best_fah,
            "history": self.history,
        }

    def add(self, step: int, record: dict[str, Any], training: TrainingConfig) -> tuple[bool, bool]:
        """Take one validation's metrics into the selection; returns (lowest FA/h so far, new best)."""
        self.history.append({"step": step, **record})
        candidate = Candidate(
            step, {k: float(v) for k, v in record.items()}, smoothed(self.history, training)
        )
        fah = candidate.metrics["ambient_false_positives_per_hour"]
        lowest_fah = self.best_fah is None or fah < self.best_fah
        if lowest_fah:
            self.best_fah = fah
        new_best = is_better(candidate, self.best, training)
        if new_best:
            self.best = candidate
        return lowest_fah, new_best


def smoothed(history: list[dict[str, Any]], training: TrainingConfig) -> dict[str, float]:
    """The selection metrics of the latest validation in `history`, each the mean over the last
    `training.selection_smoothing` validations that measured it."""
    recent = history[-training.selection_smoothing :]
    names = (training.minimization_metric, training.maximization_metric)
    means = {}
    for name in names:
        values = [float(h[name]) for h in recent if name in h]
        if values:
            means[name] = sum(values) / len(values)
    return means


def calibration_of(metrics: dict[str, Any]) -> dict[str, Any]:
    """The operating point a validation found: what the checkpoint sidecar and calibration.json hold
    (``supported: false`` makes mww-export keep the config's cutoff and window, with the reasons)."""
    return {
        "probability_cutoff": float(metrics["operating_point_cutoff"]),
        "sliding_window_size": int(metrics["operating_point_window"]),
        "meets_target": bool(metrics["operating_point_meets_target"]),
        "supported": bool(metrics.get("operating_point_supported", True)),
        "reasons": list(metrics.get("operating_point_reasons", [])),
        **(
            {"fallback": metrics["operating_point_fallback"]}
            if metrics.get("operating_point_fallback")
            else {}
        ),
    }


def save_validation(
    model: Any, config: MwwConfig, step: int, metrics: dict[str, Any], selection: Selection
) -> bool:
    """Write the checkpoints one validation earns and add it to `selection`; True for a new best."""
    ckpt_dir = Path(config.paths.checkpoint_dir)
    calibration = calibration_of(metrics)
    record = {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool))}
    saved = (step, record, config, calibration)
    write_checkpoint(model, ckpt_dir / f"checkpoint_step_{step}.weights.h5", *saved)
    lowest_fah, new_best = selection.add(step, record, config.training)
    if lowest_fah:
        write_checkpoint(model, ckpt_dir / f"best_fah_step_{step}.weights.h5", *saved)
    if new_best:
        write_checkpoint(model, ckpt_dir / BEST_NAME, *saved)
        atomic_write_json(ckpt_dir / CALIBRATION_FILE, {**calibration, "step": step})
    return new_best
