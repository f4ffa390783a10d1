"""What a training run reports: the terminal log file, the progress line, the validation table and
the TensorBoard scalars.

Everything printed goes to the terminal and to logs/terminal_YYYYMMDD_HHMMSS.log (`RunLog`); the
numbers also go to TensorBoard when `performance.tensorboard_enabled` is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from mww.config.schema import PerformanceConfig
from mww.data.sources import NOISE_SNRS_DB, noise_key
from mww.device.detection import format_cutoff

PROGRESS_BAR = "{desc} |{bar:20}|"  # the progress line, then the bar
TENSORBOARD_DIR = "tensorboard"
TABLE_KEYS = (
    ("accuracy", "accuracy"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("auc_roc", "AUC-ROC"),
    ("ambient_false_positives_per_hour", "FA/hour (ambient+neg.)"),
    ("hard_negative_false_detection_rate", "confusables detected"),
    ("recall_at_no_fa", "recall at no FA/h"),
    ("recall_at_target_fah", "recall at target FA/h"),
    ("average_viable_recall", "average viable recall"),
    ("recall_at_2_fah", "recall at 2 FA/h (any window)"),
)


def format_duration(seconds: float) -> str:
    """H:MM:SS."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_line(
    phase: int, step: int, total: int, elapsed: float, rate: float, loss: float, acc: float, lr: float
) -> str:
    """`Phase 1 • 500/30000 • 1.7% • 0:02:14 elapsed • 2:10:45 remaining • loss=… acc=… lr=…`."""
    remaining = (total - step) / rate if rate > 0 else 0.0
    return (
        f"Phase {phase + 1} • {step}/{total} • {100.0 * step / total:.1f}% • "
        f"{format_duration(elapsed)} elapsed • "
        f"{format_duration(remaining)} remaining • loss={loss:.4f} acc={acc:.4f} lr={lr:.6f}"
    )


class RunLog:
    """Everything printed goes to the terminal and to logs/terminal_YYYYMMDD_HHMMSS.log.

    On a terminal the progress line is a tqdm bar redrawn in place, with the other lines printed
    above it; elsewhere (a pipe, a file, CI) every progress line is a plain line of its own.
    """

    def __init__(self, folder: Path, out: TextIO) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"terminal_{datetime.now().strftime('%Y%m%d_%H%M%S')}.log"
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._bar: tqdm | None = None

    def line(self, text: str) -> None:
        """A line on the terminal (above the progress bar) and in the log file."""
        if self._bar is not None:
            self._bar.clear()
        self._out.write(text + "\n")
        self._out.flush()
        if self._bar is not None:
            self._bar.refresh()
        self._file.write(text + "\n")
        self._file.flush()

    def status(self, text: str, done: int, total: int) -> None:
        """The progress line at `done` of `total` steps; logged to the file every time."""
        if self.tty:
            if self._bar is None:
                self._bar = tqdm(
                    desc=text, total=total, initial=done, file=self._out, bar_format=PROGRESS_BAR
                )
            else:
                self._bar.n = done
                self._bar.set_description_str(text)  # redraws
        else:
            self._out.write(text + "\n")
            self._out.flush()
        self._file.write(text + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the progress bar and the log file."""
        if self._bar is not None:
            self._bar.close()
        self._file.close()


def validation_table(metrics: dict[str, Any], step: int, tty: bool) -> list[str]:
    """The validation metrics as a small table; the FA/h row stands out."""
    lines = [f"Validation at step {step}:"]
    for key, label in TABLE_KEYS:
        value = metrics[key]
        row = f"  {label:<24} {value:8.4f}"
        if key == "ambient_false_positives_per_hour":
            verdict = (
                "excellent" if value < 0.5 else "acceptable" if value <= 2 else "too many false triggers"
            )
            row = (
                f"» {label:<24} {value:8.4f}  ({verdict}; {metrics['ambient_false_activations']} in "
                f"{metrics['ambient_duration_hours']:.2f} h)"
            )
            if tty:
                row = f"\033[1m{row}\033[0m"
        lines.append(row)
    lines.append(
        f"  operating point: cutoff {format_cutoff(metrics['operating_point_cutoff'])}, window "
        f"{metrics['operating_point_window']}, recall {metrics['operating_point_recall']:.4f}, "
        f"FA/h {metrics['operating_point_fah']:.3f}"
        + ("" if metrics["operating_point_meets_target"] else " (misses the target)")
    )
    in_noise = [
        f"{snr:g} dB SNR {metrics[noise_key(snr)]:.4f}" for snr in NOISE_SNRS_DB if noise_key(snr) in metrics
    ]
    if in_noise:
        lines.append("  operating point recall in noise: " + ", ".join(in_noise))
    return lines


def tensorboard_writer(performance: PerformanceConfig) -> Any:
    """A TensorBoard summary writer in `<tensorboard_log_dir>/tensorboard`, or None when it is off."""
    if not performance.tensorboard_enabled:
        return None
    import tensorflow as tf

    return tf.summary.create_file_writer(str(Path(performance.tensorboard_log_dir) / TENSORBOARD_DIR))


def write_scalars(writer: Any, step: int, prefix: str, values: Mapping[str, Any]) -> None:
    """The numbers among `values` as TensorBoard scalars `prefix/key` at `step` (none without a writer).

    Booleans and anything not an int or float are left out.
    """
    if writer is None:
        return
    import tensorflow as tf

    with writer.as_default(step=step):
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                tf.summary.scalar(f"{prefix}/{key}", float(value))
