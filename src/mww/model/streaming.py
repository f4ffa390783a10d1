"""The stateful streaming twin of a trained non-streaming model.

`StreamingModel(keras_model, model_cfg)` takes `stride` new feature frames per call (input
[1, stride, 40], float in the training scale) and returns the wake-word probability [1, 1], exactly
what the non-streaming model returns for the last `input_frames` frames of the stream once that
many frames have been fed. Every layer that looks back in time keeps a ring buffer of its last
inputs in a `tf.Variable` (one per `mww.model.builder.streaming_states` entry); each call concatenates the
buffer with the new frame(s), computes one output frame, and stores the newest part back. The
TFLite converter turns these into VAR_HANDLE / READ_VARIABLE / CONCATENATION / STRIDED_SLICE /
ASSIGN_VARIABLE, with the zero initial values in a second subgraph run through CALL_ONCE.

Only ops that ESPHome registers are emitted: RESHAPE (never EXPAND_DIMS), strided slices for the
MixConv channel groups, CONV_2D / DEPTHWISE_CONV_2D with BatchNorm folded into their weights and
bias, ADD for residuals, FULLY_CONNECTED and LOGISTIC for the head. The trained weights are baked in
as constants, so the only variables are the ring buffers.

`sequence_scorer` builds the same layers without ring buffers over a whole recording: every
invocation's output in one pass, which is what training evaluation, mining and `mww-evaluate
--checkpoint` need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mww.config.schema import ModelConfig
from mww.device.constants import MEL_BINS
from mww.model.builder import (
    INPUT_NAME,
    OUTPUT_NAME,
    BlockPlan,
    ModelPlan,
    check_input_frames,
    check_streamable,
    first_state_frames,
    layer_names,
    plan_model,
    split_channels,
    streaming_states,
)
from mww.model.scoring import StreamScorer, window_ends

_VALID = "VALID"
_UNIT_STRIDES = (1, 1, 1, 1)
SEQUENCE_CHUNK_WINDOWS = 2048  # invocations per pass of `sequence_scorer`: bounded memory


def fold_batch_norm(
    kernels: list[np.ndarray], bn_weights: list[np.ndarray], epsilon: float
) -> tuple[list[np.ndarray], np.ndarray]:
    """Fold BatchNorm (gamma, beta, moving mean, moving variance) into bias-free conv kernels.

    `kernels` are the convolutions whose outputs are concatenated (in order) before the BatchNorm;
    their last axis is the output channel. Returns (kernels, bias) with
    `concat(conv(x, k) for k in kernels) + bias == bn(concat(conv(x, original k)))` at inference.
    """
    gamma, beta, mean, variance = (np.asarray(w, dtype=np.float64) for w in bn_weights)
    scale = gamma / np.sqrt(variance + epsilon)
    folded, start = [], 0
    for kernel in kernels:
        width = kernel.shape[-1]
        folded.append(
            (np.asarray(kernel, dtype=np.float64) * scale[start : start + width]).astype(np.float32)
        )
        start += width
    if start != scale.shape[0]:
        raise ValueError(f"kernels have {start} output channels, the BatchNorm has {scale.shape[0]}")
    return folded, (beta - mean * scale).astype(np.float32)


class _Weights:
    """Reads a trained Keras model's weights by layer name."""

    def __init__(self, model: keras.Model) -> None:
        self._model = model

    def kernel(self, name: str) -> np.ndarray:
        return np.asarray(self._model.get_layer(name).get_weights()[0], dtype=np.float32)

    def folded(self, convs: list[str], bn: str) -> tuple[list[np.ndarray], np.ndarray]:
        layer = self._model.get_layer(bn)
        return fold_batch_norm([self.kernel(c) for c in convs], layer.get_weights(), float(layer.epsilon))

    def dense(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        kernel, bias = self._model.get_layer(name).get_weights()
        return np.asarray(kernel, dtype=np.float32), np.asarray(bias, dtype=np.float32)


@dataclass(frozen=True)
class _Repeat:
    """Constant weights of one repeat: (kernel size, channel range or None, kernel) per group."""

    groups: list[tuple[int, tuple[int, int] | None, np.ndarray]]
    pointwise: np.ndarray | None
    bias: np.ndarray


def _conv(x: tf.Tensor, kernel: np.ndarray, bias: np.ndarray | None = None) -> tf.Tensor:
    y = tf.nn.conv2d(x, tf.constant(kernel), _UNIT_STRIDES, _VALID)
    return y if bias is None else tf.nn.bias_add(y, tf.constant(bias))


def _depthwise(x: tf.Tensor, kernel: np.ndarray) -> tf.Tensor:
    return tf.nn.depthwise_conv2d(x, tf.constant(kernel), _UNIT_STRIDES, _VALID)


class StreamingModel(tf.Module):
    """Stateful streaming twin of a non-streaming `mww.model.builder.build_model` model."""

    def __init__(self, model: keras.Model, model_cfg: ModelConfig) -> None:
        super().__init__(name="streaming_model")
        self.input_frames = int(model.input_shape[1])
        check_input_frames(model_cfg, self.input_frames)
        check_streamable(model_cfg, self.input_frames)
        self.plan = plan_model(model_cfg)
        self.stride = self.plan.stride
        self.state_specs = streaming_states(model_cfg, self.input_frames)
        self.states = [
            tf.Variable(
                tf.zeros([1, spec.frames, 1, spec.channels], tf.float32), trainable=False, name=spec.name
            )
            for spec in self.state_specs
        ]
        self._layers = compile_stages(self.plan, _Weights(model), sequence=False)
        self.step = tf.function(
            self._step,
            input_signature=[tf.TensorSpec([1, self.stride, MEL_BINS], tf.float32, name=INPUT_NAME)],
        )
        # Saved with the SavedModel too: `tf.saved_model.load(path).reset_states()` restarts a stream.
        self.reset_states = tf.function(self._reset_states, input_signature=[])

    def reset(self) -> None:
        """Zero every ring buffer (the state of a freshly loaded device model)."""
        self.reset_states()

    def _reset_states(self) -> None:
        for state in self.states:
            state.assign(tf.zeros_like(state))

    def run(self, features: np.ndarray) -> np.ndarray:
        """Feed `features` (frames, 40) chunk by chunk; one probability per complete chunk."""
        frames = (features.shape[0] // self.stride) * self.stride
        chunks = np.asarray(features[:frames], dtype=np.float32).reshape(-1, 1, self.stride, MEL_BINS)
        return np.array([float(self(chunk)[0, 0]) for chunk in chunks], dtype=np.float32)

    def _step(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        states = list(self.states)
        x = features
        for stage in self._layers:
            x = stage(x, states)
        return {OUTPUT_NAME: x}

    def __call__(self, features: tf.Tensor) -> tf.Tensor:
        """One streaming step: [1, stride, 40] features → [1, 1] probability."""
        return self.step(features)[OUTPUT_NAME]


def sequence_scorer(model: keras.Model, model_cfg: ModelConfig) -> StreamScorer:
    """A StreamScorer: float feature streams [frames, 40] → the probability of every full-window invocation.

    Gives what the non-streaming model gives on each window `features[end - T : end]` for the ends
    of `mww.model.scoring.window_ends`, but runs each layer once over the whole stream (the windows of
    consecutive invocations overlap in all but `stride` frames), so a long recording costs about one
    streaming step per invocation instead of one full window. Streams are cut into pieces of at most
    SEQUENCE_CHUNK_WINDOWS invocations, and pieces of equal length run as one batch. Uses the model's
    weights as they are when this is called.
    """
    input_frames = int(model.input_shape[1])
    plan = plan_model(model_cfg)
    stages = compile_stages(plan, _Weights(model), sequence=True)

    @tf.function(input_signature=[tf.TensorSpec([None, None, MEL_BINS], tf.float32)])
    def forward(x: tf.Tensor) -> tf.Tensor:
        for stage in stages:
            x = stage(x, [])
        return tf.reshape(x, [tf.shape(x)[0], -1])

    def score(streams: Sequence[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        pieces: dict[int, list[tuple[int, int, int]]] = {}  # invocations → (stream, first one, first frame)
        for i, features in enumerate(streams):
            ends = window_ends(features.shape[0], input_frames, plan.stride)
            out.append(np.empty(ends.shape[0], dtype=np.float32))
            for first in range(0, ends.shape[0], SEQUENCE_CHUNK_WINDOWS):
                n = min(SEQUENCE_CHUNK_WINDOWS, ends.shape[0] - first)
                pieces.setdefault(n, []).append((i, first, int(ends[first]) - input_frames))
        for n, group in pieces.items():
            frames = input_frames + (n - 1) * plan.stride
            per_pass = max(1, SEQUENCE_CHUNK_WINDOWS // n)
            for b in range(0, len(group), per_pass):
                batch = group[b : b + per_pass]
                x = np.stack([streams[i][start : start + frames] for i, _, start in batch])
                probabilities = forward(tf.constant(x, tf.float32)).numpy()
                for (i, first, _), row in zip(batch, probabilities, strict=True):
                    out[i][first : first + n] = row
        return out

    return score


# ---------------------------------------------------------------------- graph construction

Stage = Callable[[tf.Tensor, list[Any]], tf.Tensor]


def compile_stages(plan: ModelPlan, weights: _Weights, sequence: bool) -> list[Stage]:
    """Closures, one per stage, over constant folded weights.

    Streaming (`sequence` False): each stage takes the newest frame(s), reads and writes its ring
    buffer from `states` (popped in order) and returns one output frame. Sequence (`sequence` True):
    each stage takes a whole feature sequence and returns every output frame at once with no state;
    the head then gives one probability per streaming invocation whose window the sequence covers.
    """
    names = layer_names(plan)
    stages: list[Stage] = []

    first_kernel = weights.kernel(names["first"])
    keep = first_state_frames(plan)

    def first(x: tf.Tensor, states: list[Any]) -> tf.Tensor:
        if sequence:
            x = tf.reshape(x, [tf.shape(x)[0], -1, 1, MEL_BINS])
            return tf.nn.relu(tf.nn.conv2d(x, first_kernel, (1, plan.stride, 1, 1), _VALID))
        x = tf.reshape(x, [1, plan.stride, 1, MEL_BINS])
        if keep:
            x = _ring(states.pop(0), x)
        elif plan.first_kernel < plan.stride:
            x = x[:, plan.stride - plan.first_kernel :]
        return tf.nn.relu(_conv(x, first_kernel))

    stages.append(first)
    for block in plan.blocks:
        stages.append(_block(plan, block, weights, sequence))

    head_kernel, head_bias = weights.dense(names["head"])
    window = head_kernel.shape[0] // plan.out_channels
    # The flattened head over `window` frames is a valid convolution of that length over a sequence.
    head_conv = head_kernel.reshape(window, 1, plan.out_channels, 1)

    def head(x: tf.Tensor, states: list[Any]) -> tf.Tensor:
        if sequence:
            return tf.sigmoid(_conv(x, head_conv, head_bias))
        if window > 1:
            x = _ring(states.pop(0), x)
        flat = tf.reshape(x, [1, window * plan.out_channels])
        logit = tf.matmul(flat, tf.constant(head_kernel)) + tf.constant(head_bias)
        return tf.sigmoid(logit)

    stages.append(head)
    return stages


def _block(plan: ModelPlan, block: BlockPlan, weights: _Weights, sequence: bool) -> Stage:
    """One block: per repeat the temporal convolutions (streaming: over its ring buffer), the folded
    1x1 + BN, ReLU; the residual branch added before the last ReLU."""
    names = layer_names(plan)
    b, kmax, cnn = block.index, block.max_kernel, plan.architecture == "cnn"
    residual = None
    if block.residual:
        (res_kernel,), res_bias = weights.folded([names["residual_conv"](b)], names["residual_bn"](b))
        residual = (res_kernel, res_bias)
    repeats: list[_Repeat] = []
    for r in range(block.repeats):
        group_names = [names["group"](b, r, g) for g in range(len(block.kernels))]
        if cnn:
            # Full convolutions over the whole input, outputs concatenated, then BN.
            parts, bias = weights.folded(group_names, names["bn"](b, r))
            groups = [(k, None, part) for k, part in zip(block.kernels, parts, strict=True)]
            repeats.append(_Repeat(groups, None, bias))
            continue
        groups = []
        if kmax > 1:
            # MixConv: one depthwise convolution per channel group.
            widths = split_channels(block.repeat_in_channels(r), len(block.kernels))
            bounds = np.cumsum([0, *widths])
            for g, k in enumerate(block.kernels):
                channels = None if len(widths) == 1 else (int(bounds[g]), int(bounds[g + 1]))
                groups.append((k, channels, weights.kernel(group_names[g])))
        (pointwise,), bias = weights.folded([names["pointwise"](b, r)], names["bn"](b, r))
        repeats.append(_Repeat(groups, pointwise, bias))

    def run(x: tf.Tensor, states: list[Any]) -> tf.Tensor:
        block_input = x
        for r, repeat in enumerate(repeats):
            if kmax > 1 and not sequence:
                x = _ring(states.pop(0), x)
            outs = []
            for k, channels, kernel in repeat.groups:
                if channels is not None:
                    window = x[:, kmax - k :, :, channels[0] : channels[1]]
                else:
                    window = x[:, kmax - k :] if k < kmax else x
                outs.append(_conv(window, kernel) if cnn else _depthwise(window, kernel))
            if outs:
                x = outs[0] if len(outs) == 1 else tf.concat(outs, axis=-1)
            y = tf.nn.bias_add(x if repeat.pointwise is None else _conv(x, repeat.pointwise), repeat.bias)
            if residual is not None and r == len(repeats) - 1:
                # The residual branch is pointwise on the newest frames of the block input.
                newest = (
                    block_input[:, tf.shape(block_input)[1] - tf.shape(y)[1] :] if sequence else block_input
                )
                y = y + _conv(newest, residual[0], residual[1])
            x = tf.nn.relu(y)
        return x

    return run


def _ring(state: tf.Variable, new: tf.Tensor) -> tf.Tensor:
    """Concatenate the ring buffer with the new frame(s); keep the newest frames for the next call."""
    frames = state.shape[1]
    window = tf.concat([state.read_value(), new], axis=1)
    state.assign(window[:, -frames:])
    return window
