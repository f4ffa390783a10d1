"""The layer kinds every architecture is made of, each in the three forms the project runs.

A `Layer` builds its trainable Keras layers (`keras`) and, from those layers' trained weights, compiles
the same function in raw TF ops (`compile`): given its ring buffers, one streaming step on the newest
frame(s); without them, one pass over a whole feature sequence that gives every output frame at once.
It also declares the ring buffers it keeps (`states`), the earlier frames each output frame needs
(`lookback`) and its multiply-accumulates per streaming step (`macs`). The kinds: `FirstConv` (the
strided first convolution), `MixConv` (depthwise convolutions over channel groups), `TemporalConv`
(full convolutions over time, BatchNorm), `Pointwise` (1x1 convolution, BatchNorm), `Block` (repeats
of such layers with ReLUs and an optional residual branch) and `Head` (the sigmoid unit).

Tensors are NHWC with the time axis as height and a width of 1. Every convolution is valid-padded in
time; outputs of different kernel sizes, and the residual branch, are aligned at their LATEST frame
(the earliest frames of the longer outputs are cropped), which is exactly what a streaming layer
computes from its ring buffer: the Keras model on `training_input_frames` frames computes the same
function as the streaming model after it has seen those frames.

The streaming step emits only ops that ESPHome's micro_wake_word registers: RESHAPE (never
EXPAND_DIMS), STRIDED_SLICE for channel groups, CONV_2D / DEPTHWISE_CONV_2D with BatchNorm folded
into their weights and bias (`mww.model.weights`), ADD for residuals, CONCATENATION, FULLY_CONNECTED
and LOGISTIC for the head, and the ring buffers as resource variables (`_ring`); the trained weights
are constants.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mww.device.constants import MEL_BINS
from mww.model.weights import Weights

# Moving statistics follow training within a few dozen steps (Keras defaults to 0.99, which still
# weighs the initial statistics at 37 % after 100 steps: early evaluations then see a different
# network from the one being trained).
BN_MOMENTUM = 0.9
_VALID = "VALID"
_UNIT_STRIDES = (1, 1, 1, 1)

Forward = Callable[[tf.Tensor], tf.Tensor]
Regularizer = keras.regularizers.Regularizer | None


@dataclass(frozen=True)
class StateSpec:
    """One ring buffer of the streaming model: the last `frames` frames of `channels` channels."""

    name: str
    frames: int
    channels: int


class Layer(ABC):
    """One layer kind: its Keras layers, its streaming step and sequence pass, its buffers and cost."""

    @property
    def lookback(self) -> int:
        """Earlier frames (at the model step rate) each output frame needs besides the newest one.

        A layer's valid convolutions shrink a sequence by this many frames, and its streaming step keeps
        them in its ring buffer.
        """
        return 0

    def states(self) -> list[StateSpec]:
        """The ring buffers of the streaming step, in the order `compile` takes them."""
        return []

    @abstractmethod
    def macs(self) -> int:
        """Multiply-accumulates of one streaming step (BatchNorm folds in and costs nothing)."""

    @abstractmethod
    def keras(self, x: Any, reg: Regularizer) -> Any:
        """Apply this layer's trainable Keras layers to the Keras tensor `x`."""

    @abstractmethod
    def compile(self, weights: Weights, buffers: Sequence[tf.Variable] | None) -> Forward:
        """The layer over its trained weights as constants.

        With `buffers` (one variable per `states` entry) one streaming step: the newest frame(s) in,
        one output frame out, the ring buffers updated. With None a pass over a whole sequence
        [batch, frames, 1, channels] that returns every output frame.
        """


def compile_chain(chain: Sequence[Layer], weights: Weights, buffers: Sequence[tf.Variable] | None) -> Forward:
    """The layers of `chain` one after another, each given its own ring buffers from `buffers`."""
    shares = _share_buffers([(layer,) for layer in chain], buffers)
    forwards = [layer.compile(weights, share) for layer, share in zip(chain, shares, strict=True)]

    def run(x: tf.Tensor) -> tf.Tensor:
        for forward in forwards:
            x = forward(x)
        return x

    return run


