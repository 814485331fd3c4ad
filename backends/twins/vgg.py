"""torchvision's VGG16/19 (no BatchNorm) as a Keras functional model (channels-last), its tables.

The same layers as keras.applications' VGG16/19, which is this twin's `Application`: TensorFlow
explains Keras's own ImageNet weights (caffe preprocessing) in it. So the network has two tables:
the twin's, whose layers are named as torchvision's modules ("features.0", "classifier.0"; the
Dropouts, identities in inference, are left out), and the application's ("block1_conv1", "fc1").
In both, torch flattens the last feature map as (C, H, W) and Keras as (H, W, C), so the first
Linear's rows are reordered on the way over (and back).

torch's AdaptiveAvgPool2d((7, 7)) is reproduced where the feature map's side is a multiple of 7
(input 224, 448, …): the identity at 7, AveragePooling2D(side / 7) above. Other sizes are refused.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from . import blocks
from .initialization import Init
from .registry import Application, Twin, register
from .table import Layer

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
APPLICATION_HEAD = ("fc1", "fc2", "predictions")  # keras.applications' names of the Linears
# torchvision's VGG: Kaiming-normal (fan_out) convs with zero biases, Linears N(0, 0.01).
INIT = Init(conv="fan_out", dense="normal", dense_bias="zero")


def table(
    cfg: Config, num_classes: int, hidden: int = HIDDEN, application: bool = False
) -> list[Layer]:
    """Every layer that holds weights, in torchvision's state_dict order, with the Keras names
    of the twin, or (`application`) of keras.applications' VGG."""
    rows, channels, index, group, conv = [], 3, 0, 1, 1
    for v in cfg:
        if v == "M":
            index, group, conv = index + 1, group + 1, 1
            continue
        name = f"block{group}_conv{conv}" if application else f"features.{index}"
        shape = (int(v), channels, 3, 3)
        rows.append(Layer(f"features.{index}", name, "conv", shape, bias=True))
        channels, index, conv = int(v), index + 2, conv + 1
    sizes = ((hidden, channels * POOLED**2), (hidden, hidden), (num_classes, hidden))
    for i, shape in enumerate(sizes):
        name = APPLICATION_HEAD[i] if application else f"classifier.{3 * i}"
        flat = channels if i == 0 else 0  # the first Linear takes the flattened map
        rows.append(Layer(f"classifier.{3 * i}", name, "dense", shape, True, flat))
    return rows


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
        else:  # 3×3, stride 1, pad 1
            x = blocks.conv(x, f"features.{i}", int(v), 3, 1, blocks.symmetric(1), bias=True)
            x = blocks.relu(x, f"features.{i + 1}")
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
    x = keras.layers.Flatten(name="flatten")(x)  # (H, W, C) order: the table reorders rows
    for index in (0, 3):
        x = keras.layers.Dense(hidden, name=f"classifier.{index}")(x)
        x = blocks.relu(x, f"classifier.{index + 1}")
    outputs = keras.layers.Dense(num_classes, name="classifier.6")(x)
    return keras.Model(inputs, outputs, name=name)


def application(builder: str, num_classes: int = 1000, weights: str | None = None) -> Any:
    """keras.applications' VGG with logits out: with Keras's own ImageNet weights ("imagenet"),
    or untrained, to hold weights from a file or a seed."""
    import keras

    build_vgg = getattr(keras.applications, builder)
    if weights == "imagenet":
        return build_vgg(weights="imagenet", classifier_activation=None)
    return build_vgg(weights=None, classes=num_classes, classifier_activation=None)


for _arch, _cfg in CFGS.items():
    _builder = _arch.upper()
    register(
        Twin(
            name=_arch,
            family="vgg",
            layers=functools.partial(table, _cfg),
            head="classifier.6.weight",
            build=functools.partial(build, _arch),
            cam_layer=CAM_LAYER,
            init=INIT,
            application=Application(
                builder=_builder,
                layers=functools.partial(table, _cfg, application=True),
                normalize="caffe",
                build=functools.partial(application, _builder),
            ),
        )
    )
