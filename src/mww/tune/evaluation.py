"""How mww-autotune measures a session's model: as the device runs it, on one split at a time.

The float Keras model's outputs are streamed over every recording of a split (`split_outputs`) and
measured with the device's detector at one setting, beside the full sweep of cutoffs and windows
(`measure_at`, `mww.evaluate.measure.measure`). `confirm` measures the start and the tuned weights at
their settings on the validation split and on the held-out test split, which no decision saw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mww.config.schema import MwwConfig
from mww.data.sources import EvalData
from mww.tune.decision import TuneTarget, resolution_note
from mww.tune.session import Session

CONFIRMED_KEYS = ("recall", "fah", "false_activations", "hard_negative_false_detection_rate")


def split_outputs(session: Session, data: EvalData, config: MwwConfig) -> Any:
    """uint8 outputs of the current weights on every stream of one split (float Keras model)."""
    from mww.evaluate.outputs import keras_outputs_fn, run_outputs

    return run_outputs(data, keras_outputs_fn(session.model, config.model))


def measure_at(
    session: Session,
    data: EvalData,
    outputs: Any,
    setting: tuple[float, int, str],
    config: MwwConfig,
    target_fah: float,
) -> dict[str, Any]:
    """Device-faithful measurement of outputs: the detector at `setting` (cutoff, window, where they come
    from), and the full sweep."""
    from mww.device.features import silence_output_u8
    from mww.evaluate.measure import Settings, measure
    from mww.evaluate.outputs import keras_outputs_fn

    return measure(
        data,
        outputs,
        Settings(*setting),
        input_frames=session.trainer.input_frames,
        stride=config.model.stride,
        target_fah=target_fah,
        silence_u8=silence_output_u8(keras_outputs_fn(session.model, config.model)),
    )


def confirm(
    session: Session, config: MwwConfig, target: TuneTarget, note: Callable[[str | None], None]
) -> dict[str, Any]:
    """Start and tuned model at their settings on validation and test (the held-out confirmation).

    The start is also measured at the settings it was calibrated with. The best weights are in the
    model again afterwards; `note` gets what the splits' durations say about FA/h resolution.
    """
    state, shipped = session.state, session.shipped
    assert state.start is not None and state.best is not None
    result: dict[str, Any] = {}
    for name, weights, point in (
        ("start", session.start_weights, state.start),
        ("tuned", session.best.weights, state.best),
    ):
        if name == "tuned" and point == state.start:  # nothing better was found: the same measurement
            result[name] = {split: result["start"][split] for split in ("validation", "test")}
            break
        session.model.set_weights(weights)
        entry = {}
        for split, data in (("validation", session.data.validation), ("test", session.test)):
            outputs = split_outputs(session, data, config)
            setting = (point.cutoff, point.window, "mww-autotune")
            measured = measure_at(session, data, outputs, setting, config, target.fah)
            note(resolution_note(split, measured["counts"]["fah_hours"], target.fah))
            entry[split] = {k: measured["at_settings"][k] for k in CONFIRMED_KEYS}
            if name == "start":
                calibrated = (shipped.probability_cutoff, shipped.sliding_window_size, shipped.source)
                at_shipped = measure_at(session, data, outputs, calibrated, config, target.fah)
                entry[f"{split}_as_calibrated"] = {k: at_shipped["at_settings"][k] for k in CONFIRMED_KEYS}
        result[name] = entry
    session.model.set_weights(session.best.weights)
    return result