def _share_buffers(
    groups: Sequence[Sequence[Layer]], buffers: Sequence[tf.Variable] | None
) -> list[list[tf.Variable] | None]:
    """`buffers` cut into one run per group of layers by their `states` counts (None stays None)."""
    if buffers is None:
        return [None] * len(groups)
    shares, rest = [], list(buffers)
    for group in groups:
        count = sum(len(layer.states()) for layer in group)
        shares.append(rest[:count])
        rest = rest[count:]
    if rest:
        raise ValueError(f"{len(rest)} ring buffers left over after compiling {len(groups)} layer groups")
    return shares


# --------------------------------------------------------------------------- shared pieces


@keras.saving.register_keras_serializable(package="mww")
class ChannelSlice(keras.layers.Layer):
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


def _crop_to(x: Any, frames: int, name: str) -> Any:
    """Keep the newest `frames` frames of the Keras tensor `x` (drop the earliest)."""
    extra = x.shape[1] - frames
    if extra == 0:
        return x
    return keras.layers.Cropping2D(((extra, 0), (0, 0)), name=name)(x)


def _concat(outputs: list[Any], name: str) -> Any:
    """Concatenate Keras tensors on the channel axis (a single one passes through)."""
    return outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(axis=-1, name=name)(outputs)


def _conv(x: tf.Tensor, kernel: np.ndarray, bias: np.ndarray | None = None) -> tf.Tensor:
    y = tf.nn.conv2d(x, tf.constant(kernel), _UNIT_STRIDES, _VALID)
    return y if bias is None else tf.nn.bias_add(y, tf.constant(bias))


def _depthwise(x: tf.Tensor, kernel: np.ndarray) -> tf.Tensor:
    return tf.nn.depthwise_conv2d(x, tf.constant(kernel), _UNIT_STRIDES, _VALID)


def _ring(state: tf.Variable, new: tf.Tensor) -> tf.Tensor:
    """Concatenate the ring buffer with the new frame(s); keep the newest frames for the next call."""
    frames = state.shape[1]
    window = tf.concat([state.read_value(), new], axis=1)
    state.assign(window[:, -frames:])
    return window


def _streamed(window: Forward, buffers: Sequence[tf.Variable] | None) -> Forward:
    """`window` (valid convolutions over whatever frames it gets) as a sequence pass, or, with one ring
    buffer, as a streaming step over the buffer and the newest frame."""
    if not buffers:
        return window
    (state,) = buffers
    return lambda x: window(_ring(state, x))


