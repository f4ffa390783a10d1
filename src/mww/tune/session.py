"""A tuning session: what a run of mww-autotune holds, and the fine-tuning and mining it does.

`start_session` sets the session up around the loaded starting checkpoint: an optimizer built for the
model, the trainer's sampler over the augmented training store, its SpecAugment masks and its compiled
train step. `burst` then runs `auto_tuning.burst_steps` of those steps with the class weights of the
decision state, and `mine` adds fresh hard negatives from the training negatives to the sampler. The
session also records where the run stands: the decision state, the best weights so far with the
optimizer state beside them, and one row per evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mww.config.schema import MwwConfig
from mww.data.sources import EvalData
from mww.tune.decision import TuneState, initial_state


@dataclass(frozen=True)
class Best:
    """The best weights so far, the optimizer state beside them, and the decision state of the burst that
    reached them (its class weights and learning rate)."""

    weights: list[Any]
    optimizer: list[np.ndarray]
    state: TuneState


@dataclass
class Session:
    """Everything a tuning run holds: model, optimizer, compiled step, data, mined windows, progress."""

    trainer: Any
    model: Any
    optimizer: Any
    train_step: Callable[..., Any]
    data: Any  # mww.data.sources.TrainingData
    test: EvalData
    shipped: Any  # the Calibration of the starting checkpoint
    state: TuneState  # the decision state (`mww.tune.decision`)
    start_weights: list[Any]
    best: Best
    mined: list[Any] = field(default_factory=list)
    step: int = 0  # global step: the config's training steps, then the bursts'
    notes: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per evaluation, as in iterations.csv


def optimizer_state(optimizer: Any) -> list[np.ndarray]:
    """A copy of the optimizer's variables (moments, step count), to go back to with the best weights."""
    return [np.array(v) for v in optimizer.variables]


def start_session(
    config: MwwConfig, trainer: Any, model: Any, shipped: Any, data: Any, test: EvalData
) -> Session:
    """A session fine-tuning `model` (loaded from the starting checkpoint, calibrated as `shipped`) on
    `data` with `trainer`'s sampler, masks and train step; random state seeded by `auto_tuning.seed`."""
    import keras

    from mww.data.specaugment import get_spec_augment
    from mww.train.trainer import compile_train_step

    tuning = config.auto_tuning
    keras.utils.set_random_seed(tuning.seed)
    optimizer = keras.optimizers.Adam(learning_rate=tuning.burst_learning_rate)
    optimizer.build(model.trainable_variables)  # its state can then be saved with the best weights
    trainer.sampler = trainer._sampler(data, [])
    trainer.spec_augment = get_spec_augment(prefer_gpu=trainer.on_gpu)
    state = initial_state(config)
    start_weights = model.get_weights()
    return Session(
        trainer=trainer,
        model=model,
        optimizer=optimizer,
        train_step=compile_train_step(model, optimizer, config.training.batch_size, trainer.input_frames),
        data=data,
        test=test,
        shipped=shipped,
        state=state,
        start_weights=start_weights,
        best=Best(start_weights, optimizer_state(optimizer), state),
        step=config.training.total_steps,
    )


def revert_to_best(session: Session) -> None:
    """Put the best weights and the optimizer state beside them back into the model and optimizer."""
    session.model.set_weights(session.best.weights)
    for variable, value in zip(session.optimizer.variables, session.best.optimizer, strict=True):
        variable.assign(value)


def burst(session: Session, state: TuneState, config: MwwConfig) -> tuple[float, float]:
    """`burst_steps` training steps with the state's class weights; returns the last (loss, accuracy)."""
    from mww.data.sampler import Prefetcher

    tuning, trainer = config.auto_tuning, session.trainer
    false_wake = config.training.false_wake_class_weight  # null: the (tuned) hard-negative weight
    weights = trainer.source_weights(
        {
            "positive": state.positive_weight,
            "negative": config.training.negative_class_weight[-1],
            "hard_negative": state.hard_negative_weight,
            "mined": state.hard_negative_weight,
            "false_wake": state.hard_negative_weight if false_wake is None else false_wake,
        }
    )
    phase = config.training.num_phases - 1
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


def mine(session: Session, config: MwwConfig, output_dir: Path) -> int:
    """Mine fresh hard negatives from the training negatives into the sampler (and
    `output_dir/mined_hard_negatives.json`); returns how many were new."""
    from mww.model.streaming import sequence_scorer
    from mww.train.mining import mine_hard_negatives, save_mined

    tuning, trainer, data = config.auto_tuning, session.trainer, session.data
    fresh = mine_hard_negatives(
        sequence_scorer(session.model, config.model),
        data.train_store,
        data.negative_pool,
        trainer.input_frames,
        config.model.stride,
        tuning.mining_fp_threshold,
        tuning.mining_max_samples,
    )
    known = {(m.key, m.start) for m in session.mined}
    new = [m for m in fresh if (m.key, m.start) not in known]
    if new:
        session.mined = [*session.mined, *new]
        trainer.sampler = trainer._sampler(data, session.mined)
        save_mined(output_dir, session.mined, session.step)
    return len(new)
