"""Step-based training in phases: the set-up, the loop and the batches it trains on.

The loop reads batches sampled ahead of time on a background thread (mww.data.sampler) from the
augmented store and runs one compiled train step per batch (Adam, weighted binary cross-entropy).
Every `eval_step_interval` steps it validates (mww.train.validation), mines hard negatives when
due (mww.train.mining) and saves a resumable state (mww.train.resume); what it prints goes through
mww.train.runlog.
"""

from __future__ import annotations

import cProfile
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from mww.config.schema import MwwConfig, PerformanceConfig, TrainingConfig
from mww.data.sampler import Batch, Prefetcher, Source, WindowSampler, step_rng
from mww.data.sources import TrainingData, build_training_data
from mww.data.specaugment import get_spec_augment, phase_mask_settings
from mww.device.constants import MEL_BINS
from mww.model.builder import build_model, count_parameters
from mww.model.plan import training_input_frames
from mww.model.scoring import StreamScorer
from mww.model.streaming import sequence_scorer
from mww.train.checkpoints import BEST_NAME
from mww.train.errors import TrainError
from mww.train.fine_tune import check_initial_checkpoint, load_initial_weights
from mww.train.lock import training_lock
from mww.train.mining import MinedWindow, load_mined, mine_hard_negatives, save_mined
from mww.train.resume import load_resume, resume_dir, save_resume
from mww.train.runlog import RunLog, progress_line, tensorboard_writer, validation_table, write_scalars
from mww.train.validation import Selection, save_validation, validation_metrics
from mww.train.weight_average import WeightAverage, weight_average_for


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


