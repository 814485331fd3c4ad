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

from .keras_resnet import named_from_keras, named_to_keras
from .replicas import KerasWeights, Replica, State, register

Config = Sequence[int | str]  # torchvision's make_layers config: out channels, or "M" (max-pool)
CFGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        "M",
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
    x = keras.layers.Flatten(name="flatten")(x)  # (H, W, C) order: see `_nhwc_columns`
    for index, units in ((0, hidden), (3, hidden)):
        x = keras.layers.Dense(units, name=f"classifier.{index}")(x)
        x = keras.layers.ReLU(name=f"classifier.{index + 1}")(x)
    outputs = keras.layers.Dense(num_classes, name="classifier.6")(x)
    return keras.Model(inputs, outputs, name=name)


# --- weights: numpy only ---


def _nhwc_columns(weight: np.ndarray, channels: int) -> np.ndarray:
    """The first Linear's (out, C·H·W) weight with its columns reordered to (H, W, C), the order
    in which Keras's Flatten lays out a channels-last map."""
    out, n = weight.shape
    side = math.isqrt(n // channels)
    return weight.reshape(out, channels, side, side).transpose(0, 2, 3, 1).reshape(out, n)


def _nchw_columns(weight: np.ndarray, channels: int) -> np.ndarray:
    """The inverse of `_nhwc_columns`."""
    out, n = weight.shape
    side = math.isqrt(n // channels)
    return weight.reshape(out, side, side, channels).transpose(0, 3, 1, 2).reshape(out, n)


def _last_conv(names: Sequence[str]) -> str:
    """The last "features.N" layer with weights: its output channels are the flattened map's."""
    return max((n for n in names if n.startswith("features.")), key=lambda n: int(n[9:]))


def to_keras(state: Mapping[str, np.ndarray]) -> KerasWeights:
    """torch arrays → Keras `set_weights` lists; the first Dense's rows follow NHWC flattening."""
    weights = named_to_keras(state)
    channels = int(weights[_last_conv(list(weights))][0].shape[-1])  # HWIO: O last
    first = np.asarray(state[f"{FIRST_DENSE}.weight"])
    weights[FIRST_DENSE][0] = np.ascontiguousarray(
        _nhwc_columns(first, channels).T, dtype=np.float32
    )
    return weights


def from_keras(weights: Mapping[str, Sequence[np.ndarray]]) -> State:
    """The exact inverse of `to_keras`."""
    state = named_from_keras(weights)
    channels = int(np.asarray(weights[_last_conv(list(weights))][0]).shape[-1])
    state[f"{FIRST_DENSE}.weight"] = np.ascontiguousarray(
        _nchw_columns(state[f"{FIRST_DENSE}.weight"], channels)
    )
    return state


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
