"""The layer kinds: every trained weight reaches the streaming forms, under the established layer names."""

from __future__ import annotations

import h5py
import pytest

from mww.config.load import config_from_dict
from mww.device.constants import MEL_BINS
from mww.model.builder import build_model
from mww.model.layers import compile_chain
from mww.model.plan import network_layers, streaming_states, training_input_frames
from mww.model.weights import Weights
from tests.model.test_builder import ARCHITECTURES

CASES = {"mixednet-default": {}, **ARCHITECTURES}


class RecordingWeights(Weights):
    """Weights that note the name of every layer read."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.read: list[str] = []

    def kernel(self, name):
        self.read.append(name)
        return super().kernel(name)

    def folded(self, convs, bn):
        self.read.append(bn)
        return super().folded(convs, bn)

    def dense(self, name):
        self.read.append(name)
        return super().dense(name)


@pytest.mark.parametrize("overrides", list(CASES.values()), ids=list(CASES))
def test_streaming_and_sequence_forms_read_every_weighted_layer_once(overrides):
    cfg = config_from_dict({"model": overrides})
    frames = training_input_frames(cfg.hardware, cfg.model)
    model = build_model(cfg.model, (frames, MEL_BINS))
    weighted = sorted(layer.name for layer in model.layers if layer.weights)
    network = network_layers(cfg.model, frames)
    sequence = RecordingWeights(model)
    compile_chain(network, sequence, None)
    assert sorted(sequence.read) == weighted
    step = RecordingWeights(model)
    buffers = [object() for _ in streaming_states(cfg.model, frames)]  # compiling only stores them
    compile_chain(network, step, buffers)
    assert sorted(step.read) == weighted
    with pytest.raises(ValueError, match="left over"):
        compile_chain(network, step, [*buffers, object()])


def test_checkpoint_layout_of_the_default_mixednet(tmp_path):
    """The weight file layout of mww-train checkpoints, which loading them depends on: Keras numbers the
    layers of each class in the order the model holds them (first convolution, then block by block)."""
    cfg = config_from_dict({})
    frames = training_input_frames(cfg.hardware, cfg.model)
    path = tmp_path / "w.weights.h5"
    build_model(cfg.model, (frames, MEL_BINS)).save_weights(path)
    layout = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset) and name.startswith("layers/"):
            layout[name] = item.shape

    with h5py.File(path, "r") as handle:
        handle.visititems(visit)
    expected = {"layers/conv2d/vars/0": (5, 1, MEL_BINS, 30)}
    for b, kernel in enumerate((5, 9, 13, 21)):
        channels = 30 if b == 0 else 60
        suffix = f"_{b}" if b else ""
        expected[f"layers/depthwise_conv2d{suffix}/vars/0"] = (kernel, 1, channels, 1)
        expected[f"layers/conv2d_{b + 1}/vars/0"] = (1, 1, channels, 60)
        for v in range(4):  # gamma, beta, moving mean, moving variance
            expected[f"layers/batch_normalization{suffix}/vars/{v}"] = (60,)
    expected["layers/dense/vars/0"] = (33 * 60, 1)
    expected["layers/dense/vars/1"] = (1,)
    assert layout == expected


def test_layer_names_of_a_residual_cnn():
    """The names the streaming forms read the weights by, in the model's order (the checkpoint order)."""
    cfg = config_from_dict({"model": ARCHITECTURES["cnn"]})
    frames = training_input_frames(cfg.hardware, cfg.model)
    model = build_model(cfg.model, (frames, MEL_BINS))
    assert [layer.name for layer in model.layers if layer.weights] == [
        "first_conv",
        "block0_rep0_conv0",
        "block0_rep0_conv1",
        "block0_residual_conv",
        "block0_residual_bn",
        "block0_rep0_bn",
        "block1_rep0_conv0",
        "block1_rep0_bn",
        "block1_rep1_conv0",
        "block1_rep1_bn",
        "head_dense",
    ]
