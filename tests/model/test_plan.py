"""The plan of a model config: the architectures, their refusals and every length derived from the layers."""

from __future__ import annotations

import pytest

from mww.config.load import config_from_dict
from mww.config.schema import ARCHITECTURES as CONFIG_ARCHITECTURES
from mww.config.schema import ModelConfig
from mww.config.validate import ConfigError
from mww.model.plan import (
    ARCHITECTURES,
    REFUSED_ARCHITECTURES,
    ModelConfigError,
    final_frames,
    head_window_steps,
    plan_model,
    receptive_field_frames,
    streaming_states,
    training_input_frames,
)
from tests.model.test_builder import model_config


def test_input_length_follows_clip_duration():
    short = config_from_dict({"hardware": {"clip_duration_ms": 1000}})
    long = config_from_dict({"hardware": {"clip_duration_ms": 1500}})
    a = training_input_frames(short.hardware, short.model)
    b = training_input_frames(long.hardware, long.model)
    assert b > a
    assert b - a == short.model.stride * (
        head_window_steps(long.hardware, long.model) - head_window_steps(short.hardware, short.model)
    )


def test_every_architecture_of_the_config_is_planned_or_refused():
    assert set(CONFIG_ARCHITECTURES) == set(ARCHITECTURES) | set(REFUSED_ARCHITECTURES)
    assert not set(ARCHITECTURES) & set(REFUSED_ARCHITECTURES)


def test_crnn_is_refused_when_the_config_is_validated():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"model": {"architecture": "crnn"}})
    message = str(info.value)
    assert "model.architecture" in message and "GRU/LSTM" in message
    assert "mixednet" in message and "cnn" in message
    with pytest.raises(ModelConfigError, match="GRU/LSTM"):
        plan_model(ModelConfig(architecture="crnn"))


def test_lengths_follow_the_temporal_layers_of_each_architecture():
    """Only temporal convolutions eat frames: the DNN ignores the kernel sizes, kernel-1 blocks eat none."""
    blocks = {
        "pointwise_filters": "8,8",
        "mixconv_kernel_sizes": "[1],[3,7]",
        "repeat_in_block": "1,2",
        "residual_connection": "0,1",
    }
    first, stride = 5, 3
    expected = {"mixednet": first + stride * 2 * 6, "cnn": first + stride * 2 * 6, "dnn": first}
    for architecture, field in expected.items():
        cfg = model_config(architecture=architecture, **blocks)
        assert receptive_field_frames(cfg.model) == field, architecture
        frames = training_input_frames(cfg.hardware, cfg.model)
        assert final_frames(cfg.model, frames) == head_window_steps(cfg.hardware, cfg.model)
        # first layer (5 - 3 frames), the kernel-7 block's two repeats and the head
        assert len(streaming_states(cfg.model, frames)) == (4 if architecture != "dnn" else 2), architecture


def test_more_kernels_than_channels_is_refused():
    cfg = model_config(first_conv_filters=2, mixconv_kernel_sizes="[3,5,7],[9],[13],[21]")
    with pytest.raises(ModelConfigError, match="kernel sizes"):
        training_input_frames(cfg.hardware, cfg.model)
    cfg = model_config(
        architecture="cnn", pointwise_filters="2,60,60,60", mixconv_kernel_sizes="[3,5,7],[9],[13],[21]"
    )
    with pytest.raises(ModelConfigError, match="2 output filters"):
        training_input_frames(cfg.hardware, cfg.model)
