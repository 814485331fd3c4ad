"""The TF backend's @tf.custom_gradient ReLUs: the rules by hand, Keras's ReLU forms, modes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gbp_cli.backends.tf.env")  # TensorFlow, imported safely
import keras
import tensorflow as tf

from gbp_cli.backends.base import BackendError, WeightsSpec
from gbp_cli.backends.tf.activations import ReluRules, account, gate
from gbp_cli.backends.tf.backend import choose_mode, wrap_keras_model
from tests.conftest import HAND_COMPUTED

KERNELS = [
    [[1, -1], [-1, 2]],
    [[1, 1], [2, -1]],
    [[1, -2], [1, 1]],
    [[-1, 2], [1, -2]],
    [[1, -1], [0, 1]],
]


def dense(i: int, activation: str | None = None) -> keras.layers.Dense:
    layer = keras.layers.Dense(2, use_bias=False, activation=activation, name=f"dense{i}")
    layer.build((None, 2))
    layer.set_weights([np.array(KERNELS[i], np.float32).T])  # Keras kernels are (in, out)
    return layer


def tiny() -> keras.Model:
    """The torch test's tiny net, each ReLU in a different Keras form (one in a nested model)."""
    x = keras.Input((2,))
    h = keras.layers.Activation("relu")(dense(0)(x))  # pre-activation [-1, 3]
    h = dense(1, activation="relu")(h)  # [3, -3]
    h = keras.layers.ReLU()(dense(2)(h))  # [3, 3]
    inner = keras.Input((2,))
    h = keras.Model(inner, dense(3, activation="relu")(inner), name="nested")(h)  # [3, -3]
    return keras.Model(x, dense(4)(h))  # logits [3, 0]


@pytest.mark.parametrize("method", sorted(HAND_COMPUTED))
def test_rules_match_the_hand_computed_values(method: str) -> None:
    backend = wrap_keras_model(tiny(), WeightsSpec("random"), "cpu")
    result = backend.explain(np.array([[1.0, 2.0]], np.float32), [method], np.array([[0]]))
    np.testing.assert_allclose(result.logits, [[3.0, 0.0]])
    assert result.saliency[method][0, 0].tolist() == HAND_COMPUTED[method]
    assert result.relus[method] == 4 and result.activations[method] == {"ReLU": 4}
    assert backend.info.activations == {"ReLU": 4} and backend.info.unruled == {}