def class_weights(training: TrainingConfig, phase: int) -> dict[str, float]:
    """Class weight of every kind of training source in one phase; mined windows take the hard-negative
    weight, and so do false wakes unless `training.false_wake_class_weight` sets theirs."""
    hard = training.hard_negative_class_weight[phase]
    false_wake = training.false_wake_class_weight
    return {
        "positive": training.positive_class_weight[phase],
        "negative": training.negative_class_weight[phase],
        "hard_negative": hard,
        "mined": hard,
        "false_wake": hard if false_wake is None else false_wake,
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


def phase_of(step: int, steps: list[int]) -> int:
    """0-based phase of a 0-based global step."""
    bound = 0
    for phase, n in enumerate(steps):
        bound += n
        if step < bound:
            return phase
    return len(steps) - 1


@contextmanager
def profiled(performance: PerformanceConfig, step: int) -> Iterator[None]:
    """cProfile the block into `<profile_output_dir>/training_step_<step + 1>.prof` when profiling is
    on and `step` is one of every `profile_every_n_steps`; otherwise just run it."""
    if not (performance.enable_profiling and step % performance.profile_every_n_steps == 0):
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    yield
    profiler.disable()
    folder = Path(performance.profile_output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(folder / f"training_step_{step + 1}.prof"))


@dataclass
class _Run:
    """What one training run works on, and where it stands."""

    data: TrainingData
    model: Any
    optimizer: Any
    average: WeightAverage | None
    train_step: Callable[..., Any]
    predict: Callable[[np.ndarray], np.ndarray]
    writer: Any
    selection: Selection
    mined: list[MinedWindow]
    start: int
    began: float = field(default_factory=time.perf_counter)

    def averaged(self) -> Any:
        """A block in which the model holds the weights' moving average, when there is one."""
        return self.average.applied() if self.average else nullcontext()


class Trainer:
    """`Trainer(config).train(resume=False)`: the whole training stage of one config."""

    def __init__(
        self,
        config: MwwConfig,
        progress: bool = True,
        out: TextIO | None = None,
        init_from: str | Path | None = None,
    ) -> None:
        self.config = config
        self.init_from = init_from  # a trained checkpoint to start from (mww.train.fine_tune)
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
        """Class weight of each of the sampler's sources: its own (a feature set's), else its kind's."""
        return np.array(
            [
                s.class_weight if s.class_weight is not None else by_kind[s.weight_kind or s.name]
                for s in self.sampler.sources
            ],
            dtype=np.float32,
        )

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

    def _start(self, log: RunLog, resume: bool) -> _Run:
        """Data, model, optimizer and compiled steps of a run, restored from the resume state if asked."""
        import keras

        cfg, t = self.config, self.config.training
        log.line(
            f"mww-train: {cfg.model.architecture}, input {self.input_frames} frames, {t.num_phases} "
            f"phase(s), {t.total_steps} steps, batch {t.batch_size}"
        )
        initial = None if self.init_from is None else check_initial_checkpoint(self.init_from, cfg)
        data = build_training_data(cfg, self.input_frames, progress=self.progress)
        log.line(
            "training examples: "
            + ", ".join(f"{k} {v}" for k, v in data.counts.items())
            + f"; validation: {len(data.validation.labels)} clips, "
            + f"{data.validation.ambient_hours:.2f} h ambient"
        )
        keras.utils.set_random_seed(t.seed)
        model = build_model(cfg.model, (self.input_frames, MEL_BINS))
        if initial is not None:  # before the moving average, which starts at the model's weights
            load_initial_weights(model, initial)
            log.line(f"starting from {initial.path}" + (f" (step {initial.step})" if initial.step else ""))
        optimizer = keras.optimizers.Adam(learning_rate=t.learning_rates[0])
        average = weight_average_for(model.trainable_variables, t.ema_decay)
        averaged = f"; validating and saving the weights' moving average (decay {t.ema_decay})"
        log.line(f"model: {count_parameters(model)} parameters{averaged if average else ''}")

        selection, start, mined = Selection(), 0, []
        if resume:
            state = load_resume(cfg, model, optimizer, average)
            selection, start = Selection.from_state(state), int(state["step"])
            mined = load_mined(Path(cfg.paths.checkpoint_dir))
            log.line(f"resumed at step {start} with {len(mined)} mined hard negatives")

        self.sampler = self._sampler(data, mined)
        self.spec_augment = get_spec_augment(prefer_gpu=self.on_gpu)
        return _Run(
            data=data,
            model=model,
            optimizer=optimizer,
            average=average,
            train_step=compile_train_step(model, optimizer, t.batch_size, self.input_frames, average),
            predict=compile_predict(model, self.input_frames),
            writer=tensorboard_writer(cfg.performance),
            selection=selection,
            mined=mined,
            start=start,
        )

    # ------------------------------------------------------------------ one validation
    def _validate(self, run: _Run, step: int, log: RunLog) -> bool:
        """Validate (the weights' moving average, if any), log and save it, and mine hard negatives
        when due; returns whether it mined (the sampler then has new windows)."""
        cfg = self.config
        mining_every = cfg.training.eval_step_interval * cfg.hard_negative_mining.mining_interval_epochs
        mine = (
            cfg.hard_negative_mining.enabled and step % mining_every == 0 and step < cfg.training.total_steps
        )
        with run.averaged():
            stream = sequence_scorer(run.model, cfg.model)
            metrics = validation_metrics(cfg, run.predict, run.data.validation, stream)
            for row in validation_table(metrics, step, log.tty):
                log.line(row)
            write_scalars(run.writer, step, "validation", metrics)
            if save_validation(run.model, cfg, step, metrics, run.selection):
                log.line(
                    f"  new best checkpoint at step {step}: {Path(cfg.paths.checkpoint_dir) / BEST_NAME}"
                )
            if mine:
                run.mined = self._mine(stream, run.data, step, log)
        return mine

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

    def _save_resume(self, run: _Run, step: int) -> None:
        save_resume(self.config, run.model, run.optimizer, run.average, step, run.selection.to_state())

    def _report(self, run: _Run, log: RunLog, step: int, phase: int, loss_acc: tuple[float, float]) -> None:
        """The progress line, and the training scalars in TensorBoard."""
        t = self.config.training
        elapsed = time.perf_counter() - run.began
        rate = (step - run.start) / elapsed if elapsed > 0 else 0.0
        lr = t.learning_rates[phase]
        log.status(
            progress_line(phase, step, t.total_steps, elapsed, rate, *loss_acc, lr), step, t.total_steps
        )
        scalars = {"loss": loss_acc[0], "accuracy": loss_acc[1], "learning_rate": lr}
        write_scalars(run.writer, step, "train", scalars)

    # ------------------------------------------------------------------ the run
    def train(self, resume: bool = False) -> TrainingResult:
        """Train every phase; returns where the best checkpoint is. Holds the lock of
        `paths.checkpoint_dir` throughout (`mww.train.lock`): a second run on that folder is refused."""
        with training_lock(self.config.paths.checkpoint_dir) as stale:
            tf = self._tensorflow()
            log = RunLog(Path(self.config.performance.tensorboard_log_dir), self.out)
            try:
                if stale is not None:
                    log.line(f"took over the lock of a run that ended ({stale.describe()})")
                run = self._start(log, resume)
                step, interrupted = self._loop(tf, run, log)
            finally:
                log.close()
        best = run.selection.best
        return TrainingResult(
            Path(self.config.paths.checkpoint_dir) / BEST_NAME if best else None,
            best.step if best else None,
            best.metrics if best else {},
            step,
            interrupted,
            log.path,
            run.selection.history,
        )

    def _loop(self, tf: Any, run: _Run, log: RunLog) -> tuple[int, bool]:
        """Train from `run.start` to the last step, or to Ctrl-C; returns (last step, interrupted)."""
        cfg, t = self.config, self.config.training
        total = t.total_steps
        log_every = max(1, min(100, t.eval_step_interval // 5))
        step = run.start
        prefetch = Prefetcher(self._make_batch, step, total)
        try:
            while step < total:
                phase = phase_of(step, t.training_steps)
                run.optimizer.learning_rate.assign(t.learning_rates[phase])
                x, y, w = prefetch.get()
                with profiled(cfg.performance, step):
                    loss, acc = run.train_step(x, y, w)
                step += 1
                if step % log_every == 0 or step == total:
                    self._report(run, log, step, phase, (float(loss), float(acc)))
                if step % t.eval_step_interval == 0 or step == total:
                    if self._validate(run, step, log):  # sample the freshly mined windows from here on
                        prefetch.close()
                        self.sampler = self._sampler(run.data, run.mined)
                        prefetch = Prefetcher(self._make_batch, step, total)
                    self._save_resume(run, step)
                if self.stop_after is not None and step >= self.stop_after and step < total:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            self._save_resume(run, step)
            log.line(
                f"interrupted at step {step}: saved a resumable checkpoint in {resume_dir(cfg)}; "
                "continue with --resume"
            )
            return step, True
        except tf.errors.ResourceExhaustedError as exc:
            raise TrainError(
                f"The accelerator ran out of memory at step {step} with batch {t.batch_size}. Lower "
                "training.batch_size (halve it), or set performance.mixed_precision: true on a GPU."
            ) from exc
        finally:
            prefetch.close()
            if run.writer:
                run.writer.flush()
        return step, False