def _newest(x: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """The newest frames of `x`, as many as `like` has (no op when the static lengths already agree)."""
    if x.shape[1] is not None and x.shape[1] == like.shape[1]:
        return x
    return x[:, tf.shape(x)[1] - tf.shape(like)[1] :]


def _group_input(x: tf.Tensor, lookback: int, kernel: int, channels: tuple[int, int] | None) -> tf.Tensor:
    """The input of a kernel-`kernel` group: all but the earliest frames a longer kernel needs, and
    the group's channels when the channels are split."""
    if channels is not None:
        return x[:, lookback + 1 - kernel :, :, channels[0] : channels[1]]
    return x[:, lookback + 1 - kernel :] if kernel < lookback + 1 else x


def _ring_states(name: str, frames: int, channels: int) -> list[StateSpec]:
    """The ring buffer `<name>_state` of the last `frames` inputs, if any."""
    return [StateSpec(f"{name}_state", frames, channels)] if frames else []


# --------------------------------------------------------------------------- the layer kinds


@dataclass(frozen=True)
class FirstConv(Layer):
    """A convolution over `kernel` frames of all feature bins, time stride `stride`, no bias, then ReLU.

    Its stride is the streaming step: the device calls the model once every `stride` frames, and every
    later layer produces exactly one new frame per call. Its input is the features [batch, frames, 40];
    it is the one layer at the feature frame rate, so its geometry is `kernel` and `stride`, not `lookback`.
    """

    filters: int
    kernel: int
    stride: int
    name: str = "first_conv"

    @property
    def kept_frames(self) -> int:
        """Input frames kept between calls (the kernel minus the new frames)."""
        return max(self.kernel - self.stride, 0)

    def states(self) -> list[StateSpec]:
        """The last `kept_frames` feature frames."""
        return _ring_states(self.name, self.kept_frames, MEL_BINS)

    def macs(self) -> int:
        """One output frame over `kernel` frames of 40 bins."""
        return self.kernel * MEL_BINS * self.filters

    def keras(self, x: Any, reg: Regularizer) -> Any:
        """Reshape to NHWC, strided Conv2D, ReLU."""
        x = keras.layers.Reshape((x.shape[1], 1, MEL_BINS), name="to_nhwc")(x)
        x = keras.layers.Conv2D(
            self.filters,
            (self.kernel, 1),
            strides=(self.stride, 1),
            padding="valid",
            use_bias=False,
            kernel_regularizer=reg,
            name=self.name,
        )(x)
        return keras.layers.ReLU(name="first_relu")(x)

    def compile(self, weights: Weights, buffers: Sequence[tf.Variable] | None) -> Forward:
        """Sequence: the strided convolution over all frames. Step: the buffer and the `stride` new
        frames (or the newest `kernel` of them) make exactly one kernel, convolved with stride 1."""
        kernel = weights.kernel(self.name)
        if buffers is None:
            return lambda x: tf.nn.relu(
                tf.nn.conv2d(
                    tf.reshape(x, [tf.shape(x)[0], -1, 1, MEL_BINS]), kernel, (1, self.stride, 1, 1), _VALID
                )
            )

        def step(x: tf.Tensor) -> tf.Tensor:
            x = tf.reshape(x, [1, self.stride, 1, MEL_BINS])
            if buffers:
                x = _ring(buffers[0], x)
            elif self.kernel < self.stride:
                x = x[:, self.stride - self.kernel :]
            return tf.nn.relu(_conv(x, kernel))

        return step


@dataclass(frozen=True)
class MixConv(Layer):
    """Depthwise convolutions over time, one per channel group: group `g` has `widths[g]` channels and
    kernel size `kernels[g]`; the outputs are concatenated (one group: no split)."""

    name: str
    kernels: tuple[int, ...]
    widths: tuple[int, ...]

    @property
    def lookback(self) -> int:
        """The largest kernel minus one."""
        return max(self.kernels) - 1

    def states(self) -> list[StateSpec]:
        """The last `lookback` input frames."""
        return _ring_states(self.name, self.lookback, sum(self.widths))

    def macs(self) -> int:
        """One multiply per kernel tap and channel."""
        return sum(k * w for k, w in zip(self.kernels, self.widths, strict=True))

    def _bounds(self) -> list[tuple[int, int] | None]:
        """Channel range of each group; None when there is one group (no split)."""
        if len(self.widths) == 1:
            return [None]
        ends = np.cumsum([0, *self.widths])
        return [(int(ends[g]), int(ends[g + 1])) for g in range(len(self.widths))]

    def keras(self, x: Any, reg: Regularizer) -> Any:
        """ChannelSlice, DepthwiseConv2D and crop per group, then Concatenate."""
        out_frames = x.shape[1] - self.lookback
        outputs = []
        for g, (kernel, channels) in enumerate(zip(self.kernels, self._bounds(), strict=True)):
            part = x if channels is None else ChannelSlice(*channels, name=f"{self.name}_split{g}")(x)
            y = keras.layers.DepthwiseConv2D(
                (kernel, 1),
                padding="valid",
                use_bias=False,
                depthwise_regularizer=reg,
                name=f"{self.name}_dw{g}",
            )(part)
            outputs.append(_crop_to(y, out_frames, f"{self.name}_crop{g}"))
        return _concat(outputs, f"{self.name}_concat")

    def compile(self, weights: Weights, buffers: Sequence[tf.Variable] | None) -> Forward:
        """Each group's depthwise convolution on its channels and newest frames, concatenated."""
        groups = [
            (kernel, channels, weights.kernel(f"{self.name}_dw{g}"))
            for g, (kernel, channels) in enumerate(zip(self.kernels, self._bounds(), strict=True))
        ]

        def window(x: tf.Tensor) -> tf.Tensor:
            outs = [_depthwise(_group_input(x, self.lookback, k, c), w) for k, c, w in groups]
            return outs[0] if len(outs) == 1 else tf.concat(outs, axis=-1)

        return _streamed(window, buffers)


@dataclass(frozen=True)
class TemporalConv(Layer):
    """Full convolutions over time, one per kernel size, group `g` giving `widths[g]` output channels;
    the outputs are concatenated, then BatchNorm."""

    name: str
    kernels: tuple[int, ...]
    in_channels: int
    widths: tuple[int, ...]

    @property
    def lookback(self) -> int:
        """The largest kernel minus one."""
        return max(self.kernels) - 1

    def states(self) -> list[StateSpec]:
        """The last `lookback` input frames."""
        return _ring_states(self.name, self.lookback, self.in_channels)

    def macs(self) -> int:
        """Every kernel tap of every input channel for every output channel of its group."""
        return sum(k * self.in_channels * w for k, w in zip(self.kernels, self.widths, strict=True))

    def _conv_names(self) -> list[str]:
        return [f"{self.name}_conv{g}" for g in range(len(self.kernels))]

    def keras(self, x: Any, reg: Regularizer) -> Any:
        """Conv2D and crop per kernel size, Concatenate, BatchNormalization."""
        out_frames = x.shape[1] - self.lookback
        outputs = []
        for g, (kernel, width, name) in enumerate(
            zip(self.kernels, self.widths, self._conv_names(), strict=True)
        ):
            y = keras.layers.Conv2D(
                width, (kernel, 1), padding="valid", use_bias=False, kernel_regularizer=reg, name=name
            )(x)
            outputs.append(_crop_to(y, out_frames, f"{self.name}_crop{g}"))
        x = _concat(outputs, f"{self.name}_concat")
        return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{self.name}_bn")(x)

    def compile(self, weights: Weights, buffers: Sequence[tf.Variable] | None) -> Forward:
        """Each convolution (BatchNorm folded in) on the newest frames, concatenated, plus the bias."""
        kernels, bias = weights.folded(self._conv_names(), f"{self.name}_bn")
        groups = list(zip(self.kernels, kernels, strict=True))

        def window(x: tf.Tensor) -> tf.Tensor:
            outs = [_conv(_group_input(x, self.lookback, k, None), w) for k, w in groups]
            return tf.nn.bias_add(outs[0] if len(outs) == 1 else tf.concat(outs, axis=-1), bias)

        return _streamed(window, buffers)


@dataclass(frozen=True)
class Pointwise(Layer):
    """A 1x1 convolution `conv_name` from `in_channels` to `filters` channels, then BatchNorm `bn_name`."""

    conv_name: str
    bn_name: str
    in_channels: int
    filters: int

    def macs(self) -> int:
        """Every input channel for every output channel."""
        return self.in_channels * self.filters

    def keras(self, x: Any, reg: Regularizer) -> Any:
        """Conv2D 1x1, BatchNormalization."""
        x = keras.layers.Conv2D(self.filters, 1, use_bias=False, kernel_regularizer=reg, name=self.conv_name)(
            x
        )
        return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=self.bn_name)(x)

    def compile(self, weights: Weights, buffers: Sequence[tf.Variable] | None) -> Forward:
        """The 1x1 convolution with BatchNorm folded into its kernel and bias."""
        (kernel,), bias = weights.folded([self.conv_name], self.bn_name)
        return lambda x: _conv(x, kernel, bias)


