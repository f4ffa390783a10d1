"""Step-based training in phases: the loop, evaluation, checkpoint selection, mining and resume.

The loop reads batches sampled ahead of time on a background thread (mww.data.sampler) from the
augmented store, runs one compiled train step per batch (Adam, weighted binary cross-entropy),
and every `eval_step_interval` steps scores the validation split the way the device would see it:
clip windows, positive clips streamed with the device's detector, and the ambient recordings
streamed for false activations per hour over their measured duration.
"""

from __future__ import annotations

import cProfile
import io
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

from mww.atomic import atomic_write_bytes, atomic_write_json
from mww.config.schema import MwwConfig, TrainingConfig
from mww.data.sampler import Batch, Prefetcher, Source, WindowSampler, step_rng
from mww.data.sources import NOISE_SNRS_DB, EvalData, TrainingData, build_training_data, noise_key
from mww.data.specaugment import get_spec_augment, phase_mask_settings
from mww.device.constants import MEL_BINS
from mww.device.detection import detected_in, format_cutoff, probabilities_to_uint8
from mww.errors import MwwError
from mww.model.builder import build_model, count_parameters, training_input_frames
from mww.model.scoring import StreamScorer, score_windows
from mww.model.streaming import sequence_scorer
from mww.train.checkpoints import (
    BEST_NAME,
    CALIBRATION_FILE,
    Candidate,
    config_hash,
    is_better,
    save_weights_atomic,
    write_checkpoint,
)
from mww.train.metrics import (
    CALIBRATION_CUTOFFS,
    OPERATING_POINT_WINDOWS,
    compute_all_metrics,
    false_activation_streams,
)
from mww.train.mining import MinedWindow, load_mined, mine_hard_negatives, save_mined
from mww.train.weight_average import WeightAverage, weight_average_for

RESUME_DIR = "resume"
PROGRESS_BAR = "{desc} |{bar:20}|"  # the progress line, then the bar
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
)


class TrainError(MwwError):
    """Training cannot start or go on; the message says what to do."""


@dataclass
class TrainingResult:
    """Where the best checkpoint is and how the run ended."""

    best_checkpoint: Path | None
    best_step: int | None
    best_metrics: dict[str, Any]
    last_step: int
    interrupted: bool
    log_path: Path
    history: list[dict[str, Any]] = field(default_factory=list)


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


def class_weights(training: TrainingConfig, phase: int) -> dict[str, float]:
    """Class weight of every training source in one phase; mined windows take the hard-negative weight."""
    return {
        "positive": training.positive_class_weight[phase],
        "negative": training.negative_class_weight[phase],
        "hard_negative": training.hard_negative_class_weight[phase],
        "mined": training.hard_negative_class_weight[phase],
    }


def compile_train_step(
    model: Any, optimizer: Any, batch_size: int, input_frames: int, average: WeightAverage | None = None
) -> Callable[..., Any]:
    """One compiled step: Adam on the weighted binary cross-entropy; returns (loss, accuracy).

    With `average`, the step also moves the weights' moving average (mww.train.weight_average).
    """
    import keras
    import tensorflow as tf

    spec = [
        tf.TensorSpec([batch_size, input_frames, MEL_BINS], tf.float32),
        tf.TensorSpec([batch_size], tf.float32),
        tf.TensorSpec([batch_size], tf.float32),
    ]
    bce = keras.losses.BinaryCrossentropy(reduction=None)

    @tf.function(input_signature=spec)
    def train_step(x: Any, y: Any, w: Any) -> Any:
        with tf.GradientTape() as tape:
            p = tf.cast(model(x, training=True), tf.float32)
            losses = bce(y[:, None], p)
            loss = tf.reduce_sum(w * losses) / tf.maximum(tf.reduce_sum(w), 1e-9)
            if model.losses:
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        if average is not None:
            average.update()
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.cast(p[:, 0] > 0.5, tf.float32), y), tf.float32))
        return loss, acc

    return train_step


