"""TensorFlow backend's ReLU override: every ReLU becomes a @tf.custom_gradient with the rule.

Keras ReLUs come as `Activation("relu")` layers, `activation=relu` inside Conv/Dense layers, and
`keras.layers.ReLU` layers (with max_value, threshold, negative_slope); nested models hold more.
All are rerouted through `ReluRules.relu`. ReLUs hidden in code (a Lambda, `keras.ops.relu` inside
a custom layer) cannot be rerouted, so `unreached_relus` finds them in the traced graph instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator

from . import tf_env  # noqa: F401  (first: it imports TensorFlow quietly and safely)

# isort: split
import keras
import tensorflow as tf

from .rules import RULES

SCOPE = "gbp_relu"
_RELU_FUNCTIONS = {keras.activations.relu, tf.nn.relu, keras.ops.relu}
_RELU_OPS = {"Relu", "Relu6", "LeakyRelu"}


def is_relu(function: object) -> bool:
    return function in _RELU_FUNCTIONS or getattr(function, "__name__", None) == "relu"


class ReluRules:
    """Holds the method; the rule is read whenever a gradient graph is built (eager or traced)."""

    def __init__(self) -> None:
        self.method = "vanilla"
        self.applied = 0  # rule applications since the counter was last reset

    def rule(self, dy: tf.Tensor, gate: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
        """The method's rule (rules.py), applied to R = dy; `gate` multiplies a gradient by the
        ReLU's own local derivative (R·[x>0] for a plain ReLU)."""
        self.applied += 1
        rule = RULES[self.method]
        passed = tf.nn.relu(dy) if rule.positive else dy
        return gate(passed) if rule.forward else passed

    def relu(
        self,
        x: tf.Tensor,
        negative_slope: float = 0.0,
        max_value: float | None = None,
        threshold: float = 0.0,
    ) -> tf.Tensor:
        """keras.activations.relu forward; the method's rule backward."""

        @tf.custom_gradient
        def overridden(x: tf.Tensor):
            with tf.name_scope(SCOPE):
                y = keras.activations.relu(
                    x, negative_slope=negative_slope, max_value=max_value, threshold=threshold
                )

            def backward(dy: tf.Tensor) -> tf.Tensor:
                return self.rule(dy, gate(x, dy.dtype, negative_slope, max_value, threshold))

            return y, backward

        return overridden(x)


def gate(
    x: tf.Tensor, dtype: tf.DType, negative_slope: float, max_value: float | None, threshold: float
) -> Callable[[tf.Tensor], tf.Tensor]:
    """g ↦ g · d relu/dx, computed in the incoming gradient's dtype.

    A plain ReLU uses TensorFlow's own fused ReluGrad op; a `keras.layers.ReLU` with a threshold,
    a max_value or a negative slope multiplies by its derivative: 1 on (threshold, max_value),
    the slope below the threshold, 0 above max_value.
    """
    features = tf.cast(x, dtype)
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return lambda g: tf.raw_ops.ReluGrad(gradients=g, features=features)
    ones = tf.ones_like(features)
    derivative = tf.where(features > threshold, ones, ones * negative_slope)
    if max_value is not None:
        derivative = tf.where(features < max_value, derivative, tf.zeros_like(features))
    return lambda g: g * derivative


def all_layers(model: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """Every layer, nested models' layers included."""
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from all_layers(layer)


def override_relus(model: keras.Model, rules: ReluRules) -> int:
    """Reroute every reachable ReLU of `model` (in place) through `rules`; returns how many."""
    count = 0
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.ReLU):
            layer.call = functools.partial(
                rules.relu,
                negative_slope=float(layer.negative_slope),
                max_value=None if layer.max_value is None else float(layer.max_value),
                threshold=float(layer.threshold),
            )
            count += 1
        elif is_relu(getattr(layer, "activation", None)):
            layer.activation = rules.relu
            count += 1
    return count


def unreached_relus(model: keras.Model) -> list[str]:
    """Layers whose ReLU ops the override could not reach, found by tracing the forward pass."""
    shape = [1 if d is None else d for d in model.inputs[0].shape]
    forward = tf.function(lambda x: model(x, training=False))
    graph = forward.get_concrete_function(tf.TensorSpec(shape, model.inputs[0].dtype)).graph
    names = {layer.name for layer in all_layers(model)}
    found = []
    for op in graph.get_operations():
        if op.type in _RELU_OPS and SCOPE not in op.name:
            parts = op.name.split("/")[:-1]
            candidates = [c for p in reversed(parts) for c in (p, re.sub(r"_\d+$", "", p))]
            layer = next((c for c in candidates if c in names), op.name)
            if layer not in found:
                found.append(layer)
    return found
