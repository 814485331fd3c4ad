"""torchvision's MobileNetV2 as a Keras functional network that computes the same function, and its
weights in both layouts.

Why not `keras.applications.MobileNetV2`: it pads stride-2 convolutions asymmetrically and uses
BatchNorm ε 1e-3, so torchvision's weights would give another function. Here every padding is an
explicit `ZeroPadding2D` followed by a "valid" convolution, as torchvision pads, and ε is 1e-5.

Every Keras layer is named after the torch module it mirrors ("features.2.conv.0.0" →
"features_2_conv_0_0"), so a difference between the two is easy to trace. The table of weighted
layers and the conversion written over it are shared with the EfficientNet-Lite0 twin
(backends/keras_lite0.py), which is built from the same parts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from ..base import Preprocessing
from .registry import (
    BN,
    KerasWeights,
    Replica,
    State,
    conv_from_keras,
    conv_to_keras,
    depthwise_from_keras,
    depthwise_to_keras,
    register,
)

NAME = "mobilenet_v2"
# torchvision's inverted_residual_setting: expand ratio t, channels c, repeats n, first stride s.
SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
SETTING += ((6, 160, 3, 2), (6, 320, 1, 1))
STEM, LAST = 32, 1280
EPS = 1e-5  # torchvision's BatchNorm2d default
DROPOUT = 0.2
HEAD = 1 + sum(n for _, _, n, _ in SETTING)  # `features` index of the last 1×1 conv block: 18
# torch's Grad-CAM layer is `features`: the last 1×1 conv block's output, after its ReLU6.
CAM_LAYER = f"features_{HEAD}_2"

# (torch module prefix, Keras layer name, kind: conv/depthwise/bn/dense, torch weight shape)
Layer = tuple[str, str, str, tuple[int, ...]]
Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))


def keras_name(prefix: str) -> str:
    """A torch module path as a Keras layer name: dots are not allowed in every Keras version."""
    return prefix.replace(".", "_")


def blocks() -> Iterator[tuple[int, int, int, int, int]]:
    """(index in `features`, in channels, out channels, stride, expand ratio) per block."""
    index, channels = 1, STEM
    for t, c, n, s in SETTING:
        for i in range(n):
            yield index, channels, c, s if i == 0 else 1, t
            index, channels = index + 1, c


def layers(num_classes: int = 1000) -> Iterator[Layer]:
    """Every layer that holds weights, in network order."""

    def entry(prefix: str, kind: str, shape: tuple[int, ...]) -> Layer:
        return prefix, keras_name(prefix), kind, shape

    yield entry("features.0.0", "conv", (STEM, 3, 3, 3))
    yield entry("features.0.1", "bn", (STEM,))
    last = 0
    for index, cin, cout, _, t in blocks():
        prefix, hidden, j = f"features.{index}.conv", cin * t, 0
        if t != 1:
            yield entry(f"{prefix}.0.0", "conv", (hidden, cin, 1, 1))
            yield entry(f"{prefix}.0.1", "bn", (hidden,))
            j = 1
        yield entry(f"{prefix}.{j}.0", "depthwise", (hidden, 1, 3, 3))
        yield entry(f"{prefix}.{j}.1", "bn", (hidden,))
        yield entry(f"{prefix}.{j + 1}", "conv", (cout, hidden, 1, 1))
        yield entry(f"{prefix}.{j + 2}", "bn", (cout,))
        last = cout
    yield entry(f"features.{HEAD}.0", "conv", (LAST, last, 1, 1))
    yield entry(f"features.{HEAD}.1", "bn", (LAST,))
    yield entry("classifier.1", "dense", (num_classes, LAST))


# The conversion, written once over a layer table (shared with keras_lite0).


def table_to_keras(table: Iterable[Layer], state: Mapping[str, Any]) -> KerasWeights:
    """torch arrays → Keras `layer.set_weights` lists, float32."""
    out: KerasWeights = {}
    for prefix, name, kind, _ in table:

        def get(param: str, prefix: str = prefix) -> np.ndarray:
            return np.asarray(state[f"{prefix}.{param}"], dtype=np.float32)

        if kind == "conv":
            out[name] = [conv_to_keras(get("weight"))]
        elif kind == "depthwise":
            out[name] = [depthwise_to_keras(get("weight"))]
        elif kind == "bn":
            out[name] = [get(p) for p in BN]
        else:
            out[name] = [np.ascontiguousarray(get("weight").T), get("bias")]
    return out


def table_from_keras(table: Iterable[Layer], weights: Mapping[str, list[np.ndarray]]) -> State:
    """Keras `layer.get_weights` lists → a torch state_dict of arrays; the exact inverse.
    Keras keeps no num_batches_tracked: it comes back 0, as in every checkpoint seen here."""
    state: State = {}
    for prefix, name, kind, _ in table:
        arrays = weights[name]
        if kind == "conv":
            state[f"{prefix}.weight"] = conv_from_keras(arrays[0])
        elif kind == "depthwise":
            state[f"{prefix}.weight"] = depthwise_from_keras(arrays[0])
        elif kind == "bn":
            state.update({f"{prefix}.{p}": np.asarray(a) for p, a in zip(BN, arrays, strict=True)})
            state[f"{prefix}.num_batches_tracked"] = np.zeros((), np.int64)
        else:
            state[f"{prefix}.weight"] = np.ascontiguousarray(np.asarray(arrays[0]).T)
            state[f"{prefix}.bias"] = np.asarray(arrays[1])
    return state


def table_matches(table: Iterable[Layer], state: Mapping[str, Any]) -> bool:
    """Whether a state_dict holds exactly the table's tensors, each of its shape.
    num_batches_tracked is optional (older checkpoints lack it)."""
    expected: dict[str, tuple[int, ...]] = {}
    for prefix, _, kind, shape in table:
        expected[f"{prefix}.weight"] = shape
        if kind == "bn":
            expected.update({f"{prefix}.{p}": shape for p in BN[1:]})
        elif kind == "dense":
            expected[f"{prefix}.bias"] = shape[:1]
    keys = {k for k in state if not k.endswith(".num_batches_tracked")}
    return keys == set(expected) and all(
        tuple(getattr(state[k], "shape", ())) == shape for k, shape in expected.items()
    )


def head_rows(state: Mapping[str, Any], key: str) -> int | None:
    """The class count of a state_dict's linear head, if it has one of that name."""
    shape = tuple(getattr(state.get(key), "shape", ()))
    return int(shape[0]) if len(shape) == 2 and shape[0] > 0 else None


