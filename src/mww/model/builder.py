"""Wake-word models that stream on the ESP32: MixedNet (default), a frame-stacking DNN and a CNN.

Every architecture is built from one `ModelPlan` (see `plan_model`), shared by the non-streaming
training model below, the streaming twin in `mww.model.streaming`, the receptive field, the state count
and the MAC count, so the three can never disagree about the network.

Layout (tensors are NHWC with the time axis as height and a width of 1; the 40 feature bins are
the channels of the input):

* first layer: a convolution over `first_conv_kernel_size` frames with a time stride of
  `stride` frames and no bias, then ReLU. The stride equals the streaming step: the device calls
  the model once every `stride` frames, and every layer after this one produces exactly one new
  frame per call.
* blocks (one per entry of the block strings), each repeated `repeat_in_block` times:
    - `mixednet`: a MixConv (the input channels are split into one group per kernel size of the
      block, one depthwise convolution per group, outputs concatenated), then a 1x1 convolution
      to `pointwise_filters` channels, BatchNorm, ReLU. A block whose largest kernel is 1 has no
      MixConv.
    - `cnn`: ordinary (full) convolutions over time, one per kernel size of the block, each
      producing an equal share of `pointwise_filters` channels, concatenated, BatchNorm, ReLU.
    - `dnn`: a fully connected layer per frame (a 1x1 convolution) to `pointwise_filters`
      channels, BatchNorm, ReLU. The DNN has no temporal convolution after the first layer, which
      stacks `first_conv_kernel_size` frames; `mixconv_kernel_sizes` is not used.
  With a residual connection, the block input passes through a 1x1 convolution and BatchNorm
  and is added before the last ReLU of the block.
* head: the last `W` frames of the final feature map are flattened (dropout in training) into
  one sigmoid unit. `W` is the number of model steps that cover the training clip, so the
  decision sees the clip duration of features.

All convolutions are valid-padded in time. Outputs of different kernel sizes, and the residual
branch, are aligned at their LATEST frame (the earliest frames of the longer outputs are cropped),
which is exactly what a streaming layer computes from its ring buffer. Hence the training model on
`training_input_frames` frames computes the same function as the streaming model after it has
seen those frames. `crnn` is refused: GRU/LSTM ops are not among the ops ESPHome registers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import keras
from keras import layers

from mww.config.schema import HardwareConfig, ModelConfig
from mww.device.constants import MAX_RESOURCE_VARIABLES, MEL_BINS
from mww.errors import MwwError

STREAMABLE_ARCHITECTURES = ("mixednet", "dnn", "cnn")
REFUSED_ARCHITECTURES = {
    "crnn": (
        "its GRU/LSTM recurrence needs ops (UNIDIRECTIONAL_SEQUENCE_LSTM, WHILE, ...) that ESPHome's "
        "micro_wake_word does not register, so the model would fail at tensor allocation on the ESP32"
    ),
}
INPUT_NAME = "features"
# Moving statistics follow training within a few dozen steps (Keras defaults to 0.99, which still
# weighs the initial statistics at 37 % after 100 steps: early evaluations then see a different
# network from the one being trained).
BN_MOMENTUM = 0.9
OUTPUT_NAME = "probability"


class ModelConfigError(MwwError, ValueError):
    """A model configuration that cannot be built or cannot stream on the device (one paragraph)."""


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class BlockPlan:
    """One block: `repeats` layers to `filters` channels over `kernels` (temporal kernel sizes)."""

    index: int
    in_channels: int
    filters: int
    kernels: tuple[int, ...]
    repeats: int
    residual: bool

    @property
    def max_kernel(self) -> int:
        """Largest temporal kernel of the block: each repeat eats `max_kernel - 1` frames."""
        return max(self.kernels)

    def repeat_in_channels(self, repeat: int) -> int:
        """Input channels of repeat number `repeat`."""
        return self.in_channels if repeat == 0 else self.filters


@dataclass(frozen=True)
class ModelPlan:
    """Everything about a network's shape that does not depend on its input length."""

    architecture: str
    first_filters: int
    first_kernel: int
    stride: int
    blocks: tuple[BlockPlan, ...]
    dropout_rate: float
    l2_regularization: float

    @property
    def out_channels(self) -> int:
        """Channels of the final feature map (the head's input per frame)."""
        return self.blocks[-1].filters if self.blocks else self.first_filters

    @property
    def frames_eaten_after_first(self) -> int:
        """Model-rate frames the blocks' valid convolutions consume."""
        return sum(b.repeats * (b.max_kernel - 1) for b in self.blocks)


