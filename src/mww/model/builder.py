"""The trainable Keras model of a model config, and its size: parameters, MACs per step, one-line summary.

The network is the layer list of `mww.model.plan.network_layers`; each layer adds its own Keras layers
(`mww.model.layers`), whose names and weight layout the streaming twin reads the trained weights by.
"""

from __future__ import annotations

import math

import keras

from mww.config.schema import HardwareConfig, ModelConfig
from mww.device.constants import MEL_BINS
from mww.model.plan import (
    ModelConfigError,
    check_streamable,
    final_frames,
    network_layers,
    plan_model,
    receptive_field_frames,
    streaming_states,
    training_input_frames,
)

INPUT_NAME = "features"
OUTPUT_NAME = "probability"


def build_model(model_cfg: ModelConfig, input_shape: tuple[int, int]) -> keras.Model:
    """The non-streaming Keras model: input (frames, 40) float features, output one sigmoid unit.

    `input_shape[0]` should come from `training_input_frames`; ModelConfigError if the model cannot
    be built or streamed for it.
    """
    frames, bins = int(input_shape[0]), int(input_shape[1])
    if bins != MEL_BINS:
        raise ModelConfigError(f"The model input needs {MEL_BINS} feature bins per frame, not {bins}.")
    plan = plan_model(model_cfg)
    network = network_layers(model_cfg, frames)
    check_streamable(model_cfg, frames)
    reg = keras.regularizers.L2(plan.l2_regularization) if plan.l2_regularization > 0 else None
    inputs = keras.Input(shape=(frames, MEL_BINS), name=INPUT_NAME)
    x = inputs
    for layer in network:
        x = layer.keras(x, reg)
    return keras.Model(inputs, x, name=f"{plan.architecture}_{frames}x{MEL_BINS}")


def count_parameters(model: keras.Model) -> int:
    """Trainable parameters of `model` (BatchNorm's moving statistics are not counted)."""
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


def macs_per_step(model_cfg: ModelConfig, input_frames: int | None = None) -> int:
    """Multiply-accumulates of one streaming call (one `stride`-frame step, 30 ms by default).

    BatchNorm folds into the convolutions and costs nothing. The head depends on the input length:
    `input_frames` defaults to `training_input_frames` for the default hardware section (the
    `standard` clip duration); pass the real one for other clip lengths.
    """
    if input_frames is None:
        input_frames = training_input_frames(HardwareConfig(), model_cfg)
    return sum(layer.macs() for layer in network_layers(model_cfg, input_frames))


def describe_model(model_cfg: ModelConfig, input_frames: int, model: keras.Model | None = None) -> str:
    """One line: architecture, input length, receptive field, parameters, MACs per step, state buffers."""
    params = count_parameters(
        model if model is not None else build_model(model_cfg, (input_frames, MEL_BINS))
    )
    return (
        f"{model_cfg.architecture}: input {input_frames}x{MEL_BINS} frames, receptive field "
        f"{receptive_field_frames(model_cfg)} frames, head window {final_frames(model_cfg, input_frames)} "
        f"steps, {params} parameters, {macs_per_step(model_cfg, input_frames)} MACs per "
        f"{model_cfg.stride}-frame step, {len(streaming_states(model_cfg, input_frames))} ring buffers"
    )
