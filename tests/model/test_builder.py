"""The Keras model builder: shapes, parameter and MAC counts, refusals of inputs it cannot stream."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mww.config.load import config_from_dict, load_full_config
from mww.device.constants import MAX_RESOURCE_VARIABLES, MEL_BINS
from mww.model.builder import build_model, count_parameters, describe_model, macs_per_step
from mww.model.plan import (
    ModelConfigError,
    final_frames,
    head_window_steps,
    receptive_field_frames,
    streaming_states,
    training_input_frames,
)

COMPLEX = {
    "mixconv_kernel_sizes": "[3,5],[5,9],[9,13],[13,21]",
    "repeat_in_block": "2,2,1,1",
    "residual_connection": "1,1,1,1",
}


def model_config(**model):
    return config_from_dict({"model": model})


def test_default_mixednet_lengths_parameters_and_macs():
    cfg = load_full_config("standard")
    m = cfg.model
    kernels = [max(k) for k in m.mixconv_kernel_sizes_list]
    field = m.first_conv_kernel_size + m.stride * sum(k - 1 for k in kernels)
    assert receptive_field_frames(m) == field
    window = math.ceil(cfg.hardware.clip_frames / m.stride)
    frames = training_input_frames(cfg.hardware, m)
    assert frames == field + (window - 1) * m.stride
    assert frames > cfg.hardware.clip_frames  # the convolutions eat their kernels
    assert head_window_steps(cfg.hardware, m) == window == final_frames(m, frames)

    model = build_model(m, (frames, MEL_BINS))
    assert model.input_shape == (None, frames, MEL_BINS) and model.output_shape == (None, 1)
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    assert any("head_dense" in line for line in lines)

    # Parameters counted by hand: first conv, per block depthwise + pointwise + BN scale/offset, head.
    widths = m.pointwise_filters_list
    channels = [m.first_conv_filters, *widths[:-1]]
    expected = m.first_conv_kernel_size * MEL_BINS * m.first_conv_filters
    expected += sum(k * c + c * w + 2 * w for k, c, w in zip(kernels, channels, widths, strict=True))
    expected += window * widths[-1] + 1
    params = count_parameters(model)
    assert params == expected
    macs = macs_per_step(m, frames)
    expected_macs = m.first_conv_kernel_size * MEL_BINS * m.first_conv_filters
    expected_macs += sum(k * c + c * w for k, c, w in zip(kernels, channels, widths, strict=True))
    expected_macs += window * widths[-1]
    assert macs == expected_macs == macs_per_step(m)
    assert len(streaming_states(m, frames)) == 1 + len(widths) + 1
    print(f"\ndefault MixedNet: {describe_model(m, frames, model)}")


ARCHITECTURES = {
    "mixednet-residual-mixed-repeats": COMPLEX,
    "cnn": {
        "architecture": "cnn",
        "pointwise_filters": "16,24",
        "mixconv_kernel_sizes": "[3,5],[7]",
        "repeat_in_block": "1,2",
        "residual_connection": "1,0",
    },
    "dnn": {
        "architecture": "dnn",
        "residual_connection": "1,0,1,0",
        "dropout_rate": 0.2,
        "l2_regularization": 0.001,
    },
    "first-kernel-equals-stride": {
        "first_conv_kernel_size": 3,
        "pointwise_filters": "20,20",
        "mixconv_kernel_sizes": "[1],[3,5,7]",
        "repeat_in_block": "1,1",
        "residual_connection": "0,1",
    },
    "stride-1": {
        "stride": 1,
        "pointwise_filters": "8",
        "mixconv_kernel_sizes": "[3]",
        "repeat_in_block": "3",
        "residual_connection": "1",
    },
}


@pytest.mark.parametrize("overrides", list(ARCHITECTURES.values()), ids=list(ARCHITECTURES))
def test_architectures_build_and_run(overrides):
    cfg = model_config(**overrides)
    frames = training_input_frames(cfg.hardware, cfg.model)
    model = build_model(cfg.model, (frames, MEL_BINS))
    out = model.predict(np.random.default_rng(0).uniform(0, 20, (2, frames, MEL_BINS)), verbose=0)
    assert out.shape == (2, 1) and np.all((out >= 0) & (out <= 1))
    assert len(streaming_states(cfg.model, frames)) <= MAX_RESOURCE_VARIABLES
    print(f"\n{describe_model(cfg.model, frames, model)}")


def test_misaligned_or_short_inputs_are_refused():
    cfg = load_full_config("standard")
    frames = training_input_frames(cfg.hardware, cfg.model)
    with pytest.raises(ModelConfigError, match="stride boundary"):
        build_model(cfg.model, (frames + 1, MEL_BINS))
    with pytest.raises(ModelConfigError, match="receptive field"):
        build_model(cfg.model, (receptive_field_frames(cfg.model) - cfg.model.stride, MEL_BINS))
    with pytest.raises(ModelConfigError, match="feature bins"):
        build_model(cfg.model, (frames, MEL_BINS + 1))


def test_too_many_ring_buffers_are_refused():
    cfg = model_config(repeat_in_block="6,6,6,6")
    frames = training_input_frames(cfg.hardware, cfg.model)
    assert len(streaming_states(cfg.model, frames)) > MAX_RESOURCE_VARIABLES
    with pytest.raises(ModelConfigError, match=str(MAX_RESOURCE_VARIABLES)):
        build_model(cfg.model, (frames, MEL_BINS))