# The Keras building blocks (shared with keras_lite0).


def padded(x: Any, name: str, pads: Pads) -> Any:
    """An explicit ZeroPadding2D (only where there is padding), so that a "valid" convolution
    after it pads exactly as torch does."""
    import keras

    if any(any(p) for p in pads):
        x = keras.layers.ZeroPadding2D(pads, name=f"{name}_pad")(x)
    return x


def conv(
    x: Any, name: str, filters: int, kernel: int, stride: int = 1, pads: Pads = ((0, 0), (0, 0))
) -> Any:
    """A bias-free convolution after explicit padding (none by default: the 1×1s)."""
    import keras

    x = padded(x, name, pads)
    return keras.layers.Conv2D(filters, kernel, stride, "valid", use_bias=False, name=name)(x)


def depthwise(x: Any, name: str, kernel: int, stride: int, pads: Pads) -> Any:
    import keras

    x = padded(x, name, pads)
    return keras.layers.DepthwiseConv2D(kernel, stride, "valid", use_bias=False, name=name)(x)


def batchnorm(x: Any, name: str, eps: float) -> Any:
    import keras

    return keras.layers.BatchNormalization(epsilon=eps, name=name)(x)


def relu6(x: Any, name: str) -> Any:
    """A `ReLU(max_value=6)` layer: the form gbp's TF backend gives the ReLU6 rule."""
    import keras

    return keras.layers.ReLU(max_value=6.0, name=name)(x)