def compile_predict(model: Any, input_frames: int) -> Callable[[np.ndarray], np.ndarray]:
    """The model's probabilities for float windows [B, T, 40], through one compiled forward pass."""
    import tensorflow as tf

    forward = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([None, input_frames, MEL_BINS], tf.float32)],
    )

    def predict(x: np.ndarray) -> np.ndarray:
        return forward(x).numpy()

    return predict


def write_arrays(path: Path, arrays: Sequence[np.ndarray]) -> None:
    """Save a list of arrays (resume state) atomically, in order."""
    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    atomic_write_bytes(path, buffer.getvalue())


def read_arrays(path: Path) -> list[np.ndarray]:
    """The arrays `write_arrays` saved, in order."""
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def phase_of(step: int, steps: list[int]) -> int:
    """0-based phase of a 0-based global step."""
    bound = 0
    for phase, n in enumerate(steps):
        bound += n
        if step < bound:
            return phase
    return len(steps) - 1


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


class Trainer:
    """`Trainer(config).train(resume=False)`: the whole training stage of one config."""

    def __init__(self, config: MwwConfig, progress: bool = True, out: TextIO | None = None) -> None:
        self.config = config
        self.progress = progress
        self.out = out or sys.stdout
        self.input_frames = training_input_frames(config.hardware, config.model)
        self.stop_after: int | None = None  # stop (as on Ctrl-C) once this step is done: tests, tools

    # ------------------------------------------------------------------ set-up
    def _tensorflow(self) -> Any:
        import tensorflow as tf

        perf = self.config.performance
        if perf.intra_op_parallelism:
            tf.config.threading.set_intra_op_parallelism_threads(perf.intra_op_parallelism)
        if perf.inter_op_parallelism:
            tf.config.threading.set_inter_op_parallelism_threads(perf.inter_op_parallelism)
        gpus = tf.config.list_physical_devices("GPU")
        if perf.gpu_only and not gpus:
            raise TrainError(
                "performance.gpu_only is true but TensorFlow sees no GPU. Set performance.gpu_only: false to "
                "train on the CPU, or install a GPU build of TensorFlow with its CUDA libraries."
            )
        if gpus and perf.mixed_precision:
            import keras

            keras.mixed_precision.set_global_policy("mixed_float16")
        self.on_gpu = bool(gpus)
        return tf

    def _weights_for(self, phase: int) -> np.ndarray:
        return self.source_weights(class_weights(self.config.training, phase))

    def source_weights(self, by_kind: Mapping[str, float]) -> np.ndarray:
        """Class weight of each of the sampler's sources, from a weight per kind of source."""
        return np.array([by_kind[s.name] for s in self.sampler.sources], dtype=np.float32)

    def _sampler(self, data: TrainingData, mined: list[MinedWindow]) -> WindowSampler:
        sources = list(data.sources)
        if mined:
            sources.append(
                Source(
                    "mined",
                    0,
                    self.config.training.hard_negative_sampling_weight,
                    "fixed",
                    data.train_store,
                    [m.key for m in mined],
                    starts=[m.start for m in mined],
                )
            )
        return WindowSampler(sources, self.input_frames, self.config.training.batch_size)

    def _make_batch(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = self.config.training
        phase = phase_of(step, t.training_steps)
        return self.make_batch(step, phase, self._weights_for(phase), t.seed)

    def make_batch(
        self, step: int, phase: int, weights: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features, labels and sample weights of one step: a pure function of (seed, step).

        `weights` holds one class weight per sampler source (see `source_weights`); SpecAugment uses
        the masks of `phase`. Needs `self.sampler` and `self.spec_augment` to be set.
        """
        batch: Batch = self.sampler.sample(step_rng(seed, step))
        features = self.spec_augment(
            batch.features, **phase_mask_settings(self.config.training, phase), rng=step_rng(seed, step, 1)
        )
        if not isinstance(features, np.ndarray):  # CuPy on a GPU
            from mww.data.specaugment import to_tensorflow

            features = to_tensorflow(features)
        return features, batch.labels, weights[batch.source]

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, predict: Any, data: EvalData, stream: StreamScorer) -> dict[str, Any]:
        """Device-faithful metrics of one evaluation set at the current weights.

        `predict` scores the clip windows and `stream` the streamed recordings (the trainer passes
        `mww.model.streaming.sequence_scorer` of the current weights).
        """
        stride = self.config.model.stride
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
            target_fah=self.config.training.target_minimization,
            cutoff=self.config.export.probability_cutoff,
            window=self.config.export.sliding_window_size,
            operating_point_windows=OPERATING_POINT_WINDOWS,
            cutoffs=CALIBRATION_CUTOFFS,
            stride=stride,
            positives_armed_at_start=True,  # a positive clip is one utterance, not a device start-up
            # The duration is the measured audio length; the first window (about 2 s) of each
            # recording is not scored, which the consistency check would flag for short recordings.
            check_duration=False,
        )
        cutoff, window = self.config.export.probability_cutoff, self.config.export.sliding_window_size
        fired = detected_in(hard, cutoff, window, stride=stride, armed_at_start=True)
        metrics["hard_negative_false_detection_rate"] = sum(fired) / len(fired) if fired else 0.0
        # Recall in noise at the operating point (what export would use): positives over background audio.
        at = (metrics["operating_point_cutoff"], metrics["operating_point_window"])
        for snr, streams in data.noise_streams.items():
            hits = detected_in(stream(streams), *at, stride=stride, armed_at_start=True)
            metrics[noise_key(snr)] = sum(hits) / len(hits) if hits else 0.0
        return metrics

    # ------------------------------------------------------------------ one validation
    def _record_evaluation(
        self,
        model: Any,
        step: int,
        metrics: dict[str, Any],
        best: Candidate | None,
        best_fah: float | None,
        state: dict[str, Any],
        log: RunLog,
        writer: Any,
    ) -> tuple[Candidate | None, float | None]:
        """Log one validation, write its checkpoints and return the new (best, best_fah)."""
        import tensorflow as tf

        cfg, ckpt_dir = self.config, Path(self.config.paths.checkpoint_dir)
        for row in validation_table(metrics, step, log.tty):
            log.line(row)
        if writer:
            with writer.as_default(step=step):
                for key, value in metrics.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        tf.summary.scalar(f"validation/{key}", float(value))
        calibration = {
            "probability_cutoff": float(metrics["operating_point_cutoff"]),
            "sliding_window_size": int(metrics["operating_point_window"]),
            "meets_target": bool(metrics["operating_point_meets_target"]),
        }
        record = {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool))}
        saved = (step, record, cfg, calibration)
        write_checkpoint(model, ckpt_dir / f"checkpoint_step_{step}.weights.h5", *saved)
        candidate = Candidate(step, {k: float(v) for k, v in record.items()})
        fah = candidate.metrics["ambient_false_positives_per_hour"]
        if best_fah is None or fah < best_fah:
            best_fah = fah
            write_checkpoint(model, ckpt_dir / f"best_fah_step_{step}.weights.h5", *saved)
        if is_better(candidate, best, cfg.training):
            best = candidate
            write_checkpoint(model, ckpt_dir / BEST_NAME, *saved)
            atomic_write_json(ckpt_dir / CALIBRATION_FILE, {**calibration, "step": step})
            log.line(f"  new best checkpoint at step {step}: {ckpt_dir / BEST_NAME}")
        state["history"].append({"step": step, **record})
        return best, best_fah

    def _mine(self, stream: StreamScorer, data: TrainingData, step: int, log: RunLog) -> list[MinedWindow]:
        """Score the negative pool, keep (and save) the windows above the mining threshold."""
        hn = self.config.hard_negative_mining
        mined = mine_hard_negatives(
            stream,
            data.train_store,
            data.negative_pool,
            self.input_frames,
            self.config.model.stride,
            hn.fp_threshold,
            hn.max_samples,
        )
        save_mined(Path(self.config.paths.checkpoint_dir), mined, step)
        log.line(f"  mined {len(mined)} hard-negative windows scoring ≥ {hn.fp_threshold}")
        return mined

    # ------------------------------------------------------------------ resume state
    def _resume_dir(self) -> Path:
        return Path(self.config.paths.checkpoint_dir) / RESUME_DIR

    def _save_resume(
        self, model: Any, optimizer: Any, step: int, state: dict[str, Any], average: WeightAverage | None
    ) -> None:
        folder = self._resume_dir()
        folder.mkdir(parents=True, exist_ok=True)
        save_weights_atomic(model, folder / "weights.weights.h5")
        write_arrays(folder / "optimizer.npz", [np.asarray(v) for v in optimizer.variables])
        if average is not None:
            write_arrays(folder / "average.npz", average.state())
        atomic_write_json(
            folder / "state.json", {**state, "step": step, "config_hash": config_hash(self.config)}
        )

    def _load_resume(self, model: Any, optimizer: Any, average: WeightAverage | None) -> dict[str, Any]:
        folder = self._resume_dir()
        state_path = folder / "state.json"
        if not state_path.exists():
            raise TrainError(
                f"--resume found no resumable checkpoint in {folder}. Start without --resume, or point "
                "paths.checkpoint_dir at the folder of the interrupted run."
            )
        state = json.loads(state_path.read_text())
        if state.get("config_hash") != config_hash(self.config):
            raise TrainError(
                f"The checkpoint in {folder} was made with a different config (hash "
                f"{state.get('config_hash')}, now {config_hash(self.config)}). Resume with the same --config "
                "and --override, or start anew."
            )
        model.load_weights(folder / "weights.weights.h5")
        optimizer.build(model.trainable_variables)
        values = read_arrays(folder / "optimizer.npz")
        if len(values) != len(optimizer.variables):
            raise TrainError(
                f"The optimizer state in {folder} does not match the model; start without --resume."
            )
        for var, value in zip(optimizer.variables, values, strict=True):
            var.assign(value)
        if average is not None:
            try:
                average.load_state(read_arrays(folder / "average.npz"))
            except (OSError, ValueError) as exc:
                raise TrainError(
                    f"The weights' moving average in {folder / 'average.npz'} is missing or does not match "
                    f"the model ({exc}); start without --resume."
                ) from exc
        return state

    # ------------------------------------------------------------------ the run
    def train(self, resume: bool = False) -> TrainingResult:
        """Train every phase; returns where the best checkpoint is."""
        tf = self._tensorflow()
        import keras

        cfg = self.config
        log = RunLog(Path(cfg.performance.tensorboard_log_dir), self.out)
        try:
            return self._train(tf, keras, log, resume)
        finally:
            log.close()

    def _train(self, tf: Any, keras: Any, log: RunLog, resume: bool) -> TrainingResult:
        cfg, t = self.config, self.config.training
        ckpt_dir = Path(cfg.paths.checkpoint_dir)
        log.line(
            f"mww-train: {cfg.model.architecture}, input {self.input_frames} frames, {t.num_phases} "
            f"phase(s), {t.total_steps} steps, batch {t.batch_size}"
        )
        data = build_training_data(cfg, self.input_frames, progress=self.progress)
        log.line(
            "training examples: "
            + ", ".join(f"{k} {v}" for k, v in data.counts.items())
            + f"; validation: {len(data.validation.labels)} clips, "
            + f"{data.validation.ambient_hours:.2f} h ambient"
        )
        keras.utils.set_random_seed(t.seed)
        model = build_model(cfg.model, (self.input_frames, MEL_BINS))
        optimizer = keras.optimizers.Adam(learning_rate=t.learning_rates[0])
        average = weight_average_for(model.trainable_variables, t.ema_decay)
        averaged = f"; validating and saving the weights' moving average (decay {t.ema_decay})"
        log.line(f"model: {count_parameters(model)} parameters{averaged if average else ''}")

        state: dict[str, Any] = {"best": None, "best_fah": None, "history": []}
        start = 0
        mined: list[MinedWindow] = []
        if resume:
            state = self._load_resume(model, optimizer, average)
            start = int(state["step"])
            mined = load_mined(ckpt_dir)
            log.line(f"resumed at step {start} with {len(mined)} mined hard negatives")
        best = Candidate(**state["best"]) if state.get("best") else None
        best_fah = state.get("best_fah")

        self.sampler = self._sampler(data, mined)
        self.spec_augment = get_spec_augment(prefer_gpu=self.on_gpu)
        train_step = compile_train_step(model, optimizer, t.batch_size, self.input_frames, average)
        predict = compile_predict(model, self.input_frames)

        writer = (
            tf.summary.create_file_writer(str(Path(cfg.performance.tensorboard_log_dir) / "tensorboard"))
            if cfg.performance.tensorboard_enabled
            else None
        )
        total = t.total_steps
        log_every = max(1, min(100, t.eval_step_interval // 5))
        mining_every = t.eval_step_interval * cfg.hard_negative_mining.mining_interval_epochs
        began = time.perf_counter()
        step = start
        interrupted = False
        loss_acc = (float("nan"), float("nan"))
        prefetch = Prefetcher(self._make_batch, start, total)
        try:
            while step < total:
                phase = phase_of(step, t.training_steps)
                optimizer.learning_rate.assign(t.learning_rates[phase])
                x, y, w = prefetch.get()
                profile = (
                    cfg.performance.enable_profiling and step % cfg.performance.profile_every_n_steps == 0
                )
                if profile:
                    profiler = cProfile.Profile()
                    profiler.enable()
                loss, acc = train_step(x, y, w)
                if profile:
                    profiler.disable()
                    folder = Path(cfg.performance.profile_output_dir)
                    folder.mkdir(parents=True, exist_ok=True)
                    profiler.dump_stats(str(folder / f"training_step_{step + 1}.prof"))
                step += 1
                if step % log_every == 0 or step == total:
                    loss_acc = (float(loss), float(acc))
                    elapsed = time.perf_counter() - began
                    rate = (step - start) / elapsed if elapsed > 0 else 0.0
                    log.status(
                        progress_line(phase, step, total, elapsed, rate, *loss_acc, t.learning_rates[phase]),
                        step,
                        total,
                    )
                    if writer:
                        with writer.as_default(step=step):
                            tf.summary.scalar("train/loss", loss_acc[0])
                            tf.summary.scalar("train/accuracy", loss_acc[1])
                            tf.summary.scalar("train/learning_rate", t.learning_rates[phase])
                if step % t.eval_step_interval == 0 or step == total:
                    mine = cfg.hard_negative_mining.enabled and step % mining_every == 0 and step < total
                    with average.applied() if average else nullcontext():  # validate and save the average
                        stream = sequence_scorer(model, cfg.model)
                        metrics = self.evaluate(predict, data.validation, stream)
                        best, best_fah = self._record_evaluation(
                            model, step, metrics, best, best_fah, state, log, writer
                        )
                        if mine:
                            mined = self._mine(stream, data, step, log)
                    if mine:
                        prefetch.close()
                        self.sampler = self._sampler(data, mined)
                        prefetch = Prefetcher(self._make_batch, step, total)
                    state.update(best=best.__dict__ if best else None, best_fah=best_fah)
                    self._save_resume(model, optimizer, step, state, average)
                if self.stop_after is not None and step >= self.stop_after and step < total:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            interrupted = True
            state.update(best=best.__dict__ if best else None, best_fah=best_fah)
            self._save_resume(model, optimizer, step, state, average)
            log.line(
                f"interrupted at step {step}: saved a resumable checkpoint in {self._resume_dir()}; "
                "continue with --resume"
            )
        except tf.errors.ResourceExhaustedError as exc:
            raise TrainError(
                f"The accelerator ran out of memory at step {step} with batch {t.batch_size}. Lower "
                "training.batch_size (halve it), or set performance.mixed_precision: true on a GPU."
            ) from exc
        finally:
            prefetch.close()
            if writer:
                writer.flush()
        best_path = ckpt_dir / BEST_NAME if best else None
        return TrainingResult(
            best_path,
            best.step if best else None,
            best.metrics if best else {},
            step,
            interrupted,
            log.path,
            state["history"],
        )
