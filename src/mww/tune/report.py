"""What mww-autotune writes and prints: the tuned checkpoint and its calibration, iterations.csv,
tuning_report.json, the line per iteration and the end-of-run summary.

Every file is written to a temp file and renamed. The best result is written as soon as it is found
(`write_best`), so an interrupted run leaves the best so far.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mww.atomic import atomic_write_json
from mww.config.schema import AutoTuningConfig, MwwConfig
from mww.data.sources import EvalData
from mww.device.detection import cutoff_to_uint8, format_cutoff
from mww.train.calibration import unsupported_reasons
from mww.train.checkpoints import CALIBRATION_FILE, config_hash, sidecar_path, write_checkpoint
from mww.train.metrics import OperatingPoint
from mww.tune.decision import Decision, Point, TuneState, TuneTarget
from mww.tune.session import Session

TUNED_NAME = "tuned_weights.weights.h5"
REPORT_NAME = "tuning_report.json"
ITERATIONS_CSV = "iterations.csv"
CSV_COLUMNS = (
    "iteration",
    "step",
    "fah",
    "fah_within_margin",
    "recall",
    "probability_cutoff",
    "sliding_window_size",
    "positive_weight",
    "hard_negative_weight",
    "learning_rate",
    "mined",
    "new_best",
    "action",
)
HELD_OUT_NOTE = (
    "validation numbers were tuned on (every decision and the cutoff/window search used them); the test "
    "numbers are held out and are the ones to quote"
)


# --------------------------------------------------------------------------- files


def write_best(
    session: Session, point: Point, state: TuneState, config: MwwConfig, target: TuneTarget, output_dir: Path
) -> None:
    """tuned_weights.weights.h5 + sidecar, then calibration.json (what mww-export reads): the model's
    current weights, measured at `point` after a burst with the class weights of `state`."""
    validation = session.data.validation
    shipped = OperatingPoint(
        point.window,
        point.cutoff,
        cutoff_to_uint8(point.cutoff),
        point.recall,
        point.fah,
        0,
        point.meets_fah(target),
    )
    hours = (validation.ambient_seconds + (validation.negative_seconds or 0.0)) / 3600.0
    reasons = unsupported_reasons(shipped, hours, len(validation.positive_streams), target.fah)
    calibration = {
        "probability_cutoff": point.cutoff,
        "sliding_window_size": point.window,
        "meets_target": point.meets_fah(target),
        # False: mww-export keeps the config's cutoff and window (`mww.train.calibration`).
        "supported": not reasons,
        "reasons": reasons,
    }
    record = {
        "validation_fah": point.fah,
        "validation_fah_within_margin": point.guarded_fah,
        "validation_recall": point.recall,
        "iteration": point.iteration,
        "positive_class_weight": state.positive_weight,
        "hard_negative_class_weight": state.hard_negative_weight,
    }
    weights = output_dir / TUNED_NAME
    write_checkpoint(session.model, weights, session.step, record, config, calibration)
    atomic_write_json(
        output_dir / CALIBRATION_FILE,
        {
            **calibration,
            "recall": point.recall,
            "fah": point.fah,
            "fah_within_margin": point.guarded_fah,
            "cutoff_margin": config.auto_tuning.cutoff_margin,
            "target_fah": target.fah,
            "target_recall": target.recall,
            "meets_targets": point.meets(target),
            "split": "validation",
            "model": str(weights),
            "iteration": point.iteration,
            "source": "mww-autotune",
        },
    )


def output_files(output_dir: Path) -> dict[str, str]:
    """The files a run writes into `output_dir`, by what they are."""
    return {
        "checkpoint": str(output_dir / TUNED_NAME),
        "sidecar": str(sidecar_path(output_dir / TUNED_NAME)),
        "calibration": str(output_dir / CALIBRATION_FILE),
        "iterations": str(output_dir / ITERATIONS_CSV),
        "report": str(output_dir / REPORT_NAME),
    }


# --------------------------------------------------------------------------- iterations


def iteration_row(
    point: Point, step: int, used: TuneState, decision: Decision, mined: int, tuning: AutoTuningConfig
) -> dict[str, Any]:
    """One evaluation, as a row of iterations.csv: `point` measured at global `step` after a burst with
    the class weights of `used`, and what was decided."""
    return {
        "iteration": point.iteration,
        "step": step,
        "fah": point.fah,
        "fah_within_margin": point.guarded_fah,
        "recall": point.recall,
        "probability_cutoff": point.cutoff,
        "sliding_window_size": point.window,
        "positive_weight": used.positive_weight,
        "hard_negative_weight": used.hard_negative_weight,
        "learning_rate": tuning.burst_learning_rate * used.learning_rate_scale,
        "mined": mined,
        "new_best": decision.improved,
        "action": decision.detail + (f" ({mined} new windows)" if decision.mine else ""),
    }


def iterations_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The text of iterations.csv."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


def iteration_line(row: Mapping[str, Any]) -> str:
    """The one line printed per iteration."""
    return (
        f"iteration {row['iteration']:>3}  FA/h {row['fah']:8.3f} ({row['fah_within_margin']:.3f} within "
        f"margin)  recall {row['recall']:.3f}  cutoff "
        f"{format_cutoff(row['probability_cutoff'])}  window {row['sliding_window_size']:>2}"
        f"{'  *best*' if row['new_best'] else '        '}  {row['action']}"
    )


def split_line(name: str, data: EvalData) -> str:
    """What one evaluation split holds."""
    return (
        f"{name}: {len(data.positive_streams)} positives, {len(data.negative_streams)} negatives, "
        f"{len(data.hard_negative_streams)} hard negatives, {len(data.ambient_streams)} ambient recordings "
        f"({data.ambient_seconds / 60:.1f} min)"
    )


# --------------------------------------------------------------------------- the report


def _sides(
    session: Session, config: MwwConfig, confirmed: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report's entries of the start and of the tuned result."""
    state, shipped = session.state, session.shipped
    assert state.start is not None and state.best is not None

    def side(name: str, point: Point) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "probability_cutoff": point.cutoff,
            "sliding_window_size": point.window,
            "iteration": point.iteration,
            "validation": {"recall": point.recall, "fah": point.fah},
        }
        if confirmed is not None:
            entry["validation"] = confirmed[name]["validation"]
            entry["test"] = confirmed[name]["test"]
        return entry

    start = side("start", state.start)
    start["as_calibrated"] = {
        "probability_cutoff": shipped.probability_cutoff,
        "sliding_window_size": shipped.sliding_window_size,
        "source": shipped.source,
    }
    if confirmed is not None:
        for split in ("validation", "test"):
            start["as_calibrated"][split] = confirmed["start"][f"{split}_as_calibrated"]
    tuned = side("tuned", state.best)
    tuned["class_weights"] = {
        "positive": session.best.state.positive_weight,
        "negative": config.training.negative_class_weight[-1],
        "hard_negative": session.best.state.hard_negative_weight,
    }
    return start, tuned


