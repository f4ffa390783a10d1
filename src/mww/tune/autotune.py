"""mww-autotune: from a trained checkpoint towards a target FA/h and recall, without training from scratch.

The tuner alternates short fine-tuning bursts with evaluations of the float model on the VALIDATION
split, measured the way the device runs it (`mww.evaluate.measure.measure`: streamed outputs, the device's
detector, false activations over measured durations). A burst reuses the trainer's machinery: its
sampler over the augmented training store, its SpecAugment masks (of the last phase), its compiled
train step, `auto_tuning.burst_steps` steps at `auto_tuning.burst_learning_rate`. Every evaluation
sweeps the probability cutoff and the sliding window jointly (within the auto_tuning ranges) and
keeps one operating point; `mww.tune.decision.decide` then picks the next step (the rules are
there). The Pareto front of (FA/h, recall) is kept and reported. The best result is confirmed on the
TEST split, which no decision saw, and reported beside the validation numbers it was chosen on.

Files in the output folder, every one written to a temp file and renamed; the best is written as
soon as it is found, so Ctrl-C leaves the best so far: tuned_weights.weights.h5 with its sidecar
tuned_weights.json, calibration.json (the cutoff and window mww-export reads), iterations.csv (one
row per evaluation), tuning_report.json, and mined_hard_negatives.json/.csv.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from mww.atomic import atomic_write_json, atomic_write_text
from mww.config.schema import MwwConfig
from mww.data.sources import EvalData
from mww.device.detection import format_cutoff
from mww.train.checkpoints import CALIBRATION_FILE, config_hash, sidecar_path, write_checkpoint
from mww.tune.decision import (
    AutoTuneError,
    Point,
    TuneState,
    TuneTarget,
    check_limits,
    check_search_ranges,
    choose_point,
    decide,
    initial_state,
    resolution_note,
)

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


# --------------------------------------------------------------------------- the tuner


@dataclass
class TuneResult:
    """Where the tuned checkpoint and the report are, and how tuning ended."""

    checkpoint: Path
    calibration_path: Path
    report_path: Path
    iterations_path: Path
    report: dict[str, Any]
    interrupted: bool
    stop_reason: str
    lines: list[str] = field(default_factory=list)


@dataclass
class _Session:
    """Everything a tuning run holds: model, optimizer, compiled steps, data, mined windows."""

    trainer: Any
    model: Any
    optimizer: Any
    train_step: Callable[..., Any]
    data: Any  # mww.data.sources.TrainingData
    test: EvalData
    shipped: Any  # mww.export.convert.Calibration of the starting checkpoint
    mined: list[Any] = field(default_factory=list)
    step: int = 0  # global step: the config's training steps, then the bursts'
    notes: list[str] = field(default_factory=list)


class AutoTuner:
    """`AutoTuner(config, target).tune(checkpoint_path)`: fine-tune a checkpoint towards `target`."""

    def __init__(
        self,
        config: MwwConfig,
        target: TuneTarget | None = None,
        *,
        max_iterations: int = 100,
        patience: int = 10,
        output_dir: str | Path = "tuning",
        out: TextIO | None = None,
        verbose: bool = False,
        progress: bool = False,
    ) -> None:
        self.config = config
        self.target = target or TuneTarget()
        self.target.check()
        check_limits(max_iterations, patience)
        check_search_ranges(config.auto_tuning)
        self.max_iterations = max_iterations
        self.patience = patience
        self.output_dir = Path(output_dir).expanduser().absolute()
        self.out = out or sys.stdout
        self.verbose = verbose
        self.progress = progress

    # ------------------------------------------------------------------ output
    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _detail(self, text: str) -> None:
        if self.verbose:
            self._say("  " + text)

    # ------------------------------------------------------------------ checks shared with the dry run
    def _check_paths(self, checkpoint_path: str | Path) -> Path:
        path = Path(checkpoint_path).expanduser().absolute()
        if not path.is_file():
            raise AutoTuneError(
                f"The checkpoint {path} does not exist{' (it is a folder)' if path.is_dir() else ''}. Pass "
                "--checkpoint with a .weights.h5 file written by mww-train, for example "
                "checkpoints/best_weights.weights.h5."
            )
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise AutoTuneError(
                f"--output-dir {self.output_dir} is a file, not a folder. Pass a folder for the tuned "
                "checkpoint and the report (default ./tuning)."
            )
        if self.output_dir == path.parent:
            raise AutoTuneError(
                f"--output-dir {self.output_dir} is the folder of the starting checkpoint: the tuned "
                "calibration.json would replace the one that belongs to the checkpoints there. Pass another "
                "folder, for example --output-dir ./tuning."
            )
        return path

    def _load_model(self, path: Path) -> Any:
        from mww.export.convert import ExportError, load_checkpoint

        try:
            return load_checkpoint(path, self.config)
        except ExportError as exc:
            raise AutoTuneError(f"Cannot tune from this checkpoint: {exc}") from exc

    def _shipped(self, path: Path) -> Any:
        from mww.export.convert import ExportError, load_calibration

        try:
            return load_calibration(self.config, path)
        except ExportError as exc:
            raise AutoTuneError(f"The starting checkpoint's calibration cannot be read: {exc}") from exc

    def _check_test(self, data: EvalData) -> None:
        cfg = self.config
        if not data.positive_streams:
            raise AutoTuneError(
                "The test split has no positive clips, so the tuned result cannot be confirmed on held-out "
                f"voices (positive folder {cfg.paths.positive_dir}; data.test_fraction is "
                f"{cfg.data.test_fraction}, from {cfg.source_of('data.test_fraction')}). Add speakers, raise "
                "data.test_fraction or name speakers in data.test_speakers."
            )
        if not data.ambient_streams and not data.negative_streams:
            raise AutoTuneError(
                "The test split has no negative clips and no ambient recordings, so false activations per "
                f"hour cannot be confirmed on held-out audio. Add negatives ({cfg.paths.negative_dir}) or at "
                f"least two ambient recordings ({cfg.paths.ambient_dir})."
            )

    # ------------------------------------------------------------------ dry run
    def dry_run(self, checkpoint_path: str | Path) -> list[str]:
        """Check config, checkpoint, data and targets; return the plan.

        Nothing is trained and nothing is written to the output folder (preparing the data caches its
        features in paths.processed_dir, as training does).
        """
        from mww.data.prepare import prepare_data
        from mww.data.sources import check_dataset, eval_data
        from mww.model.builder import count_parameters, training_input_frames

        cfg, tuning, target = self.config, self.config.auto_tuning, self.target
        path = self._check_paths(checkpoint_path)
        model = self._load_model(path)
        shipped = self._shipped(path)
        frames = training_input_frames(cfg.hardware, cfg.model)
        prepared = prepare_data(cfg, progress=self.progress)
        check_dataset(prepared, cfg)
        validation = eval_data(cfg, prepared, "validation", frames, progress=self.progress)
        test = eval_data(cfg, prepared, "test", frames, progress=self.progress)
        self._check_test(test)
        state = initial_state(cfg)
        train = {k: len(prepared.ingest.of(k, "train")) for k in ("positive", "negative", "hard_negative")}
        return [
            "mww-autotune dry run: the inputs are valid; nothing trained, the output folder untouched.",
            f"checkpoint  {path}: {cfg.model.architecture}, {count_parameters(model)} parameters, input "
            f"{frames} frames (loads into the config's model)",
            f"  its detector settings: cutoff {format_cutoff(shipped.probability_cutoff)}, window "
            f"{shipped.sliding_window_size} (from {shipped.source})",
            f"data        train: {train['positive']} positives, {train['negative']} negatives, "
            f"{train['hard_negative']} hard negatives",
            "  " + _split_line("validation (decisions)", validation),
            "  " + _split_line("test (confirmation only)", test),
            f"targets     FA/h <= {target.fah:g} and recall >= {target.recall:g} on the validation split",
            f"plan        up to {self.max_iterations} iterations of {tuning.burst_steps} fine-tuning steps "
            f"at learning rate {tuning.burst_learning_rate:g} (batch {cfg.training.batch_size}; x"
            f"{tuning.drift_learning_rate_factor:g} after each burst that drifted); stop at the targets or "
            f"after {self.patience} iteration(s) without a better result",
            f"  class weights: positive {state.positive_weight:g} (x{tuning.positive_weight_step:g} up to "
            f"{tuning.max_positive_weight:g}), hard negative {state.hard_negative_weight:g} "
            f"(x{tuning.hard_negative_weight_step:g} up to {tuning.max_hard_negative_weight:g}), negative "
            f"{cfg.training.negative_class_weight[-1]:g}",
            f"  mining: training negatives scoring >= {tuning.mining_fp_threshold:g}, at most "
            f"{tuning.mining_max_samples} windows per iteration",
            f"  search: cutoff {format_cutoff(tuning.cutoff_min)}..{format_cutoff(tuning.cutoff_max)} x "
            f"window {tuning.window_min}..{tuning.window_max}, the FA/h target also met "
            f"{tuning.cutoff_margin:g} below the cutoff; not worse than the start: recall at most "
            f"{tuning.recall_tolerance:g} lower, FA/h at most {tuning.fah_tolerance:g} higher",
            f"output      {self.output_dir}/: {TUNED_NAME}, {sidecar_path(TUNED_NAME).name}, "
            f"calibration.json, {ITERATIONS_CSV}, {REPORT_NAME}",
        ]

    # ------------------------------------------------------------------ the run
    def tune(self, checkpoint_path: str | Path) -> TuneResult:
        """Tune from `checkpoint_path`; the best result and the report end up in the output folder.

        Raises AutoTuneError (and the config, data and training errors) with a one-paragraph message.
        Ctrl-C (KeyboardInterrupt) ends tuning with the best result so far written; `interrupted` is set.
        """
        path = self._check_paths(checkpoint_path)
        from mww.train.trainer import Trainer

        trainer = Trainer(self.config, progress=self.progress, out=self.out)
        tf = trainer._tensorflow()
        try:
            session = self._open(trainer, path)
            return self._run(session, path)
        except tf.errors.ResourceExhaustedError as exc:
            raise AutoTuneError(
                f"The accelerator ran out of memory with batch {self.config.training.batch_size}. Lower "
                "training.batch_size (halve it) in an --override file."
            ) from exc

    def _open(self, trainer: Any, path: Path) -> _Session:
        import keras

        from mww.data.sources import build_training_data, eval_data
        from mww.data.specaugment import get_spec_augment
        from mww.train.trainer import compile_train_step

        cfg, tuning = self.config, self.config.auto_tuning
        model = self._load_model(path)
        shipped = self._shipped(path)
        frames = trainer.input_frames
        data = build_training_data(cfg, frames, progress=self.progress)
        test = eval_data(cfg, data.prepared, "test", frames, progress=self.progress)
        self._check_test(test)
        keras.utils.set_random_seed(tuning.seed)
        optimizer = keras.optimizers.Adam(learning_rate=tuning.burst_learning_rate)
        optimizer.build(model.trainable_variables)  # its state can then be saved with the best weights
        trainer.sampler = trainer._sampler(data, [])
        trainer.spec_augment = get_spec_augment(prefer_gpu=trainer.on_gpu)
        session = _Session(
            trainer=trainer,
            model=model,
            optimizer=optimizer,
            train_step=compile_train_step(model, optimizer, cfg.training.batch_size, frames),
            data=data,
            test=test,
            shipped=shipped,
            step=cfg.training.total_steps,
        )
        self._detail(
            "training examples: "
            + ", ".join(f"{k} {v}" for k, v in data.counts.items())
            + "; "
            + _split_line("validation", data.validation)
            + "; "
            + _split_line("test", test)
        )
        return session

    def _outputs(self, session: _Session, data: EvalData) -> Any:
        """uint8 outputs of the current weights on every stream of one split (float Keras model)."""
        from mww.evaluate.measure import keras_outputs_fn, run_outputs

        return run_outputs(data, keras_outputs_fn(session.model, self.config.model))

    def _measure(
        self, session: _Session, data: EvalData, outputs: Any, cutoff: float, window: int, source: str
    ) -> dict[str, Any]:
        """Device-faithful measurement of outputs: the detector at one setting, and the full sweep."""
        from mww.evaluate.measure import Settings, measure

        return measure(
            data,
            outputs,
            Settings(cutoff, window, source),
            input_frames=session.trainer.input_frames,
            stride=self.config.model.stride,
            target_fah=self.target.fah,
        )

    def _mine(self, session: _Session) -> int:
        """Mine fresh hard negatives from the training negatives; returns how many were new."""
        from mww.model.streaming import sequence_scorer
        from mww.train.mining import mine_hard_negatives, save_mined

        tuning, trainer, data = self.config.auto_tuning, session.trainer, session.data
        fresh = mine_hard_negatives(
            sequence_scorer(session.model, self.config.model),
            data.train_store,
            data.negative_pool,
            trainer.input_frames,
            self.config.model.stride,
            tuning.mining_fp_threshold,
            tuning.mining_max_samples,
        )
        known = {(m.key, m.start) for m in session.mined}
        new = [m for m in fresh if (m.key, m.start) not in known]
        if new:
            session.mined = [*session.mined, *new]
            trainer.sampler = trainer._sampler(data, session.mined)
            save_mined(self.output_dir, session.mined, session.step)
        return len(new)

    def _burst(self, session: _Session, state: TuneState) -> tuple[float, float]:
        """`burst_steps` training steps with the state's class weights; returns the last (loss, accuracy)."""
        from mww.data.sampler import Prefetcher

        cfg, tuning, trainer = self.config, self.config.auto_tuning, session.trainer
        weights = trainer.source_weights(
            {
                "positive": state.positive_weight,
                "negative": cfg.training.negative_class_weight[-1],
                "hard_negative": state.hard_negative_weight,
                "mined": state.hard_negative_weight,
            }
        )
        phase = cfg.training.num_phases - 1
        # Set for every burst: going back to the best optimizer state also restores its learning rate.
        session.optimizer.learning_rate.assign(tuning.burst_learning_rate * state.learning_rate_scale)
        first = session.step
        prefetch = Prefetcher(
            lambda step: trainer.make_batch(step, phase, weights, tuning.seed),
            first,
            first + tuning.burst_steps,
        )
        loss = acc = float("nan")
        try:
            for _ in range(tuning.burst_steps):
                loss, acc = session.train_step(*prefetch.get())
                session.step += 1
        finally:
            prefetch.close()
        return float(loss), float(acc)

    def _note(self, session: _Session, note: str | None) -> None:
        if note and note not in session.notes:
            session.notes.append(note)
            self._say(f"note: {note}")

    def _write_best(self, session: _Session, point: Point, state: TuneState) -> None:
        """tuned_weights.weights.h5 + sidecar, then calibration.json (what mww-export reads)."""
        target = self.target
        calibration = {
            "probability_cutoff": point.cutoff,
            "sliding_window_size": point.window,
            "meets_target": point.meets_fah(target),
        }
        record = {
            "validation_fah": point.fah,
            "validation_fah_within_margin": point.guarded_fah,
            "validation_recall": point.recall,
            "iteration": point.iteration,
            "positive_class_weight": state.positive_weight,
            "hard_negative_class_weight": state.hard_negative_weight,
        }
        weights = self.output_dir / TUNED_NAME
        write_checkpoint(session.model, weights, session.step, record, self.config, calibration)
        atomic_write_json(
            self.output_dir / CALIBRATION_FILE,
            {
                **calibration,
                "recall": point.recall,
                "fah": point.fah,
                "fah_within_margin": point.guarded_fah,
                "cutoff_margin": self.config.auto_tuning.cutoff_margin,
                "target_fah": target.fah,
                "target_recall": target.recall,
                "meets_targets": point.meets(target),
                "split": "validation",
                "model": str(weights),
                "iteration": point.iteration,
                "source": "mww-autotune",
            },
        )

    def _run(self, session: _Session, path: Path) -> TuneResult:
        cfg, tuning, target = self.config, self.config.auto_tuning, self.target
        state = initial_state(cfg)
        start_weights = session.model.get_weights()
        best_weights, best_optimizer = start_weights, _optimizer_state(session)
        best_state = state
        rows: list[dict[str, Any]] = []
        stop_reason = ""
        interrupted = False
        self._say(
            f"mww-autotune: {path.name}, targets FA/h <= {target.fah:g} and recall >= {target.recall:g} on "
            f"the validation split; up to {self.max_iterations} iterations of {tuning.burst_steps} steps"
        )
        cutoff, window, source = (
            session.shipped.probability_cutoff,
            session.shipped.sliding_window_size,
            session.shipped.source,
        )
        try:
            while True:
                began = time.perf_counter()
                validation = session.data.validation
                measured = self._measure(
                    session, validation, self._outputs(session, validation), cutoff, window, source
                )
                if state.start is None:
                    self._note(
                        session, resolution_note("validation", measured["counts"]["fah_hours"], target.fah)
                    )
                references = tuple(p for p in (state.start, state.best) if p is not None)
                point = choose_point(measured["sweep"], tuning, target, references, state.iteration)
                decision = decide(
                    state, point, tuning, target, max_iterations=self.max_iterations, patience=self.patience
                )
                used = state  # the class weights of the burst that led to this point
                # Committed together (a Ctrl-C cannot split them): the state and the best weights.
                state, best_weights, best_optimizer, best_state = (
                    decision.state,
                    session.model.get_weights() if decision.improved else best_weights,
                    _optimizer_state(session) if decision.improved else best_optimizer,
                    used if decision.improved else best_state,
                )
                if decision.improved:
                    self._write_best(session, point, used)
                # Mined with the model that fired, also when the next burst goes back to the best weights.
                mined = self._mine(session) if decision.mine else 0
                if decision.revert:
                    session.model.set_weights(best_weights)
                    for variable, value in zip(session.optimizer.variables, best_optimizer, strict=True):
                        variable.assign(value)
                row = {
                    "iteration": point.iteration,
                    "step": session.step,
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
                rows.append(row)
                self._say(_iteration_line(row))
                atomic_write_text(self.output_dir / ITERATIONS_CSV, _csv(rows))
                self._detail(f"evaluation and decision took {time.perf_counter() - began:.1f} s")
                if decision.stop:
                    stop_reason = decision.detail.removeprefix("stop: ")
                    break
                assert state.best is not None
                cutoff, window, source = state.best.cutoff, state.best.window, "the best so far"
                began = time.perf_counter()
                loss, acc = self._burst(session, state)
                self._detail(
                    f"burst: {tuning.burst_steps} steps in {time.perf_counter() - began:.1f} s, "
                    f"loss={loss:.4f} acc={acc:.4f}"
                )
        except KeyboardInterrupt:
            interrupted = True
            stop_reason = "interrupted (Ctrl-C)"
            self._say("interrupted: keeping the best result so far")
        if state.best is None:  # interrupted before the first evaluation finished
            raise KeyboardInterrupt
        session.model.set_weights(best_weights)
        self._write_best(session, state.best, best_state)  # a consistent pair even after a Ctrl-C mid-write
        confirmed = None
        if not interrupted:
            try:
                confirmed = self._confirm(session, state, start_weights, best_weights)
            except KeyboardInterrupt:
                interrupted, stop_reason = (
                    True,
                    f"{stop_reason}; interrupted (Ctrl-C) during the test-split check",
                )
                self._say("interrupted: the tuned result is kept without its test-split check")
        report = self._report(path, session, state, best_state, rows, stop_reason, interrupted, confirmed)
        report_path = atomic_write_json(self.output_dir / REPORT_NAME, report)
        lines = summary_lines(report)
        for line in lines:
            self._say(line)
        return TuneResult(
            checkpoint=self.output_dir / TUNED_NAME,
            calibration_path=self.output_dir / CALIBRATION_FILE,
            report_path=report_path,
            iterations_path=self.output_dir / ITERATIONS_CSV,
            report=report,
            interrupted=interrupted,
            stop_reason=stop_reason,
            lines=lines,
        )

    def _confirm(
        self, session: _Session, state: TuneState, start_weights: list[Any], best_weights: list[Any]
    ) -> dict[str, Any]:
        """Start and tuned model at their settings on validation and test (the held-out confirmation)."""
        assert state.start is not None and state.best is not None
        shipped = session.shipped
        keys = ("recall", "fah", "false_activations", "hard_negative_false_detection_rate")
        result: dict[str, Any] = {}
        for name, weights, point in (
            ("start", start_weights, state.start),
            ("tuned", best_weights, state.best),
        ):
            if name == "tuned" and point == state.start:  # nothing better was found: the same measurement
                result[name] = {split: result["start"][split] for split in ("validation", "test")}
                break
            session.model.set_weights(weights)
            entry = {}
            for split, data in (("validation", session.data.validation), ("test", session.test)):
                outputs = self._outputs(session, data)
                measured = self._measure(session, data, outputs, point.cutoff, point.window, "mww-autotune")
                self._note(session, resolution_note(split, measured["counts"]["fah_hours"], self.target.fah))
                entry[split] = {k: measured["at_settings"][k] for k in keys}
                if name == "start":
                    at_shipped = self._measure(
                        session,
                        data,
                        outputs,
                        shipped.probability_cutoff,
                        shipped.sliding_window_size,
                        shipped.source,
                    )
                    entry[f"{split}_as_calibrated"] = {k: at_shipped["at_settings"][k] for k in keys}
            result[name] = entry
        session.model.set_weights(best_weights)
        return result

    def _report(
        self,
        path: Path,
        session: _Session,
        state: TuneState,
        best_state: TuneState,
        rows: list[dict[str, Any]],
        stop_reason: str,
        interrupted: bool,
        confirmed: dict[str, Any] | None,
    ) -> dict[str, Any]:
        assert state.start is not None and state.best is not None
        target, shipped = self.target, session.shipped
        start, best = state.start, state.best

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

        start_entry = side("start", start)
        start_entry["as_calibrated"] = {
            "probability_cutoff": shipped.probability_cutoff,
            "sliding_window_size": shipped.sliding_window_size,
            "source": shipped.source,
        }
        if confirmed is not None:
            for split in ("validation", "test"):
                start_entry["as_calibrated"][split] = confirmed["start"][f"{split}_as_calibrated"]
        tuned_entry = side("tuned", best)
        tuned_entry["class_weights"] = {
            "positive": best_state.positive_weight,
            "negative": self.config.training.negative_class_weight[-1],
            "hard_negative": best_state.hard_negative_weight,
        }
        meets = {"validation": best.meets(target)}
        if confirmed is not None:
            test = confirmed["tuned"]["test"]
            meets["test"] = test["fah"] <= target.fah and test["recall"] >= target.recall
        return {
            "checkpoint": str(path),
            "config_hash": config_hash(self.config),
            "architecture": self.config.model.architecture,
            "targets": {"fah": target.fah, "recall": target.recall},
            "limits": {"max_iterations": self.max_iterations, "patience": self.patience},
            "auto_tuning": asdict(self.config.auto_tuning),
            "stopped": stop_reason,
            "interrupted": interrupted,
            "iterations": len(rows),
            "fine_tuning_steps": session.step - self.config.training.total_steps,
            "mined_hard_negatives": len(session.mined),
            "start": start_entry,
            "tuned": tuned_entry,
            "meets_targets": meets,
            "pareto_front": [p.as_dict() for p in state.front],
            "history": rows,
            "note": HELD_OUT_NOTE
            if confirmed is not None
            else "interrupted before the test-split confirmation: measure the tuned checkpoint with "
            f"mww-evaluate --checkpoint {self.output_dir / TUNED_NAME} --split test",
            "notes": list(session.notes),
            "files": {
                "checkpoint": str(self.output_dir / TUNED_NAME),
                "sidecar": str(sidecar_path(self.output_dir / TUNED_NAME)),
                "calibration": str(self.output_dir / CALIBRATION_FILE),
                "iterations": str(self.output_dir / ITERATIONS_CSV),
                "report": str(self.output_dir / REPORT_NAME),
            },
        }


def _optimizer_state(session: _Session) -> list[np.ndarray]:
    """A copy of the optimizer's variables (moments, step count), to go back to with the best weights."""
    return [np.array(v) for v in session.optimizer.variables]


# --------------------------------------------------------------------------- text


def _split_line(name: str, data: EvalData) -> str:
    return (
        f"{name}: {len(data.positive_streams)} positives, {len(data.negative_streams)} negatives, "
        f"{len(data.hard_negative_streams)} hard negatives, {len(data.ambient_streams)} ambient recordings "
        f"({data.ambient_seconds / 60:.1f} min)"
    )


def _iteration_line(row: Mapping[str, Any]) -> str:
    """The one line printed per iteration."""
    return (
        f"iteration {row['iteration']:>3}  FA/h {row['fah']:8.3f} ({row['fah_within_margin']:.3f} within "
        f"margin)  recall {row['recall']:.3f}  cutoff "
        f"{format_cutoff(row['probability_cutoff'])}  window {row['sliding_window_size']:>2}"
        f"{'  *best*' if row['new_best'] else '        '}  {row['action']}"
    )


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


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