def split_channels(total: int, groups: int) -> list[int]:
    """Split `total` channels into `groups` near-equal parts, the first taking the remainder."""
    sizes = [total // groups] * groups
    sizes[0] += total - sum(sizes)
    return sizes


def plan_model(model_cfg: ModelConfig) -> ModelPlan:
    """The layer plan of `model_cfg`; ModelConfigError if it cannot be built or streamed."""
    arch = model_cfg.architecture
    if arch in REFUSED_ARCHITECTURES:
        raise ModelConfigError(
            f"model.architecture '{arch}' cannot run on the device: {REFUSED_ARCHITECTURES[arch]}. "
            f"Use one of {', '.join(STREAMABLE_ARCHITECTURES)} (mixednet is the default and streams)."
        )
    if arch not in STREAMABLE_ARCHITECTURES:
        raise ModelConfigError(
            f"model.architecture '{arch}' is unknown; use one of {', '.join(STREAMABLE_ARCHITECTURES)}."
        )
    filters = model_cfg.pointwise_filters_list
    kernels = model_cfg.mixconv_kernel_sizes_list
    repeats = model_cfg.repeat_in_block_list
    residuals = model_cfg.residual_connection_list
    if not len(filters) == len(kernels) == len(repeats) == len(residuals):
        raise ModelConfigError(
            "The model block strings describe different numbers of blocks: pointwise_filters has "
            f"{len(filters)}, mixconv_kernel_sizes {len(kernels)}, repeat_in_block {len(repeats)}, "
            f"residual_connection {len(residuals)}. Give each the same number of entries."
        )
    blocks = []
    channels = model_cfg.first_conv_filters
    for index, (width, ksizes, rep, res) in enumerate(zip(filters, kernels, repeats, residuals, strict=True)):
        temporal = (1,) if arch == "dnn" else tuple(ksizes)
        block = BlockPlan(index, channels, width, temporal, rep, res)
        _check_groups(arch, block)
        blocks.append(block)
        channels = width
    return ModelPlan(
        architecture=arch,
        first_filters=model_cfg.first_conv_filters,
        first_kernel=model_cfg.first_conv_kernel_size,
        stride=model_cfg.stride,
        blocks=tuple(blocks),
        dropout_rate=model_cfg.dropout_rate,
        l2_regularization=model_cfg.l2_regularization,
    )


def _check_groups(arch: str, block: BlockPlan) -> None:
    groups = len(block.kernels)
    if groups == 1 or block.max_kernel == 1:
        return
    for repeat in range(block.repeats):
        channels = block.filters if arch == "cnn" else block.repeat_in_channels(repeat)
        if channels < groups:
            what = "output filters" if arch == "cnn" else "input channels"
            raise ModelConfigError(
                f"Block {block.index} lists {groups} kernel sizes {list(block.kernels)} but has only "
                f"{channels} {what} to split among them. Give the block fewer kernel sizes in "
                "model.mixconv_kernel_sizes or more filters."
            )


# --------------------------------------------------------------------------- derived lengths


def receptive_field_frames(model_cfg: ModelConfig) -> int:
    """Input frames that one output frame of the final feature map depends on."""
    plan = plan_model(model_cfg)
    return plan.first_kernel + plan.stride * plan.frames_eaten_after_first


def head_window_steps(hardware_cfg: HardwareConfig, model_cfg: ModelConfig) -> int:
    """Final-layer frames the head sees: enough model steps to cover one training clip."""
    return max(1, math.ceil(hardware_cfg.clip_frames / model_cfg.stride))


def training_input_frames(hardware_cfg: HardwareConfig, model_cfg: ModelConfig) -> int:
    """THE input length (feature frames) of the training, export and evaluation model.

    The head sees `W = ceil(clip_frames / stride)` final frames, one per model step, spanning
    `W * stride` frames of stream time (at least the clip); the first of them needs a whole
    receptive field `R` before it. So the length is `R + (W - 1) * stride`. It is congruent to
    `first_conv_kernel_size` modulo `stride`, which makes the strided first convolution end on
    the last frame, exactly as the streaming model does after each call. For the default MixedNet
    and 1 s clips: R = 5 + 3 * (4 + 8 + 12 + 20) = 137, W = 33, length = 233 frames.
    """
    return receptive_field_frames(model_cfg) + (head_window_steps(hardware_cfg, model_cfg) - 1) * (
        model_cfg.stride
    )


def final_frames(model_cfg: ModelConfig, input_frames: int) -> int:
    """Frames of the final feature map (the head window) for `input_frames` of input."""
    check_input_frames(model_cfg, input_frames)
    plan = plan_model(model_cfg)
    return (input_frames - plan.first_kernel) // plan.stride + 1 - plan.frames_eaten_after_first


def check_input_frames(model_cfg: ModelConfig, input_frames: int) -> None:
    """ModelConfigError unless the network streams exactly on inputs of `input_frames` frames."""
    plan = plan_model(model_cfg)
    field = receptive_field_frames(model_cfg)
    hint = (
        "Derive the input length with mww.model.builder.training_input_frames(config.hardware, config.model)."
    )
    if input_frames < field:
        raise ModelConfigError(
            f"An input of {input_frames} frames is shorter than the model's receptive field of {field} "
            f"frames, so the valid convolutions leave nothing for the head. {hint}"
        )
    if (input_frames - plan.first_kernel) % plan.stride:
        raise ModelConfigError(
            f"An input of {input_frames} frames does not end on a stride boundary: with a first kernel of "
            f"{plan.first_kernel} and a stride of {plan.stride} the strided convolution would skip the "
            f"newest {(input_frames - plan.first_kernel) % plan.stride} frame(s), and the training model "
            f"would not compute what the streaming model computes. {hint}"
        )


# --------------------------------------------------------------------------- streaming state


@dataclass(frozen=True)
class StateSpec:
    """One ring buffer of the streaming model: the last `frames` frames of `channels` channels."""

    name: str
    frames: int
    channels: int


def first_state_frames(plan: ModelPlan) -> int:
    """Input frames the first layer keeps between calls (its kernel minus the new frames)."""
    return max(plan.first_kernel - plan.stride, 0)


def streaming_states(model_cfg: ModelConfig, input_frames: int) -> list[StateSpec]:
    """The ring buffers of the streaming model, in call order (each becomes a resource variable)."""
    plan = plan_model(model_cfg)
    window = final_frames(model_cfg, input_frames)
    states = []
    if first_state_frames(plan):
        states.append(StateSpec("first_conv_state", first_state_frames(plan), MEL_BINS))
    for block in plan.blocks:
        if block.max_kernel > 1:
            for repeat in range(block.repeats):
                states.append(
                    StateSpec(
                        f"block{block.index}_rep{repeat}_state",
                        block.max_kernel - 1,
                        block.repeat_in_channels(repeat),
                    )
                )
    if window > 1:
        states.append(StateSpec("head_state", window - 1, plan.out_channels))
    return states


def check_streamable(model_cfg: ModelConfig, input_frames: int) -> None:
    """ModelConfigError if the streaming model would need more resource variables than ESPHome has."""
    count = len(streaming_states(model_cfg, input_frames))
    if count > MAX_RESOURCE_VARIABLES:
        raise ModelConfigError(
            f"This model needs {count} ring buffers (resource variables) to stream: one for the first "
            "layer, one per repeat of every block whose largest kernel exceeds 1, and one for the head. "
            f"ESPHome's micro_wake_word holds at most {MAX_RESOURCE_VARIABLES}. Lower model.repeat_in_block "
            "or use fewer blocks."
        )


# --------------------------------------------------------------------------- layers


@keras.saving.register_keras_serializable(package="mww")
class ChannelSlice(layers.Layer):
    """Channels `start:stop` of the last axis (one MixConv group)."""

    def __init__(self, start: int, stop: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start = start
        self.stop = stop

    def call(self, inputs: Any) -> Any:
        """Slice the channel axis."""
        return inputs[..., self.start : self.stop]

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Same shape with `stop - start` channels."""
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self) -> dict[str, Any]:
        """Serializable configuration."""
        return {**super().get_config(), "start": self.start, "stop": self.stop}


def layer_names(plan: ModelPlan) -> dict[str, Any]:
    """Names of the weighted layers; the streaming twin finds the trained weights by these names."""
    return {
        "first": "first_conv",
        "group": lambda b, r, g: f"block{b}_rep{r}_{'conv' if plan.architecture == 'cnn' else 'dw'}{g}",
        "pointwise": lambda b, r: f"block{b}_rep{r}_pointwise",
        "bn": lambda b, r: f"block{b}_rep{r}_bn",
        "residual_conv": lambda b: f"block{b}_residual_conv",
        "residual_bn": lambda b: f"block{b}_residual_bn",
        "head": "head_dense",
    }


def _crop_to(x: Any, frames: int, name: str) -> Any:
    """Keep the newest `frames` frames of `x` (drop the earliest)."""
    extra = x.shape[1] - frames
    if extra == 0:
        return x
    return layers.Cropping2D(((extra, 0), (0, 0)), name=name)(x)


def _temporal_layer(x: Any, plan: ModelPlan, block: BlockPlan, repeat: int, reg: Any) -> Any:
    """The MixConv (mixednet) or multi-kernel convolution (cnn) of one repeat."""
    names = layer_names(plan)
    prefix = f"block{block.index}_rep{repeat}"
    in_channels = block.repeat_in_channels(repeat)
    out_frames = x.shape[1] - (block.max_kernel - 1)
    outputs = []
    if plan.architecture == "cnn":
        for g, (k, width) in enumerate(
            zip(block.kernels, split_channels(block.filters, len(block.kernels)), strict=True)
        ):
            y = layers.Conv2D(
                width,
                (k, 1),
                padding="valid",
                use_bias=False,
                kernel_regularizer=reg,
                name=names["group"](block.index, repeat, g),
            )(x)
            outputs.append(_crop_to(y, out_frames, f"{prefix}_crop{g}"))
    else:
        start = 0
        for g, (k, width) in enumerate(
            zip(block.kernels, split_channels(in_channels, len(block.kernels)), strict=True)
        ):
            part = (
                x
                if len(block.kernels) == 1
                else ChannelSlice(start, start + width, name=f"{prefix}_split{g}")(x)
            )
            start += width
            y = layers.DepthwiseConv2D(
                (k, 1),
                padding="valid",
                use_bias=False,
                depthwise_regularizer=reg,
                name=names["group"](block.index, repeat, g),
            )(part)
            outputs.append(_crop_to(y, out_frames, f"{prefix}_crop{g}"))
    if len(outputs) == 1:
        return outputs[0]
    return layers.Concatenate(axis=-1, name=f"{prefix}_concat")(outputs)


def build_model(model_cfg: ModelConfig, input_shape: tuple[int, int]) -> keras.Model:
    """The non-streaming Keras model: input (frames, 40) float features, output one sigmoid unit.

    `input_shape[0]` should come from `training_input_frames`; ModelConfigError if the model cannot
    be built or streamed for it.
    """
    frames, bins = int(input_shape[0]), int(input_shape[1])
    if bins != MEL_BINS:
        raise ModelConfigError(f"The model input needs {MEL_BINS} feature bins per frame, not {bins}.")
    plan = plan_model(model_cfg)
    check_input_frames(model_cfg, frames)
    check_streamable(model_cfg, frames)
    names = layer_names(plan)
    reg = keras.regularizers.L2(plan.l2_regularization) if plan.l2_regularization > 0 else None

    inputs = keras.Input(shape=(frames, MEL_BINS), name=INPUT_NAME)
    x = layers.Reshape((frames, 1, MEL_BINS), name="to_nhwc")(inputs)
    x = layers.Conv2D(
        plan.first_filters,
        (plan.first_kernel, 1),
        strides=(plan.stride, 1),
        padding="valid",
        use_bias=False,
        kernel_regularizer=reg,
        name=names["first"],
    )(x)
    x = layers.ReLU(name="first_relu")(x)
    for block in plan.blocks:
        b = block.index
        residual = None
        if block.residual:
            residual = layers.Conv2D(
                block.filters, 1, use_bias=False, kernel_regularizer=reg, name=names["residual_conv"](b)
            )(x)
            residual = layers.BatchNormalization(momentum=BN_MOMENTUM, name=names["residual_bn"](b))(residual)
        for r in range(block.repeats):
            if block.max_kernel > 1 or plan.architecture == "cnn":
                x = _temporal_layer(x, plan, block, r, reg)
            if plan.architecture != "cnn":
                x = layers.Conv2D(
                    block.filters, 1, use_bias=False, kernel_regularizer=reg, name=names["pointwise"](b, r)
                )(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=names["bn"](b, r))(x)
            if residual is not None and r == block.repeats - 1:
                residual = _crop_to(residual, x.shape[1], f"block{b}_residual_crop")
                x = layers.Add(name=f"block{b}_residual_add")([x, residual])
            x = layers.ReLU(name=f"block{b}_rep{r}_relu")(x)
    x = layers.Flatten(name="head_flatten")(x)
    if plan.dropout_rate > 0:
        x = layers.Dropout(plan.dropout_rate, name="head_dropout")(x)
    outputs = layers.Dense(
        1, activation="sigmoid", kernel_regularizer=reg, dtype="float32", name=names["head"]
    )(x)
    return keras.Model(inputs, outputs, name=f"{plan.architecture}_{frames}x{MEL_BINS}")


# --------------------------------------------------------------------------- size and compute


def count_parameters(model: keras.Model) -> int:
    """Trainable parameters of `model` (BatchNorm's moving statistics are not counted)."""
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


def macs_per_step(model_cfg: ModelConfig, input_frames: int | None = None) -> int:
    """Multiply-accumulates of one streaming call (one `stride`-frame step, 30 ms by default).

    BatchNorm folds into the convolutions and costs nothing. The head depends on the input length:
    `input_frames` defaults to `training_input_frames` for the default hardware section (the
    `standard` clip duration); pass the real one for other clip lengths.
    """
    plan = plan_model(model_cfg)
    if input_frames is None:
        input_frames = training_input_frames(HardwareConfig(), model_cfg)
    window = final_frames(model_cfg, input_frames)
    macs = plan.first_kernel * MEL_BINS * plan.first_filters
    for block in plan.blocks:
        if block.residual:
            macs += block.in_channels * block.filters
        for r in range(block.repeats):
            cin = block.repeat_in_channels(r)
            if plan.architecture == "cnn":
                widths = split_channels(block.filters, len(block.kernels))
                macs += sum(k * cin * w for k, w in zip(block.kernels, widths, strict=True))
                continue
            if block.max_kernel > 1:
                widths = split_channels(cin, len(block.kernels))
                macs += sum(k * w for k, w in zip(block.kernels, widths, strict=True))
            macs += cin * block.filters
    return macs + window * plan.out_channels


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