def head(x: Any, num_classes: int, dropout: float, names: tuple[str, str, str]) -> Any:
    """Global average pool, dropout (identity in inference), the linear classifier (logits)."""
    import keras

    pool, drop, dense = names
    x = keras.layers.GlobalAveragePooling2D(name=pool)(x)
    x = keras.layers.Dropout(dropout, name=drop)(x)
    return keras.layers.Dense(num_classes, name=dense)(x)


def build(num_classes: int = 1000, size: int | None = 224) -> Any:
    """The Keras network, channels-last, logits out; `size` None takes any square size."""
    import keras

    x = inputs = keras.Input((size, size, 3), name="input")
    sym = ((1, 1), (1, 1))  # torchvision's 3×3 padding: 1 on every side, at any stride
    x = conv(x, "features_0_0", STEM, 3, 2, sym)
    x = relu6(batchnorm(x, "features_0_1", EPS), "features_0_2")
    for index, cin, cout, stride, t in blocks():
        prefix, block_input, j = f"features_{index}_conv", x, 0
        if t != 1:
            x = conv(x, f"{prefix}_0_0", cin * t, 1)
            x = relu6(batchnorm(x, f"{prefix}_0_1", EPS), f"{prefix}_0_2")
            j = 1
        x = depthwise(x, f"{prefix}_{j}_0", 3, stride, sym)
        x = relu6(batchnorm(x, f"{prefix}_{j}_1", EPS), f"{prefix}_{j}_2")
        x = batchnorm(conv(x, f"{prefix}_{j + 1}", cout, 1), f"{prefix}_{j + 2}", EPS)
        if stride == 1 and cin == cout:  # torchvision's use_res_connect
            x = keras.layers.Add(name=f"features_{index}_add")([block_input, x])
    x = conv(x, f"features_{HEAD}_0", LAST, 1)
    x = relu6(batchnorm(x, f"features_{HEAD}_1", EPS), CAM_LAYER)
    logits = head(x, num_classes, DROPOUT, ("avgpool", "classifier_0", "classifier_1"))
    return keras.Model(inputs, logits, name=NAME)


def table_functions(
    table: Callable[[int], Iterable[Layer]], torch_head: str, keras_head: str
) -> tuple[Callable, Callable, Callable, Callable]:
    """to_keras, from_keras, matches and num_classes of a network its weight table describes:
    `torch_head` is the classifier's weight in the state_dict, `keras_head` its Keras layer."""

    def num_classes(state: Mapping[str, Any]) -> int:
        return int(state[torch_head].shape[0])

    def to_keras(state: Mapping[str, Any]) -> KerasWeights:
        return table_to_keras(table(num_classes(state)), state)

    def from_keras(weights: Mapping[str, list[np.ndarray]]) -> State:
        return table_from_keras(table(int(np.shape(weights[keras_head][0])[1])), weights)

    def matches(state: Mapping[str, Any]) -> bool:
        rows = head_rows(state, torch_head)
        return rows is not None and table_matches(table(rows), state)

    return to_keras, from_keras, matches, num_classes


# torchvision's mobilenet_v2 (width 1.0), any class count; the round trip is exact.
to_keras, from_keras, matches, num_classes = table_functions(
    layers, "classifier.1.weight", "classifier_1"
)

REPLICA = register(
    Replica(
        name=NAME,
        build=build,
        to_keras=to_keras,
        from_keras=from_keras,
        matches=matches,
        cam_layer=CAM_LAYER,
        num_classes=num_classes,
        preprocessing=Preprocessing(size=224, resize=232, name="imagenet"),
    )
)
