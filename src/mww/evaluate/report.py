"""What an evaluation prints and writes: the human report (`format_report`), calibration.json (the
recommended operating point, which mww-export reads), the DET curve and the score histogram."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mww.atomic import atomic_write_bytes, atomic_write_json
from mww.device.detection import format_cutoff
from mww.evaluate.measure import Evaluation
from mww.train.checkpoints import CALIBRATION_FILE

# --------------------------------------------------------------------------- files


# Whose detector a figure was counted with (`mww.device.pymicro.RULES`).
RUNTIMES = {"esphome": "ESP32 (ESPHome's detector)", "pymicro": "Home Assistant (pymicro-wakeword)"}


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
        # False: the validation data cannot vouch for this cutoff; mww-export then keeps the config's,
        # or ships the fallback (fewer false activations than the config's) when there is one.
        "supported": rec["supported"],
        "reasons": rec["reasons"],
        **({"fallback": rec["fallback"]} if "fallback" in rec else {}),
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


# --------------------------------------------------------------------------- plots


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
        ("false_wake", "false wakes"),
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


# --------------------------------------------------------------------------- the report


def _pct(value: float) -> str:
    return f"{100.0 * value:5.1f} %"


def _fah(value: float) -> str:
    return "inf" if not math.isfinite(value) else f"{value:.2f}"


def format_report(result: Evaluation) -> list[str]:
    """The human report: settings, the key figures, the recommendation, breakdowns, worst cases."""
    lines = [
        *_header(result),
        "",
        *_at_settings(result),
        "",
        *_recommendation(result),
        *_quantization(result.quantization_gap),
        "",
        *_sweep(result),
        "",
        *_breakdowns(result),
    ]
    for name, path in result.files.items():
        lines.append(f"wrote {name}: {path}")
    lines += [f"note: {n}" for n in result.notes]
    return lines


def _header(result: Evaluation) -> list[str]:
    """The model, the split and the audio false activations are counted over."""
    counts = result.counts
    false_wakes = f"{counts['false_wakes']} false wakes, " if counts.get("false_wakes") else ""
    return [
        f"model     {result.model['path']}  [{result.model['kind']}]",
        f"split     {result.split}: {counts['positives']} positives, {counts['negatives']} negatives, "
        f"{counts['hard_negatives']} hard negatives, {false_wakes}{counts['ambient_recordings']} ambient "
        "recordings",
        f"FA/h over {counts['fah_hours'] * 60:.1f} min of audio ({counts['ambient_hours'] * 60:.1f} min "
        f"ambient + {counts['negative_hours'] * 60:.1f} min negatives)",
    ]


def _at_settings(result: Evaluation) -> list[str]:
    """The key figures at the evaluated cutoff and window, clip level, and recall in noise."""
    at = result.at_settings
    lines = [
        f"at cutoff {format_cutoff(at['probability_cutoff'])} (uint8 {at['probability_cutoff_u8']}), window "
        f"{at['sliding_window_size']}  (from {at['settings_from']}; {RUNTIMES[at['rule']]})",
        f"  {'recall':<34}{_pct(at['recall'])}",
        f"  {'false rejection rate':<34}{_pct(at['false_rejection_rate'])}",
        f"  {'false activations per hour':<34}{_fah(at['fah'])}  ({at['false_activations']} events)",
        f"  {'hard negatives detected':<34}{_pct(at['hard_negative_false_detection_rate'])}",
    ]
    woke = result.per_source.get("false_wake", {})
    if woke.get("clips"):
        lines.append(
            f"  {'false wakes detected':<34}{_pct(woke['detection_rate'])}  ({woke['clips_with_detection']}/"
            f"{woke['clips']} recordings that woke the device)"
        )
    cls = result.classification
    if cls:
        lines.append(
            f"  clip level: accuracy {cls['accuracy']:.3f}  precision {cls['precision']:.3f}  recall "
            f"{cls['recall']:.3f}  F1 {cls['f1']:.3f}  AUC-ROC {cls['auc_roc']:.3f}"
        )
    other = result.other_rule
    lines.append(
        f"  {RUNTIMES[other['rule']]:<34}recall {_pct(other['recall'])}, {_fah(other['fah'])} FA/h "
        f"({other['false_activations']} events)"
    )
    if other["disagreement"]:
        lines.append(f"  warning: {other['disagreement']}")
    for row in result.noise:
        label = f"recall in noise, {row['snr_db']:g} dB SNR"
        lines.append(f"  {label:<34}{_pct(row['recall'])}  ({row['detected']}/{row['clips']})")
    return lines


def _recommendation(result: Evaluation) -> list[str]:
    """The recommended operating point against the target, and the equal error point."""
    rec, eer = result.recommended, result.equal_error
    verdict = "meets" if rec["meets_target"] else "MISSES"
    lines = [
        f"recommended: cutoff {format_cutoff(rec['probability_cutoff'])}, window "
        f"{rec['sliding_window_size']}: recall {_pct(rec['recall'])}, {_fah(rec['fah'])} FA/h ({verdict} "
        f"the target of {rec['target_fah']} FA/h)",
    ]
    if result.silence_output_u8:
        lines.append(
            f"  the model's output on digital silence is {result.silence_output_u8}/255: no cutoff below it "
            "is recommended (it would fire on a muted microphone)"
        )
    if rec.get("noisy_positives"):
        lines.append(
            f"  chosen for the recall of the positives and their {rec['noisy_positives']} copies in noise "
            f"together: {_pct(rec['recall_with_noisy']).strip()}"
        )
    if not rec["supported"] and "fallback" in rec:
        fallback = rec["fallback"]
        lines.append(
            "  not supported by this data: " + "; ".join(rec["reasons"]) + ". mww-export ships the "
            "fallback calibration measured instead, cutoff "
            f"{format_cutoff(fallback['probability_cutoff'])} with window {fallback['sliding_window_size']} "
            f"({_fah(fallback['fah'])} FA/h), which fires less than the config's cutoff and window here"
        )
    elif not rec["supported"]:
        lines.append(
            "  not supported by this data, so mww-export keeps the config's cutoff and window: "
            + "; ".join(rec["reasons"])
        )
    if eer.get("available"):
        lines.append(
            f"equal error (window {eer['window']}): cutoff {format_cutoff(eer['cutoff'])}, FRR "
            f"{_pct(eer['false_rejection_rate'])} = negative clips detected "
            f"{_pct(eer['false_acceptance_rate'])}, {_fah(eer['fah'])} FA/h"
        )
    return lines


def _quantization(gap: dict[str, Any] | None) -> list[str]:
    """What int8 changed against the float model on the same audio (--analyze), else nothing."""
    if not gap:
        return []
    diff = gap["output_difference_uint8"]
    return [
        "",
        f"quantization (int8 TFLite Micro vs float, same audio, {diff['outputs_compared']} outputs): "
        f"mean {diff['mean']:.2f}, p99 {diff['p99']:.1f}, max {diff['max']} uint8 steps",
        f"  recall {_pct(gap['float']['recall'])} float -> {_pct(gap['int8']['recall'])} int8; FA/h "
        f"{_fah(gap['float']['fah'])} -> {_fah(gap['int8']['fah'])}",
    ]


def _sweep(result: Evaluation) -> list[str]:
    """Recall and FA/h at every tenth cutoff (and each from 0.9 up) at the recommended window."""
    sweep = result.sweep["windows"][str(result.recommended["sliding_window_size"])]
    row = []
    for i, cutoff in enumerate(result.sweep["cutoffs"]):
        if 0.0 < cutoff < 1.0 and (round(cutoff * 100) % 10 == 0 or cutoff >= 0.9):
            row.append(f"{format_cutoff(cutoff)}: {sweep['recall'][i]:.2f}, {_fah(sweep['fah'][i])}")
    return [
        "cutoff sweep at the recommended window (cutoff: recall, FA/h)",
        *("  " + "   ".join(row[i : i + 4]) for i in range(0, len(row), 4)),
    ]


def _breakdowns(result: Evaluation) -> list[str]:
    """Per speaker, per ambient recording, the worst positives and the loudest false activations."""
    lines = ["per speaker (lowest recall first)"]
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
    sets = result.per_source.get("feature_sets", {})
    if sets:
        lines += ["", "per feature set heard as ambient audio"]
        lines += [
            f"  {name:<40}{r['hours'] * 60:7.1f} min  {r['false_activations']:>3} events  "
            f"{_fah(r['fah'] if r['fah'] is not None else math.inf)} FA/h"
            for name, r in sets.items()
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
    return lines
