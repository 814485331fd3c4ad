"""TensorFlow backend's activations: every one is counted by kind, and those a rule is defined for
(ReLU and ReLU6, backends/rules.py) are rerouted through a @tf.custom_gradient that applies it.

Keras activations come as `Activation(...)` layers, `activation=` inside Conv/Dense layers, layers
of their own (`ReLU` with max_value/threshold/negative_slope, LeakyReLU, PReLU, ELU, Softmax), and
nested models hold more. Activations hidden in code (a Lambda, `keras.ops.sigmoid` inside a custom
layer) cannot be rerouted, so `traced_activations` finds their ops in the traced forward graph:
nothing goes uncounted, and a ReLU op found there is one the rule cannot reach.

A `ReLU` layer is ruled only as a plain ReLU (threshold 0, slope 0, no cap) or a ReLU6 (cap 6).
Any other setting is a different function with no rule in rules.py: a negative slope makes it a
"leaky_relu", a threshold a "relu(threshold)", another cap a "relu(max_value)".
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from . import env  # noqa: F401  (first: it imports TensorFlow quietly and safely)

# isort: split
import keras
import tensorflow as tf

from ..rules import RULED_ACTIVATIONS, RULES, canonical

SCOPE = "gbp_relu"
UNREACHABLE = " (unreachable)"  # suffix of a ruled kind found only as an op in the graph
SHOWN_PATHS = 3  # layer paths kept per unruled kind
_RELU_FUNCTIONS = {keras.activations.relu, tf.nn.relu, keras.ops.relu}
_RELU6_FUNCTIONS = {keras.activations.relu6, tf.nn.relu6, keras.ops.relu6}
# Kinds are the rules' names for the ruled ones (rules.py), else Keras's own activation names.
_LAYER_KINDS = {
    keras.layers.LeakyReLU: "leaky_relu",
    keras.layers.PReLU: "prelu",
    keras.layers.ELU: "elu",
    keras.layers.Softmax: "softmax",
}
# Graph ops only an activation makes (counted in Keras's words: Sigmoid → sigmoid; silu/swish is
# x·sigmoid(x); hard_sigmoid and hard_silu make a Relu6), and TensorFlow's name scope for gelu.
OPS = {"LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh", "Softplus", "Softsign", "Erf", "Erfc"}
OPS |= {"Softmax", "LogSoftmax", "Relu", "Relu6"}
SCOPE_KINDS = {"Gelu": "gelu"}


def op_kind(op_type: str) -> str:
    if op_type in ("Relu", "Relu6"):
        return op_type.replace("Relu", "ReLU") + UNREACHABLE
    return re.sub(r"(?<!^)(?=[A-Z])", "_", op_type.removesuffix("c")).lower()


def is_relu(function: object) -> bool:
    return function in _RELU_FUNCTIONS or getattr(function, "__name__", None) == "relu"


class ReluRules:
    """Holds the method; the rule is read whenever a gradient graph is built (eager or traced)."""

    def __init__(self) -> None:
        self.method = "vanilla"
        self.applied: Counter[str] = Counter()  # rule applications by kind, never reset

    def rule(self, dy: tf.Tensor, gate: Callable[[tf.Tensor], tf.Tensor], kind: str) -> tf.Tensor:
        """The method's rule (rules.py), applied to R = dy; `gate` multiplies a gradient by the
        activation's own local derivative ([x>0] for a ReLU, [0<x<6] for a ReLU6)."""
        self.applied[kind] += 1
        rule = RULES[self.method]
        passed = tf.nn.relu(dy) if rule.positive else dy
        return gate(passed) if rule.forward else passed

    def relu(self, x: tf.Tensor, max_value: float | None = None, kind: str = "ReLU") -> tf.Tensor:
        """ReLU (or ReLU6, with max_value 6) forward; the method's rule backward."""

        @tf.custom_gradient
        def overridden(x: tf.Tensor):
            with tf.name_scope(SCOPE):
                y = keras.activations.relu(x, max_value=max_value)

            def backward(dy: tf.Tensor) -> tf.Tensor:
                return self.rule(dy, gate(x, dy.dtype, max_value), kind)

            return y, backward

        return overridden(x)


def gate(
    x: tf.Tensor, dtype: tf.DType, max_value: float | None = None
) -> Callable[[tf.Tensor], tf.Tensor]:
    """g ↦ g · d relu/dx, computed in the incoming gradient's dtype: TensorFlow's fused ReluGrad
    for a ReLU ([x > 0]), Relu6Grad for a ReLU6 ([0 < x < 6])."""
    features = tf.cast(x, dtype)
    if max_value is None:
        return lambda g: tf.raw_ops.ReluGrad(gradients=g, features=features)
    if max_value == 6.0:
        return lambda g: tf.raw_ops.Relu6Grad(gradients=g, features=features)
    inside = tf.logical_and(features > 0, features < max_value)
    return lambda g: g * tf.cast(inside, dtype)


def walk(model: keras.Layer) -> Iterator[tuple[str, keras.Layer]]:
    """Every layer once, nested models' layers included, with its path ("outer/inner/layer")."""
    seen: set[int] = set()

    def visit(parent: keras.Layer, prefix: str) -> Iterator[tuple[str, keras.Layer]]:
        for layer in getattr(parent, "layers", ()):
            if id(layer) not in seen:
                seen.add(id(layer))
                yield prefix + layer.name, layer
                yield from visit(layer, f"{prefix}{layer.name}/")

    return visit(model, "")


def relu_kind(slope: float, cap: float | None, threshold: float) -> tuple[str, float | None, bool]:
    """A `keras.layers.ReLU`'s kind, the cap its override keeps, and whether a rule is defined."""
    if slope != 0.0:
        return "leaky_relu", None, False
    if threshold != 0.0:
        return "relu(threshold)", None, False
    if cap is None or cap == 6.0:
        return ("ReLU" if cap is None else "ReLU6"), cap, True
    return "relu(max_value)", None, False


