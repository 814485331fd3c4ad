"""torchvision's VGG16/19 (no BatchNorm) as a Keras functional model (channels-last), and weights.

The same layers as keras.applications' VGG16/19, but one difference matters for the weights: torch
flattens the last feature map as (C, H, W), Keras as (H, W, C), so the first Linear's input
columns are permuted on the way over (and back). Layers are named as torchvision's modules
("features.0", "classifier.0"); the Dropouts, identities in eval mode, are left out.

torch's AdaptiveAvgPool2d((7, 7)) is reproduced where the feature map's side is a multiple of 7
(input 224, 448, …): the identity at 7, AveragePooling2D(side / 7) above. Other sizes are refused.
Only numpy at import: Keras is imported when a model is built.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .registry import KerasWeights, Replica, State, register
from .resnet import named_from_keras, named_to_keras

Config = Sequence[int | str]  # torchvision's make_layers config: out channels, or "M" (max-pool)
CFGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (
        *(64, 64, "M", 128, 128, "M", 256, 256, 256, "M"),
        *(512, 512, 512, "M", 512, 512, 512, "M"),
    ),
    "vgg19": (
        *(64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"),
        *(512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
    ),
}
POOLED = 7  # AdaptiveAvgPool2d((7, 7))
HIDDEN = 4096
SIZE = 224
CAM_LAYER = "features"  # what torch's Grad-CAM auto-detection picks (tests check)
FIRST_DENSE = "classifier.0"


def build(arch: str, num_classes: int = 1000, size: int = SIZE) -> Any:
    """The Keras twin of torchvision's `models.<arch>(num_classes=...)`, logits out."""
    return vgg(CFGS[arch], num_classes, size, name=arch)