def tuning_report(
    session: Session,
    config: MwwConfig,
    target: TuneTarget,
    *,
    checkpoint: Path,
    output_dir: Path,
    limits: Mapping[str, int],
    stopped: str,
    interrupted: bool,
    confirmed: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The content of tuning_report.json: targets, how tuning ended, start and tuned result (with the
    test split's numbers once `confirmed`), the Pareto front and every iteration."""
    state = session.state
    assert state.best is not None
    start, tuned = _sides(session, config, confirmed)
    meets = {"validation": state.best.meets(target)}
    if confirmed is not None:
        test = confirmed["tuned"]["test"]
        meets["test"] = test["fah"] <= target.fah and test["recall"] >= target.recall
    return {
        "checkpoint": str(checkpoint),
        "config_hash": config_hash(config),
        "architecture": config.model.architecture,
        "targets": {"fah": target.fah, "recall": target.recall},
        "limits": dict(limits),
        "auto_tuning": asdict(config.auto_tuning),
        "stopped": stopped,
        "interrupted": interrupted,
        "iterations": len(session.rows),
        "fine_tuning_steps": session.step - config.training.total_steps,
        "mined_hard_negatives": len(session.mined),
        "start": start,
        "tuned": tuned,
        "meets_targets": meets,
        "pareto_front": [p.as_dict() for p in state.front],
        "history": session.rows,
        "note": HELD_OUT_NOTE
        if confirmed is not None
        else "interrupted before the test-split confirmation: measure the tuned checkpoint with "
        f"mww-evaluate --checkpoint {output_dir / TUNED_NAME} --split test",
        "notes": list(session.notes),
        "files": output_files(output_dir),
    }


def _figures(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return f"{'not measured':<28}"
    return f"FA/h {entry['fah']:8.3f}  recall {entry['recall']:.3f}  "


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The end-of-run summary: validation (tuned on) and test (held out) side by side, labelled."""
    target, start, tuned = report["targets"], report["start"], report["tuned"]
    lines = [
        f"stopped: {report['stopped']} after {report['iterations']} evaluation(s), "
        f"{report['fine_tuning_steps']} fine-tuning steps",
        f"{'':<34}{'validation (tuned on)':<30}{'test (held out)':<30}",
    ]
    for name, entry in (("start as calibrated", start["as_calibrated"]), ("start", start), ("tuned", tuned)):
        label = f"{name} (c {format_cutoff(entry['probability_cutoff'])}, w {entry['sliding_window_size']})"
        lines.append(f"{label:<34}{_figures(entry.get('validation'))}{_figures(entry.get('test'))}")
    meets = report["meets_targets"]
    verdict = ", ".join(f"{'met' if ok else 'missed'} on {split}" for split, ok in meets.items())
    lines.append(f"targets FA/h <= {target['fah']:g}, recall >= {target['recall']:g}: {verdict}")
    if not meets["validation"]:
        front = "; ".join(
            f"FA/h {p['fah']:.3f} at recall {p['recall']:.3f} (iteration {p['iteration']})"
            for p in report["pareto_front"]
        )
        lines.append(
            "the targets were not reached; the best achievable trade-off found is the tuned result above. "
            f"Pareto front on validation: {front}"
        )
    lines.append(f"note: {report['note']}")
    files = report["files"]
    lines.append(
        f"wrote {files['checkpoint']} (+ {Path(files['sidecar']).name}, {Path(files['calibration']).name})"
    )
    lines.append(f"wrote {files['report']} and {files['iterations']}")
    return lines
