"""The one weight converter between torchvision's state_dict and a Keras network, driven by a
table of the network's weighted layers.

Each row names a layer twice (its torch module prefix, its Keras layer) and says what it is and
its torch weight shape. From the table alone follow the state_dict's keys in torch's own order,
whether a file is this network, and both directions of the conversion:

- a convolution's kernel goes OIHW → HWIO, a depthwise one (C, 1, H, W) → (H, W, C, 1);
- a BatchNorm's (weight, bias, running_mean, running_var) are Keras's (γ, β, mean, variance);
  Keras keeps no num_batches_tracked, so it comes back as torch's fresh 0;
- a Linear weight is transposed; the first one after a flattened map (VGG) also has its rows
  reordered, since torch flattens (C, H, W) and Keras (H, W, C).

Every step is a transpose or a reshape, so torch → Keras → torch is bit-exact. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

State = dict[str, np.ndarray]  # torchvision state_dict names → arrays
KerasWeights = dict[str, list[np.ndarray]]  # Keras layer name → layer.get_weights()
BN = ("weight", "bias", "running_mean", "running_var")  # = Keras's gamma, beta, mean, variance
COUNTER = "num_batches_tracked"  # BatchNorm's step count: in torch's state_dict, not in Keras


class Layer(NamedTuple):
    """One layer that holds weights, as both frameworks name it."""

    torch: str  # module prefix in the state_dict: "layer1.0.conv1"
    keras: str  # the Keras layer holding the same weights
    kind: str  # "conv", "depthwise", "bn" or "dense"
    shape: tuple[int, ...]  # torch's weight shape; a BatchNorm's is (features,)
    bias: bool = False  # a conv or dense layer with a bias
    channels: int = 0  # a dense layer fed a flattened map: that map's channels


Table = Sequence[Layer]


def shape_of(value: Any) -> tuple[int, ...]:
    """An array's (or tensor's) shape, or a shape given as such."""
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def keys(table: Table) -> dict[str, tuple[int, ...]]:
    """The torchvision state_dict the table describes: every key and its shape, in order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in table:
        if layer.kind == "bn":
            shapes.update({f"{layer.torch}.{p}": layer.shape for p in BN})
            shapes[f"{layer.torch}.{COUNTER}"] = ()
            continue
        shapes[f"{layer.torch}.weight"] = layer.shape
        if layer.bias:
            shapes[f"{layer.torch}.bias"] = layer.shape[:1]
    return shapes


def matches(table: Table, state: Mapping[str, Any]) -> bool:
    """Whether a state_dict holds exactly the table's tensors, each of its shape. The BatchNorm
    counters are optional: older checkpoints lack them."""
    expected = {k: s for k, s in keys(table).items() if not k.endswith(f".{COUNTER}")}
    found = {k: shape_of(v) for k, v in state.items() if not k.endswith(f".{COUNTER}")}
    return found == expected


def to_keras(table: Table, state: Mapping[str, Any]) -> KerasWeights:
    """torch arrays → Keras `layer.set_weights` lists, float32."""
    out: KerasWeights = {}
    for layer in table:

        def get(param: str, prefix: str = layer.torch) -> np.ndarray:
            return np.asarray(state[f"{prefix}.{param}"], dtype=np.float32)

        if layer.kind == "bn":
            out[layer.keras] = [get(p) for p in BN]
            continue
        weight = get("weight")
        if layer.kind == "conv":
            arrays = [conv_to_keras(weight)]
        elif layer.kind == "depthwise":
            arrays = [depthwise_to_keras(weight)]
        elif layer.channels:
            arrays = [flat_dense_to_keras(weight, layer.channels)]
        else:
            arrays = [np.ascontiguousarray(weight.T)]
        out[layer.keras] = [*arrays, get("bias")] if layer.bias else arrays
    return out


def from_keras(table: Table, weights: Mapping[str, Sequence[np.ndarray]]) -> State:
    """Keras `layer.get_weights` lists → a torch state_dict of arrays, in torch's key order: the
    exact inverse of `to_keras`. Layers the table does not name are passed over."""
    state: State = {}
    for layer in table:
        arrays = [np.asarray(a) for a in weights[layer.keras]]
        if layer.kind == "bn":
            state.update({f"{layer.torch}.{p}": a for p, a in zip(BN, arrays, strict=True)})
            state[f"{layer.torch}.{COUNTER}"] = np.zeros((), np.int64)
            continue
        kernel = arrays[0]
        if layer.kind == "conv":
            weight = conv_from_keras(kernel)
        elif layer.kind == "depthwise":
            weight = depthwise_from_keras(kernel)
        elif layer.channels:
            weight = flat_dense_from_keras(kernel, layer.channels)
        else:
            weight = np.ascontiguousarray(kernel.T)
        state[f"{layer.torch}.weight"] = weight
        if layer.bias:
            state[f"{layer.torch}.bias"] = arrays[1]
    return {k: np.asarray(v, order="C") for k, v in state.items()}  # 0-d stays 0-d


def conv_to_keras(weight: np.ndarray) -> np.ndarray:
    """OIHW → HWIO."""
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)))


def conv_from_keras(kernel: np.ndarray) -> np.ndarray:
    """HWIO → OIHW."""
    return np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))


def depthwise_to_keras(weight: np.ndarray) -> np.ndarray:
    """torch (C, 1, H, W) → Keras DepthwiseConv2D (H, W, C, 1)."""
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 0, 1)))


def depthwise_from_keras(kernel: np.ndarray) -> np.ndarray:
    """Keras (H, W, C, 1) → torch (C, 1, H, W)."""
    return np.ascontiguousarray(np.transpose(kernel, (2, 3, 0, 1)))


def flat_dense_to_keras(weight: np.ndarray, channels: int) -> np.ndarray:
    """A Linear weight (out, C·H·W) fed torch's flattened map → Keras's kernel (H·W·C, out):
    transposed, its rows in the (H, W, C) order of Keras's Flatten on a channels-last map."""
    out, n = weight.shape
    side = math.isqrt(n // channels)
    kernel = weight.reshape(out, channels, side, side).transpose(2, 3, 1, 0)
    return np.ascontiguousarray(kernel).reshape(n, out)  # one copy: VGG's is 400 MB


def flat_dense_from_keras(kernel: np.ndarray, channels: int) -> np.ndarray:
    """The inverse of `flat_dense_to_keras`."""
    n, out = kernel.shape
    side = math.isqrt(n // channels)
    weight = kernel.reshape(side, side, channels, out).transpose(3, 2, 0, 1)
    return np.ascontiguousarray(weight).reshape(out, n)
