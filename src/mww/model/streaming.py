"""The stateful streaming twin of a trained non-streaming model, and its whole-sequence pass.

`StreamingModel(keras_model, model_cfg)` takes `stride` new feature frames per call (input
[1, stride, 40], float in the training scale) and returns the wake-word probability [1, 1], exactly
what the non-streaming model returns for the last `input_frames` frames of the stream once that
many frames have been fed. Every layer that looks back in time keeps a ring buffer of its last
inputs in a `tf.Variable` (one per `mww.model.plan.streaming_states` entry); each call concatenates the
buffer with the new frame(s), computes one output frame, and stores the newest part back. The
TFLite converter turns these into VAR_HANDLE / READ_VARIABLE / CONCATENATION / STRIDED_SLICE /
ASSIGN_VARIABLE, with the zero initial values in a second subgraph run through CALL_ONCE. Each
layer's step comes from its own `compile` (`mww.model.layers`), over the trained weights with
BatchNorm folded in, so the only variables are the ring buffers and only ops that ESPHome registers
are emitted.

`sequence_scorer` compiles the same layers without ring buffers over a whole recording: every
invocation's output in one pass, which is what training evaluation, mining and `mww-evaluate
--checkpoint` need.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from mww.config.schema import ModelConfig
from mww.device.constants import MEL_BINS
from mww.model.builder import INPUT_NAME, OUTPUT_NAME
from mww.model.layers import compile_chain
from mww.model.plan import check_streamable, network_layers, streaming_states
from mww.model.scoring import StreamScorer, window_ends
from mww.model.weights import Weights

SEQUENCE_CHUNK_WINDOWS = 2048  # invocations per pass of `sequence_scorer`: bounded memory


class StreamingModel(tf.Module):
    """Stateful streaming twin of a non-streaming `mww.model.builder.build_model` model."""

    def __init__(self, model: keras.Model, model_cfg: ModelConfig) -> None:
        super().__init__(name="streaming_model")
        self.input_frames = int(model.input_shape[1])
        network = network_layers(model_cfg, self.input_frames)
        check_streamable(model_cfg, self.input_frames)
        self.stride = model_cfg.stride
        self.state_specs = streaming_states(model_cfg, self.input_frames)
        self.states = [
            tf.Variable(
                tf.zeros([1, spec.frames, 1, spec.channels], tf.float32), trainable=False, name=spec.name
            )
            for spec in self.state_specs
        ]
        self._forward = compile_chain(network, Weights(model), self.states)
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
        return {OUTPUT_NAME: self._forward(features)}

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
    stride = model_cfg.stride
    network = compile_chain(network_layers(model_cfg, input_frames), Weights(model), None)

    @tf.function(input_signature=[tf.TensorSpec([None, None, MEL_BINS], tf.float32)])
    def forward(x: tf.Tensor) -> tf.Tensor:
        y = network(x)
        return tf.reshape(y, [tf.shape(y)[0], -1])

    def score(streams: Sequence[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        pieces: dict[int, list[tuple[int, int, int]]] = {}  # invocations → (stream, first one, first frame)
        for i, features in enumerate(streams):
            ends = window_ends(features.shape[0], input_frames, stride)
            out.append(np.empty(ends.shape[0], dtype=np.float32))
            for first in range(0, ends.shape[0], SEQUENCE_CHUNK_WINDOWS):
                n = min(SEQUENCE_CHUNK_WINDOWS, ends.shape[0] - first)
                pieces.setdefault(n, []).append((i, first, int(ends[first]) - input_frames))
        for n, group in pieces.items():
            frames = input_frames + (n - 1) * stride
            per_pass = max(1, SEQUENCE_CHUNK_WINDOWS // n)
            for b in range(0, len(group), per_pass):
                batch = group[b : b + per_pass]
                x = np.stack([streams[i][start : start + frames] for i, _, start in batch])
                probabilities = forward(tf.constant(x, tf.float32)).numpy()
                for (i, first, _), row in zip(batch, probabilities, strict=True):
                    out[i][first : first + n] = row
        return out

    return score
