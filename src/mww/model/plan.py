"""What network a model config describes, and every length derived from it.

An architecture is ONE function in `ARCHITECTURES`: the layers (`mww.model.layers`) of one repeat of a
block. Everything else is shared: the strided first convolution, the blocks (repeats, ReLUs, residual
branch) and the head. From that one layer list (`network_layers`) come the trainable Keras model
(`mww.model.builder`), the streaming step and the whole-sequence pass (`mww.model.streaming`), the
receptive field, the input length, the ring buffers and the MAC count, so they can never disagree.

Layout (tensors are NHWC with the time axis as height and a width of 1; the 40 feature bins are the
channels of the input):

* first layer: a convolution over `first_conv_kernel_size` frames with a time stride of `stride`
  frames, then ReLU. The stride is the streaming step: every later layer produces exactly one new
  frame per call.
* blocks (one per entry of the block strings), each repeated `repeat_in_block` times; per repeat:
    - `mixednet`: a MixConv (the input channels are split into one group per kernel size of the block,
      one depthwise convolution per group, outputs concatenated), then a 1x1 convolution to
      `pointwise_filters` channels and BatchNorm. A block whose largest kernel is 1 has no MixConv.
    - `cnn`: full convolutions over time, one per kernel size of the block, each producing an equal
      share of `pointwise_filters` channels, concatenated, BatchNorm.
    - `dnn`: a fully connected layer per frame (a 1x1 convolution) to `pointwise_filters` channels and
      BatchNorm. The DNN has no temporal convolution after the first layer, which stacks
      `first_conv_kernel_size` frames; `mixconv_kernel_sizes` is not used.
  then ReLU. With a residual connection, the block input passes through a 1x1 convolution and
  BatchNorm and is added before the last ReLU of the block.
* head: the last `W` frames of the final feature map are flattened (dropout in training) into one
  sigmoid unit. `W` is the number of model steps that cover the training clip, so the decision sees
  the clip duration of features.

`crnn` is refused: GRU/LSTM ops are not among the ops ESPHome registers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from mww.config.schema import HardwareConfig, ModelConfig
from mww.device.constants import MAX_RESOURCE_VARIABLES
from mww.errors import MwwError
from mww.model.layers import Block, FirstConv, Head, Layer, MixConv, Pointwise, StateSpec, TemporalConv


class ModelConfigError(MwwError, ValueError):
    """A model configuration that cannot be built or cannot stream on the device (one paragraph)."""


@dataclass(frozen=True)
class BlockPlan:
    """One entry of the block strings: `repeats` repeats to `filters` channels over `kernels`."""

    index: int
    in_channels: int
    filters: int
    kernels: tuple[int, ...]
    repeats: int
    residual: bool

    def repeat_in_channels(self, repeat: int) -> int:
        """Input channels of repeat number `repeat`."""
        return self.in_channels if repeat == 0 else self.filters

    def repeat_name(self, repeat: int) -> str:
        """The prefix of the Keras layer names of repeat number `repeat`."""
        return f"block{self.index}_rep{repeat}"


def split_channels(total: int, groups: int) -> list[int]:
    """Split `total` channels into `groups` near-equal parts, the first taking the remainder."""
    sizes = [total // groups] * groups
    sizes[0] += total - sum(sizes)
    return sizes


def _split(block: BlockPlan, channels: int, what: str) -> tuple[int, ...]:
    """`channels` split into one group per kernel size of `block`; ModelConfigError if too few."""
    groups = len(block.kernels)
    if channels < groups:
        raise ModelConfigError(
            f"Block {block.index} lists {groups} kernel sizes {list(block.kernels)} but has only "
            f"{channels} {what} to split among them. Give the block fewer kernel sizes in "
            "model.mixconv_kernel_sizes or more filters."
        )
    return tuple(split_channels(channels, groups))


# --------------------------------------------------------------------------- the architectures


def _mixednet(block: BlockPlan, repeat: int) -> tuple[Layer, ...]:
    """MixConv over channel groups (none when every kernel is 1), then 1x1 convolution and BatchNorm."""
    name, channels = block.repeat_name(repeat), block.repeat_in_channels(repeat)
    pointwise = Pointwise(f"{name}_pointwise", f"{name}_bn", channels, block.filters)
    if max(block.kernels) == 1:
        return (pointwise,)
    return MixConv(name, block.kernels, _split(block, channels, "input channels")), pointwise


def _cnn(block: BlockPlan, repeat: int) -> tuple[Layer, ...]:
    """Full convolutions over time, one per kernel size, sharing the filters, then BatchNorm."""
    widths = _split(block, block.filters, "output filters")
    return (TemporalConv(block.repeat_name(repeat), block.kernels, block.repeat_in_channels(repeat), widths),)


def _dnn(block: BlockPlan, repeat: int) -> tuple[Layer, ...]:
    """A fully connected layer per frame (1x1 convolution) and BatchNorm; the kernel sizes are unused."""
    name = block.repeat_name(repeat)
    return (Pointwise(f"{name}_pointwise", f"{name}_bn", block.repeat_in_channels(repeat), block.filters),)


# One entry per streamable architecture: the layers of one repeat of a block.
ARCHITECTURES: dict[str, Callable[[BlockPlan, int], tuple[Layer, ...]]] = {
    "mixednet": _mixednet,
    "dnn": _dnn,
    "cnn": _cnn,
}
REFUSED_ARCHITECTURES = {
    "crnn": (
        "its GRU/LSTM recurrence needs ops (UNIDIRECTIONAL_SEQUENCE_LSTM, WHILE, ...) that ESPHome's "
        "micro_wake_word does not register, so the model would fail at tensor allocation on the ESP32"
    ),
}


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ModelPlan:
    """Everything about a network that does not depend on its input length: all layers but the head."""

    architecture: str
    first: FirstConv
    blocks: tuple[Block, ...]
    dropout_rate: float
    l2_regularization: float

    @property
    def stride(self) -> int:
        """Feature frames per streaming step."""
        return self.first.stride

    @property
    def out_channels(self) -> int:
        """Channels of the final feature map (the head's input per frame)."""
        return self.blocks[-1].out_channels if self.blocks else self.first.filters

    @property
    def frames_eaten_after_first(self) -> int:
        """Model-rate frames the blocks' valid convolutions consume."""
        return sum(block.lookback for block in self.blocks)

    @property
    def receptive_field(self) -> int:
        """Input frames that one output frame of the final feature map depends on."""
        return self.first.kernel + self.stride * self.frames_eaten_after_first


def plan_model(model_cfg: ModelConfig) -> ModelPlan:
    """The layer plan of `model_cfg`; ModelConfigError if it cannot be built or streamed."""
    arch = model_cfg.architecture
    names = ", ".join(ARCHITECTURES)
    if arch in REFUSED_ARCHITECTURES:
        raise ModelConfigError(
            f"model.architecture '{arch}' cannot run on the device: {REFUSED_ARCHITECTURES[arch]}. "
            f"Use one of {names} (mixednet is the default and streams)."
        )
    if arch not in ARCHITECTURES:
        raise ModelConfigError(f"model.architecture '{arch}' is unknown; use one of {names}.")
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
        block = BlockPlan(index, channels, width, tuple(ksizes), rep, bool(res))
        shortcut = None
        if block.residual:
            prefix = f"block{index}_residual"
            shortcut = Pointwise(f"{prefix}_conv", f"{prefix}_bn", block.in_channels, block.filters)
        layers = tuple(ARCHITECTURES[arch](block, r) for r in range(block.repeats))
        blocks.append(Block(index, layers, shortcut, block.filters))
        channels = width
    return ModelPlan(
        architecture=arch,
        first=FirstConv(model_cfg.first_conv_filters, model_cfg.first_conv_kernel_size, model_cfg.stride),
        blocks=tuple(blocks),
        dropout_rate=model_cfg.dropout_rate,
        l2_regularization=model_cfg.l2_regularization,
    )


# --------------------------------------------------------------------------- derived lengths


def receptive_field_frames(model_cfg: ModelConfig) -> int:
    """Input frames that one output frame of the final feature map depends on."""
    return plan_model(model_cfg).receptive_field


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
    return (input_frames - plan.first.kernel) // plan.stride + 1 - plan.frames_eaten_after_first


def check_input_frames(model_cfg: ModelConfig, input_frames: int) -> None:
    """ModelConfigError unless the network streams exactly on inputs of `input_frames` frames."""
    plan = plan_model(model_cfg)
    field = plan.receptive_field
    hint = "Derive the input length with mww.model.plan.training_input_frames(config.hardware, config.model)."
    if input_frames < field:
        raise ModelConfigError(
            f"An input of {input_frames} frames is shorter than the model's receptive field of {field} "
            f"frames, so the valid convolutions leave nothing for the head. {hint}"
        )
    if (input_frames - plan.first.kernel) % plan.stride:
        raise ModelConfigError(
            f"An input of {input_frames} frames does not end on a stride boundary: with a first kernel of "
            f"{plan.first.kernel} and a stride of {plan.stride} the strided convolution would skip the "
            f"newest {(input_frames - plan.first.kernel) % plan.stride} frame(s), and the training model "
            f"would not compute what the streaming model computes. {hint}"
        )


# --------------------------------------------------------------------------- the whole network


def network_layers(model_cfg: ModelConfig, input_frames: int) -> tuple[Layer, ...]:
    """Every layer of the network on `input_frames` frames, first to head; ModelConfigError if the
    input length does not fit (see `check_input_frames`)."""
    plan = plan_model(model_cfg)
    head = Head(final_frames(model_cfg, input_frames), plan.out_channels, plan.dropout_rate)
    return (plan.first, *plan.blocks, head)


def streaming_states(model_cfg: ModelConfig, input_frames: int) -> list[StateSpec]:
    """The ring buffers of the streaming model, in call order (each becomes a resource variable)."""
    return [spec for layer in network_layers(model_cfg, input_frames) for spec in layer.states()]


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