def vgg(
    cfg: Config, num_classes: int, size: int = SIZE, hidden: int = HIDDEN, name: str = "vgg"
) -> Any:
    """torchvision's `VGG(make_layers(cfg))` at size×size input; `hidden` is the classifier's
    width (4096 in torchvision; tests narrow it to keep small twins small)."""
    import keras

    inputs = keras.Input((size, size, 3), name="input")
    x, i = inputs, 0
    for v in cfg:
        if v == "M":
            x = keras.layers.MaxPooling2D(2, strides=2, name=f"features.{i}")(x)
            i += 1
        else:  # 3×3, stride 1, pad 1: Keras's "same" pads symmetrically here
            x = keras.layers.Conv2D(int(v), 3, padding="same", name=f"features.{i}")(x)
            x = keras.layers.ReLU(name=f"features.{i + 1}")(x)
            i += 2
    x = keras.layers.Identity(name="features")(x)  # torch's Grad-CAM layer, by its name
    side = int(x.shape[1])
    if side % POOLED:
        raise ValueError(
            f"{name} at {size}×{size} gives a {side}×{side} feature map; torch's "
            f"AdaptiveAvgPool2d(({POOLED}, {POOLED})) is reproduced only for multiples of "
            f"{POOLED} (input {32 * POOLED}, {64 * POOLED}, …)"
        )
    if side > POOLED:  # equal windows, as adaptive pooling's are when the side divides
        x = keras.layers.AveragePooling2D(side // POOLED, name="avgpool")(x)
    x = keras.layers.Flatten(name="flatten")(x)  # (H, W, C) order: see `_kernel_rows`
    for index, units in ((0, hidden), (3, hidden)):
        x = keras.layers.Dense(units, name=f"classifier.{index}")(x)
        x = keras.layers.ReLU(name=f"classifier.{index + 1}")(x)
    outputs = keras.layers.Dense(num_classes, name="classifier.6")(x)
    return keras.Model(inputs, outputs, name=name)


# --- weights: numpy only ---


def _kernel_rows(weight: np.ndarray, channels: int) -> np.ndarray:
    """torch's first Linear weight (out, C·H·W) → Keras's kernel (H·W·C, out): transposed, with
    its rows in the (H, W, C) order in which Keras's Flatten lays out a channels-last map."""
    out, n = weight.shape
    side = math.isqrt(n // channels)
    kernel = weight.reshape(out, channels, side, side).transpose(2, 3, 1, 0)
    return np.ascontiguousarray(kernel).reshape(n, out)  # one copy: this matrix is 400 MB


def _weight_columns(kernel: np.ndarray, channels: int) -> np.ndarray:
    """The inverse of `_kernel_rows`."""
    n, out = kernel.shape
    side = math.isqrt(n // channels)
    weight = kernel.reshape(side, side, channels, out).transpose(3, 2, 0, 1)
    return np.ascontiguousarray(weight).reshape(out, n)


def _channels(weights: Mapping[str, Sequence[np.ndarray]]) -> int:
    """The flattened map's channels: the last "features.N" conv's outputs (HWIO: O last)."""
    convs = [name for name, arrays in weights.items() if name.startswith("features.") and arrays]
    return int(np.shape(weights[max(convs, key=lambda n: int(n.split(".")[1]))][0])[-1])


def to_keras(state: Mapping[str, np.ndarray]) -> KerasWeights:
    """torch arrays → Keras `set_weights` lists; the first Dense's rows follow NHWC flattening."""
    big = f"{FIRST_DENSE}.weight"
    weights = named_to_keras({k: v for k, v in state.items() if k != big})  # all but that one
    first = [
        _kernel_rows(np.asarray(state[big], np.float32), _channels(weights)),
        np.asarray(state[f"{FIRST_DENSE}.bias"], np.float32),
    ]
    return {**_features(weights), FIRST_DENSE: first, **weights}


def from_keras(weights: Mapping[str, Sequence[np.ndarray]]) -> State:
    """The exact inverse of `to_keras`."""
    kernel, bias = weights[FIRST_DENSE]
    first = {
        f"{FIRST_DENSE}.weight": _weight_columns(np.asarray(kernel), _channels(weights)),
        f"{FIRST_DENSE}.bias": np.asarray(bias),
    }
    state = named_from_keras({k: v for k, v in weights.items() if k != FIRST_DENSE})
    return {**_features(state), **first, **state}  # any layer's [] passed over, as there


def _features(named: Mapping[str, Any]) -> dict[str, Any]:
    """The "features." entries, first: so the classifier's follow them, in torch's order."""
    return {k: v for k, v in named.items() if k.startswith("features.")}


def layout(cfg: Config, num_classes: int, hidden: int = HIDDEN) -> dict[str, tuple[int, ...]]:
    """torchvision's state_dict for `VGG(make_layers(cfg))`: every key and its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    channels, i = 3, 0
    for v in cfg:
        if v == "M":
            i += 1
            continue
        shapes[f"features.{i}.weight"] = (int(v), channels, 3, 3)
        shapes[f"features.{i}.bias"] = (int(v),)
        channels, i = int(v), i + 2
    for index, (cout, cin) in enumerate(
        ((hidden, channels * POOLED**2), (hidden, hidden), (num_classes, hidden))
    ):
        shapes[f"classifier.{3 * index}.weight"] = (cout, cin)
        shapes[f"classifier.{3 * index}.bias"] = (cout,)
    return shapes


def matches(arch: str, state: Mapping[str, Any]) -> bool:
    """Whether `state` is torchvision's `arch` (any class count): every key and shape. vgg16_bn
    and the like have BatchNorm keys, so they are not taken."""
    if "classifier.6.weight" not in state:
        return False
    found = {key: tuple(getattr(value, "shape", ())) for key, value in state.items()}
    return found == layout(CFGS[arch], num_classes(state))


def num_classes(state: Mapping[str, Any]) -> int:
    return int(state["classifier.6.weight"].shape[0])


for _arch in CFGS:
    register(
        Replica(
            name=_arch,
            build=functools.partial(build, _arch),
            to_keras=to_keras,
            from_keras=from_keras,
            matches=functools.partial(matches, _arch),
            cam_layer=CAM_LAYER,
            num_classes=num_classes,
        )
    )