@dataclass(frozen=True)
class Block(Layer):
    """`repeats` (each a chain of layers) each followed by ReLU; with a `shortcut`, that 1x1 convolution
    and BatchNorm of the block input is added before the last ReLU (aligned at the newest frame)."""

    index: int
    repeats: tuple[tuple[Layer, ...], ...]
    shortcut: Pointwise | None
    out_channels: int

    @property
    def lookback(self) -> int:
        """The lookbacks of every layer of every repeat."""
        return sum(layer.lookback for repeat in self.repeats for layer in repeat)

    def states(self) -> list[StateSpec]:
        """The ring buffers of the repeats' layers, in order."""
        return [spec for repeat in self.repeats for layer in repeat for spec in layer.states()]

    def macs(self) -> int:
        """The repeats' layers and the shortcut."""
        inner = sum(layer.macs() for repeat in self.repeats for layer in repeat)
        return inner + (self.shortcut.macs() if self.shortcut is not None else 0)

    def keras(self, x: Any, reg: Regularizer) -> Any:
        """Shortcut first, then per repeat its layers, the residual crop and Add (last repeat), ReLU."""
        residual = self.shortcut.keras(x, reg) if self.shortcut is not None else None
        for r, repeat in enumerate(self.repeats):
            for layer in repeat:
                x = layer.keras(x, reg)
            if residual is not None and r == len(self.repeats) - 1:
                residual = _crop_to(residual, x.shape[1], f"block{self.index}_residual_crop")
                x = keras.layers.Add(name=f"block{self.index}_residual_add")([x, residual])
            x = keras.layers.ReLU(name=f"block{self.index}_rep{r}_relu")(x)
        return x

    def compile(self, weights: Weights, buffers: Sequence[tf.Variable] | None) -> Forward:
        """Each repeat's chain and ReLU; the shortcut on the newest frames of the block input."""
        shortcut = self.shortcut.compile(weights, None) if self.shortcut is not None else None
        shares = _share_buffers(self.repeats, buffers)
        chains = [
            compile_chain(repeat, weights, share) for repeat, share in zip(self.repeats, shares, strict=True)
        ]

        def run(x: tf.Tensor) -> tf.Tensor:
            block_input = x
            for r, chain in enumerate(chains):
                y = chain(x)
                if shortcut is not None and r == len(chains) - 1:
                    y = y + shortcut(_newest(block_input, y))
                x = tf.nn.relu(y)
            return x

        return run