def test_the_users_model_is_left_unchanged() -> None:
    model = tiny()
    x = tf.constant([[1.0, 2.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = model(x)[0, 0]
    before = tape.gradient(score, x).numpy()
    wrap_keras_model(model, WeightsSpec("random"), "cpu").explain(x.numpy(), ["guided"])
    assert model.layers[2].activation is keras.activations.relu
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = model(x)[0, 0]
    np.testing.assert_array_equal(tape.gradient(score, x).numpy(), before)
    np.testing.assert_array_equal(before[0], HAND_COMPUTED["vanilla"])


def relu6(x: list[float], dy: list[float], method: str) -> list[float]:
    rules = ReluRules()
    rules.method = method
    xs = tf.constant([x])
    with tf.GradientTape() as tape:
        tape.watch(xs)
        y = rules.relu(xs, max_value=6.0, kind="ReLU6")
    assert not rules.applied  # counted when the gradient is built, not before
    return tape.gradient(y, xs, output_gradients=tf.constant([dy])).numpy()[0].tolist()


def test_relu6_gates_between_0_and_6() -> None:
    x, dy = [-1.0, 0.5, 2.0, 7.0, 3.0], [1.0, 1.0, -1.0, 1.0, 2.0]
    # The local derivative is [0 < x < 6]: entries 1, 2 and 4 pass.
    assert relu6(x, dy, "vanilla") == [0.0, 1.0, -1.0, 0.0, 2.0]
    assert relu6(x, dy, "guided") == [0.0, 1.0, 0.0, 0.0, 2.0]
    assert relu6(x, dy, "deconv") == [1.0, 1.0, 0.0, 1.0, 2.0]


def test_the_gradient_is_computed_in_the_incoming_dtype() -> None:
    rules = ReluRules()
    x = tf.constant([1.0, -1.0, 2.0])
    for method in ("guided", "vanilla", "deconv"):
        rules.method = method
        for cap in (None, 6.0, 3.0):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = rules.relu(x, max_value=cap)
            dy = tf.constant([1.0, 1.0, -1.0], tf.float16)
            assert tape.gradient(y, x, output_gradients=tf.cast(dy, tf.float32)).dtype == tf.float32
            assert rules.rule(dy, gate(x, tf.float16, cap), "ReLU").dtype == tf.float16


class HiddenRelu(keras.layers.Layer):
    def call(self, x):
        return keras.ops.relu(x)


def test_every_reachable_form_is_overridden_and_the_rest_are_counted() -> None:
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    h = keras.layers.ReLU(max_value=6.0, name="relu6")(h)
    h = keras.layers.Activation("relu", name="act")(h)
    h = keras.layers.Lambda(tf.nn.relu, name="lam")(h)
    h = HiddenRelu(name="hidden")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(x, keras.layers.Dense(3, activation="relu", name="head")(h))
    census = account(model, ReluRules())
    assert census.overridden == 4
    assert census.counts == {"ReLU": 3, "ReLU6": 1, "ReLU (unreachable)": 2}
    assert census.unruled() == {"ReLU (unreachable)": ("lam", "hidden")}


@pytest.fixture(scope="module")
def small_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    x = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    h = keras.layers.ReLU(max_value=6.0)(keras.layers.Conv2D(8, 3, strides=2)(h))
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(x, keras.layers.Dense(5)(h))


def test_eager_graph_and_xla_agree_and_a_short_batch_does_not_retrace(small_model) -> None:
    images = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype(np.float32)
    results = {}
    for mode in ("eager", "graph", "xla"):
        backend = wrap_keras_model(small_model, WeightsSpec("random"), "cpu", mode=mode)
        backend.plan(len(images), 4)
        assert backend.mode == mode
        full = backend.explain(images, ["guided", "vanilla"])
        short = backend.explain(images[:3], ["guided", "vanilla"])
        np.testing.assert_allclose(short.saliency["guided"], full.saliency["guided"][:3], atol=1e-6)
        results[mode] = full
        if mode != "eager":
            function = backend._functions[(mode, ("guided", "vanilla"), 1, False, False)]
            assert function.experimental_get_tracing_count() == 1
    for mode in ("graph", "xla"):
        for method in ("guided", "vanilla"):
            np.testing.assert_allclose(
                results[mode].saliency[method], results["eager"].saliency[method], atol=1e-5
            )
        assert results[mode].relus == {"guided": 2, "vanilla": 2}


def test_a_given_mode_is_kept_and_auto_follows_the_plan(small_model) -> None:
    spec = WeightsSpec("random")
    given = wrap_keras_model(small_model, spec, "cpu", mode="xla")
    given.plan(1, 8)
    assert given.mode == "xla"
    chosen = wrap_keras_model(small_model, spec, "cpu")
    assert chosen.mode == "eager"  # before any plan: the cheapest start
    chosen.plan(200, 8)
    assert chosen.mode == "graph"
    with pytest.raises(AttributeError):
        chosen.mode = "eager"  # type: ignore[misc]
    with pytest.raises(BackendError, match="expected one of auto, eager, graph, xla"):
        wrap_keras_model(small_model, spec, "cpu", mode="jit")


@pytest.mark.parametrize(
    ("images", "batch", "mode"),
    [(1, 8, "eager"), (5, 8, "eager"), (200, 8, "graph"), (None, 8, "graph"), (2000, 1, "xla")],
)
def test_the_execution_mode_follows_the_workload(images, batch: int, mode: str) -> None:
    assert choose_mode(images, batch) == mode
