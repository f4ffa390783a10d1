"""mww-autotune: from a trained checkpoint towards a target FA/h and recall, without training from scratch.

The tuner alternates short fine-tuning bursts with evaluations of the float model on the VALIDATION
split, measured the way the device runs it (`mww.tune.evaluation`: streamed outputs, the device's
detector, false activations over measured durations). A burst reuses the trainer's machinery
(`mww.tune.session`): its sampler over the augmented training store, its SpecAugment masks (of the last
phase), its compiled train step, `auto_tuning.burst_steps` steps at `auto_tuning.burst_learning_rate`.
Every evaluation sweeps the probability cutoff and the sliding window jointly (within the auto_tuning
ranges) and keeps one operating point; `mww.tune.decision.decide` then picks the next step (the rules
are there). The Pareto front of (FA/h, recall) is kept and reported. The best result is confirmed on the
TEST split, which no decision saw, and reported beside the validation numbers it was chosen on.

Files in the output folder (`mww.tune.report`), every one written to a temp file and renamed; the best is
written as soon as it is found, so Ctrl-C leaves the best so far: tuned_weights.weights.h5 with its
sidecar tuned_weights.json, calibration.json (the cutoff and window mww-export reads), iterations.csv
(one row per evaluation), tuning_report.json, and mined_hard_negatives.json/.csv.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mww.atomic import atomic_write_json, atomic_write_text
from mww.config.schema import MwwConfig
from mww.data.sources import EvalData
from mww.device.detection import format_cutoff
from mww.train.checkpoints import CALIBRATION_FILE, sidecar_path
from mww.tune.decision import (
    AutoTuneError,
    Decision,
    TuneTarget,
    check_limits,
    check_search_ranges,
    choose_point,
    decide,
    initial_state,
    resolution_note,
)
from mww.tune.evaluation import confirm, measure_at, split_outputs
from mww.tune.report import (
    ITERATIONS_CSV,
    REPORT_NAME,
    TUNED_NAME,
    iteration_line,
    iteration_row,
    iterations_csv,
    split_line,
    summary_lines,
    tuning_report,
    write_best,
)
from mww.tune.session import Best, Session, burst, mine, optimizer_state, revert_to_best, start_session


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

    def _note(self, session: Session, note: str | None) -> None:
        if note and note not in session.notes:
            session.notes.append(note)
            self._say(f"note: {note}")

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
        from mww.train.checkpoints import CheckpointError, load_checkpoint

        try:
            return load_checkpoint(path, self.config)
        except CheckpointError as exc:
            raise AutoTuneError(f"Cannot tune from this checkpoint: {exc}") from exc

    def _shipped(self, path: Path) -> Any:
        from mww.export.errors import ExportError
        from mww.export.manifest import load_calibration

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
        from mww.data.feature_sets import open_feature_sets
        from mww.data.prepare import prepare_data
        from mww.data.sources import check_dataset, eval_data
        from mww.model.builder import count_parameters
        from mww.model.plan import training_input_frames

        cfg, tuning, target = self.config, self.config.auto_tuning, self.target
        path = self._check_paths(checkpoint_path)
        model = self._load_model(path)
        shipped = self._shipped(path)
        frames = training_input_frames(cfg.hardware, cfg.model)
        feature_sets = open_feature_sets(cfg)
        prepared = prepare_data(cfg, progress=self.progress)
        check_dataset(prepared, cfg, feature_sets)
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
            "  " + split_line("validation (decisions)", validation),
            "  " + split_line("test (confirmation only)", test),
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

    def _open(self, trainer: Any, path: Path) -> Session:
        from mww.data.sources import build_training_data, eval_data

        cfg = self.config
        model = self._load_model(path)
        shipped = self._shipped(path)
        frames = trainer.input_frames
        data = build_training_data(cfg, frames, progress=self.progress)
        test = eval_data(cfg, data.prepared, "test", frames, progress=self.progress)
        self._check_test(test)
        session = start_session(cfg, trainer, model, shipped, data, test)
        self._detail(
            "training examples: "
            + ", ".join(f"{k} {v}" for k, v in data.counts.items())
            + "; "
            + split_line("validation", data.validation)
            + "; "
            + split_line("test", test)
        )
        return session

    def _run(self, session: Session, path: Path) -> TuneResult:
        tuning, target = self.config.auto_tuning, self.target
        self._say(
            f"mww-autotune: {path.name}, targets FA/h <= {target.fah:g} and recall >= {target.recall:g} on "
            f"the validation split; up to {self.max_iterations} iterations of {tuning.burst_steps} steps"
        )
        stopped, interrupted = "", False
        try:
            stopped = self._loop(session)
        except KeyboardInterrupt:
            interrupted, stopped = True, "interrupted (Ctrl-C)"
            self._say("interrupted: keeping the best result so far")
        if session.state.best is None:  # interrupted before the first evaluation finished
            raise KeyboardInterrupt
        return self._finish(session, path, stopped, interrupted)

    def _loop(self, session: Session) -> str:
        """Evaluate and decide, then fine-tune for a burst, until a decision stops; returns why."""
        tuning, shipped = self.config.auto_tuning, session.shipped
        setting = (shipped.probability_cutoff, shipped.sliding_window_size, shipped.source)
        while True:
            began = time.perf_counter()
            decision = self._iterate(session, setting)
            self._detail(f"evaluation and decision took {time.perf_counter() - began:.1f} s")
            if decision.stop:
                return decision.detail.removeprefix("stop: ")
            best = session.state.best
            assert best is not None
            setting = (best.cutoff, best.window, "the best so far")
            began = time.perf_counter()
            loss, acc = burst(session, session.state, self.config)
            self._detail(
                f"burst: {tuning.burst_steps} steps in {time.perf_counter() - began:.1f} s, "
                f"loss={loss:.4f} acc={acc:.4f}"
            )

    def _iterate(self, session: Session, setting: tuple[float, int, str]) -> Decision:
        """One evaluation of the current weights (at `setting`, and the sweep) and the decision on it,
        carried out: the best written, fresh hard negatives mined, the best weights back; one row logged."""
        cfg, tuning, target = self.config, self.config.auto_tuning, self.target
        validation, state = session.data.validation, session.state
        outputs = split_outputs(session, validation, cfg)
        measured = measure_at(session, validation, outputs, setting, cfg, target.fah)
        if state.start is None:
            self._note(session, resolution_note("validation", measured["counts"]["fah_hours"], target.fah))
        references = tuple(p for p in (state.start, state.best) if p is not None)
        point = choose_point(measured["sweep"], tuning, target, references, state.iteration)
        decision = decide(
            state, point, tuning, target, max_iterations=self.max_iterations, patience=self.patience
        )
        used = state  # the class weights of the burst that led to this point
        best = session.best
        if decision.improved:
            best = Best(session.model.get_weights(), optimizer_state(session.optimizer), used)
        # Committed together (a Ctrl-C cannot split them): the state and the best weights.
        session.state, session.best = decision.state, best
        if decision.improved:
            write_best(session, point, used, cfg, target, self.output_dir)
        # Mined with the model that fired, also when the next burst goes back to the best weights.
        mined = mine(session, cfg, self.output_dir) if decision.mine else 0
        if decision.revert:
            revert_to_best(session)
        row = iteration_row(point, session.step, used, decision, mined, tuning)
        session.rows.append(row)
        self._say(iteration_line(row))
        atomic_write_text(self.output_dir / ITERATIONS_CSV, iterations_csv(session.rows))
        return decision

    def _finish(self, session: Session, path: Path, stopped: str, interrupted: bool) -> TuneResult:
        """The best weights back in the model and written, confirmed on the test split unless interrupted,
        and reported."""
        best = session.state.best
        assert best is not None
        session.model.set_weights(session.best.weights)
        # A consistent pair even after a Ctrl-C mid-write.
        write_best(session, best, session.best.state, self.config, self.target, self.output_dir)
        confirmed = None
        if not interrupted:
            try:
                confirmed = confirm(session, self.config, self.target, lambda note: self._note(session, note))
            except KeyboardInterrupt:
                interrupted, stopped = True, f"{stopped}; interrupted (Ctrl-C) during the test-split check"
                self._say("interrupted: the tuned result is kept without its test-split check")
        report = tuning_report(
            session,
            self.config,
            self.target,
            checkpoint=path,
            output_dir=self.output_dir,
            limits={"max_iterations": self.max_iterations, "patience": self.patience},
            stopped=stopped,
            interrupted=interrupted,
            confirmed=confirmed,
        )
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
            stop_reason=stopped,
            lines=lines,
        )