def function_kind(function: Callable) -> tuple[str, float | None, bool]:
    """An activation function's kind, the cap its override keeps, and whether a rule is defined."""
    if function in _RELU6_FUNCTIONS or getattr(function, "__name__", None) == "relu6":
        return "ReLU6", 6.0, True
    if is_relu(function):
        return "ReLU", None, True
    if isinstance(function, functools.partial):  # relu with arguments, say: not a plain ReLU
        return f"{getattr(function.func, '__name__', 'partial')}(…)", None, False
    return getattr(function, "__name__", type(function).__name__), None, False


def classify(layer: keras.layers.Layer) -> tuple[str, float | None, bool] | None:
    """The activation a layer applies (kind, cap, ruled), or None where it applies none."""
    if isinstance(layer, keras.layers.ReLU):
        cap = None if layer.max_value is None else float(layer.max_value)
        return relu_kind(float(layer.negative_slope), cap, float(layer.threshold))
    for cls, kind in _LAYER_KINDS.items():
        if isinstance(layer, cls):
            return kind, None, False
    function = getattr(layer, "activation", None)
    if function is None or getattr(function, "__name__", None) == "linear":
        return None
    return function_kind(function)


@dataclass
class Census:
    """The activations of one forward pass: counts by kind, and where each kind is."""

    counts: Counter[str] = field(default_factory=Counter)
    paths: dict[str, list[str]] = field(default_factory=dict)
    layers: set[str] = field(default_factory=set)  # paths of layers counted as a whole

    def add(self, kind: str, path: str) -> None:
        kind = canonical(kind)
        self.counts[kind] += 1
        self.paths.setdefault(kind, []).append(path)

    @property
    def overridden(self) -> int:
        return sum(self.counts[kind] for kind in RULED_ACTIVATIONS)

    def unruled(self) -> dict[str, tuple[str, ...]]:
        """Kinds with no rule, each with its first few layer paths."""
        return {
            kind: tuple(dict.fromkeys(paths))[:SHOWN_PATHS]
            for kind, paths in self.paths.items()
            if kind not in RULED_ACTIVATIONS
        }


def override_activations(model: keras.Model, rules: ReluRules) -> Census:
    """Count every layer's activation, rerouting the ruled ones (in place) through `rules`."""
    census = Census()
    for path, layer in walk(model):
        found = classify(layer)
        if found is None:
            continue
        kind, cap, ruled = found
        census.add(kind, path)
        if ruled:
            relu = functools.partial(rules.relu, max_value=cap, kind=kind)
            if isinstance(layer, keras.layers.ReLU):
                layer.call = relu
            else:
                layer.activation = relu
        elif type(layer).__module__.startswith("keras."):
            census.layers.add(path)  # its ops are this activation: not counted again
    return census


def account(model: keras.Model, rules: ReluRules, trace: bool = True) -> Census:
    """Reroute the ruled activations through `rules` and count them all; with `trace`, the forward
    graph is searched too, for those no layer declares (a user's code may hide any)."""
    census = override_activations(model, rules)
    if trace:
        traced_activations(model, census)
    return census


def hook_output(layer: keras.Layer, keep: Callable[[tf.Tensor], None]) -> None:
    """Hand each output of `layer` to `keep`: a forward hook, as good for a layer deep inside a
    nested model as for one at the top (Grad-CAM's layer)."""
    call = layer.call

    def hooked(*args, **kwargs):
        output = call(*args, **kwargs)
        keep(output)
        return output

    layer.call = hooked


def traced_activations(model: keras.Model, census: Census) -> None:
    """Add to `census` the activation ops of the traced forward pass that no layer accounts for:
    those inside custom layers and Lambdas, and ReLUs the override could not reach. Each op
    belongs to the innermost layer whose call made it, seen by wrapping every layer's call for
    the trace (name scopes cannot tell: layer "conv2d" is traced as "conv2d_1")."""
    owners: dict[str, str] = {}
    layers = list(walk(model))
    saved = [(layer, layer.__dict__.get("call")) for _, layer in layers]
    for path, layer in layers:
        layer.call = _attributing(layer.call, path, owners)
    try:
        forward = tf.function(lambda x: model(x, training=False), autograph=False)
        spec = tf.TensorSpec(model.inputs[0].shape, model.inputs[0].dtype)
        graph = forward.get_concrete_function(spec).graph
    finally:
        for layer, call in saved:
            if call is None:
                del layer.call
            else:
                layer.call = call
    seen: set[str] = set()
    for op in (op for op in graph.get_operations() if SCOPE not in op.name):
        parts = op.name.split("/")
        scoped = next((i for i, part in enumerate(parts) if part in SCOPE_KINDS), None)
        if scoped is not None:
            key = "/".join(parts[: scoped + 1])  # one gelu, however many ops it takes
            if key in seen:
                continue
            seen.add(key)
            kind = SCOPE_KINDS[parts[scoped]]
        elif op.type in OPS:
            kind = op_kind(op.type)
        else:
            continue
        path = owners.get(op.name) or "/".join(parts[1:-1]) or op.name  # else: the op's scope
        if path not in census.layers:
            census.add(kind, path)


def _attributing(call: Callable, path: str, owners: dict[str, str]) -> Callable:
    def attributed(*args, **kwargs):
        graph = tf.compat.v1.get_default_graph()
        before = len(graph.get_operations())
        output = call(*args, **kwargs)
        for op in graph.get_operations()[before:]:
            owners.setdefault(op.name, path)  # inner layers finish first
        return output

    return attributed
