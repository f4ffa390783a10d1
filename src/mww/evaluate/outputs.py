"""A model's uint8 outputs over every stream of an evaluation set, the way the device produces them.

* an exported model runs in TFLite Micro on the device's int8 inputs, invoked every `stride` frames
  (`mww.device.runtime`);
* a checkpoint runs as the float Keras model on the same windows (`mww.model.streaming`), its
  probabilities quantized as the device's output is.

Outputs produced before the model's input window has filled once are not scored (they come from the
zeroed ring buffers of a fresh start, which a listening device does not have).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mww.config.schema import ModelConfig
from mww.data.sources import EvalData
from mww.device.detection import probabilities_to_uint8
from mww.device.runtime import WakeWordModel, stream_outputs

OutputsFn = Callable[[list[np.ndarray]], list[np.ndarray]]  # float feature streams → uint8 outputs of each


def first_scored_invocation(input_frames: int, stride: int) -> int:
    """0-based index of the first invocation whose input window has filled once."""
    return -(-input_frames // stride) - 1


def tflite_outputs_fn(model: WakeWordModel, input_frames: int) -> OutputsFn:
    """TFLite Micro outputs of one device start, from the first invocation with a full window on."""
    skip = first_scored_invocation(input_frames, model.stride)
    return lambda streams: [stream_outputs(model, features)[skip:] for features in streams]


def keras_outputs_fn(model: Any, model_cfg: ModelConfig) -> OutputsFn:
    """The float Keras model's outputs on the same windows, as uint8 (the output quantization)."""
    from mww.model.streaming import sequence_scorer

    score = sequence_scorer(model, model_cfg)
    return lambda streams: [probabilities_to_uint8(p) for p in score(streams)]


@dataclass
class Outputs:
    """uint8 outputs per evaluated stream, aligned with the EvalData lists."""

    positives: list[np.ndarray]
    negatives: list[np.ndarray]
    hard_negatives: list[np.ndarray]
    ambient: list[np.ndarray]
    false_wakes: list[np.ndarray] = field(default_factory=list)

    def all(self) -> list[np.ndarray]:
        """Every stream, in a fixed order (for comparing two models on the same audio)."""
        return [*self.positives, *self.negatives, *self.hard_negatives, *self.ambient, *self.false_wakes]


def run_outputs(data: EvalData, outputs: OutputsFn) -> Outputs:
    """Run one model over every stream of an evaluation set."""
    return Outputs(
        positives=outputs(data.positive_streams),
        negatives=outputs(data.negative_streams),
        hard_negatives=outputs(data.hard_negative_streams),
        ambient=outputs(data.ambient_streams),
        false_wakes=outputs(data.false_wake_streams),
    )


def decision_outputs(data: EvalData, out: Outputs) -> list[int]:
    """Each positive, negative, hard negative and false-wake clip's output where training decides on
    it: just after its last sound, `data.silence_after` invocations before the end of its stream."""
    streams = [*out.positives, *out.negatives, *out.hard_negatives, *out.false_wakes]
    back = data.silence_after or [0] * len(streams)
    return [int(s[max(0, s.size - 1 - b)]) if s.size else 0 for s, b in zip(streams, back, strict=True)]
