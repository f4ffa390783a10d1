"""The weights' moving average: its ramp, its update, swapping it in, and its resumable state."""

from __future__ import annotations

import numpy as np
import pytest

from mww.config.load import config_from_dict
from mww.config.validate import ConfigError
from mww.train.weight_average import WeightAverage, decay_at, weight_average_for


def test_decay_ramps_up_from_the_start_and_is_capped():
    assert decay_at(0.99, 0) == pytest.approx(0.1)
    assert decay_at(0.99, 8) == pytest.approx(0.5)
    assert decay_at(0.99, 100) == pytest.approx(101 / 110)
    assert decay_at(0.99, 10_000) == 0.99
    assert decay_at(0.5, 100) == 0.5


def test_the_compiled_update_follows_the_hand_computed_average():
    import tensorflow as tf

    var = tf.Variable([0.0, 2.0])
    average = WeightAverage([var], 0.99)
    step = tf.function(average.update)
    var.assign([1.0, 2.0])
    step()  # d = 0.1: 0.1 * start + 0.9 * now
    np.testing.assert_allclose(average.shadows[0].numpy(), [0.9, 2.0], rtol=1e-6)
    var.assign([3.0, -2.0])
    step()  # d = 2 / 11
    d = 2 / 11
    np.testing.assert_allclose(
        average.shadows[0].numpy(), [d * 0.9 + (1 - d) * 3.0, d * 2.0 + (1 - d) * -2.0], rtol=1e-6
    )
    assert int(average.updates.numpy()) == 2
    np.testing.assert_array_equal(var.numpy(), [3.0, -2.0])  # the variable itself is untouched


def test_the_average_is_swapped_in_and_the_weights_come_back_even_after_an_error():
    import tensorflow as tf

    var = tf.Variable([5.0])
    average = WeightAverage([var], 0.9)
    average.shadows[0].assign([1.0])
    with average.applied():
        assert var.numpy().tolist() == [1.0]
    assert var.numpy().tolist() == [5.0]
    with pytest.raises(RuntimeError), average.applied():
        raise RuntimeError("evaluation failed")
    assert var.numpy().tolist() == [5.0]


def test_state_round_trips_and_a_state_of_another_model_is_refused():
    import tensorflow as tf

    var = tf.Variable(np.ones((2, 3), np.float32))
    average = WeightAverage([var], 0.9)
    average.shadows[0].assign(np.full((2, 3), 4.0, np.float32))
    average.updates.assign(7)
    state = average.state()
    other = WeightAverage([tf.Variable(np.zeros((2, 3), np.float32))], 0.9)
    other.load_state(state)
    np.testing.assert_array_equal(other.shadows[0].numpy(), state[0])
    assert int(other.updates.numpy()) == 7
    with pytest.raises(ValueError, match="expected 2 arrays"):
        other.load_state(state[:1])
    with pytest.raises(ValueError, match="does not fit"):
        other.load_state([np.zeros((3, 2), np.float32), np.asarray(1)])


def test_a_decay_outside_0_to_1_is_refused():
    import tensorflow as tf

    with pytest.raises(ValueError, match="between 0 and 1"):
        WeightAverage([tf.Variable([0.0])], 1.0)
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match="ema_decay"):
            config_from_dict({"training": {"ema_decay": bad}})


def test_a_decay_of_0_turns_the_average_off():
    import tensorflow as tf

    var = tf.Variable([1.0])
    assert weight_average_for([var], 0.0) is None
    average = weight_average_for([var], 0.5)
    assert isinstance(average, WeightAverage) and average.decay == 0.5