@dataclass(frozen=True)
class Head(Layer):
    """The last `window` frames of `channels` channels, flattened (dropout in training) into one sigmoid."""

    window: int
    channels: int
    dropout_rate: float
    name: str = "head_dense"

    @property
    def lookback(self) -> int:
        """The window minus the newest frame."""
        return self.window - 1

    def states(self) -> list[StateSpec]:
        """The `lookback` frames before the newest one."""
        return _ring_states("head", self.lookback, self.channels)

    def macs(self) -> int:
        """One weight per frame and channel of the window."""
        return self.window * self.channels

    def keras(self, x: Any, reg: Regularizer) -> Any:
        """Flatten, Dropout (if any), Dense with sigmoid in float32."""
        x = keras.layers.Flatten(name="head_flatten")(x)
        if self.dropout_rate > 0:
            x = keras.layers.Dropout(self.dropout_rate, name="head_dropout")(x)
        return keras.layers.Dense(
            1, activation="sigmoid", kernel_regularizer=reg, dtype="float32", name=self.name
        )(x)

    def compile(self, weights: Weights, buffers: Sequence[tf.Variable] | None) -> Forward:
        """Step: buffer and newest frame flattened into FULLY_CONNECTED and LOGISTIC. Sequence: the same
        dense layer as a valid convolution `window` frames long, one probability per output frame."""
        kernel, bias = weights.dense(self.name)
        if buffers is None:
            as_conv = kernel.reshape(self.window, 1, self.channels, 1)
            return lambda x: tf.sigmoid(_conv(x, as_conv, bias))

        def step(x: tf.Tensor) -> tf.Tensor:
            if buffers:
                x = _ring(buffers[0], x)
            flat = tf.reshape(x, [1, self.window * self.channels])
            return tf.sigmoid(tf.matmul(flat, tf.constant(kernel)) + tf.constant(bias))

        return step
