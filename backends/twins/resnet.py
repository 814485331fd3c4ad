"""torchvision's ResNet18/34/50/101/152 as a Keras functional model (channels-last), and its table.

keras.applications' ResNets are not these networks: they are v1 (stride on the 1×1 conv, conv
biases, BatchNorm ε 1.001e-5), torchvision's are v1.5 (stride on the 3×3 conv, no biases, ε 1e-5).
Every Keras layer that holds weights is named as the torchvision module it copies
("layer1.0.conv1", "layer1.0.downsample.1", "fc"), so the table maps one name to itself.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from . import blocks
from .initialization import Init
from .registry import Twin, register
from .table import Layer

ARCHS: dict[str, tuple[str, tuple[int, ...]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
EXPANSION = {"basic": 1, "bottleneck": 4}
PLANES = (64, 128, 256, 512)
EPSILON = 1e-5  # torch's BatchNorm2d default
SIZE = 224
CAM_LAYER = "layer4"  # what torch's Grad-CAM auto-detection picks (tests check)
# torchvision's ResNet: Kaiming-normal (fan_out) convs, and fc as torch's Linear leaves it.
INIT = Init(conv="fan_out", dense="default", dense_bias="default")


def convs(kind: str, planes: int, cin: int, stride: int) -> list[tuple[int, int, int, int]]:
    """A block's convolutions, (out, in, kernel, stride): v1.5 strides on the 3×3."""
    width = planes * EXPANSION[kind]
    if kind == "basic":
        return [(planes, cin, 3, stride), (planes, planes, 3, 1)]
    return [(planes, cin, 1, 1), (planes, planes, 3, stride), (width, planes, 1, 1)]


def table(kind: str, depths: Sequence[int], num_classes: int) -> list[Layer]:
    """Every layer that holds weights, in torchvision's state_dict order."""
    rows = [Layer("conv1", "conv1", "conv", (64, 3, 7, 7)), Layer("bn1", "bn1", "bn", (64,))]
    channels = 64
    for stage, (planes, count) in enumerate(zip(PLANES, depths, strict=True), start=1):
        width = planes * EXPANSION[kind]
        for b in range(count):
            name, stride = f"layer{stage}.{b}", 2 if stage > 1 and b == 0 else 1
            for i, (cout, cin, k, _) in enumerate(convs(kind, planes, channels, stride), 1):
                rows.append(Layer(f"{name}.conv{i}", f"{name}.conv{i}", "conv", (cout, cin, k, k)))
                rows.append(Layer(f"{name}.bn{i}", f"{name}.bn{i}", "bn", (cout,)))
            if stride != 1 or channels != width:  # torchvision's rule for a downsample branch
                down = f"{name}.downsample"
                rows.append(Layer(f"{down}.0", f"{down}.0", "conv", (width, channels, 1, 1)))
                rows.append(Layer(f"{down}.1", f"{down}.1", "bn", (width,)))
            channels = width
    return [*rows, Layer("fc", "fc", "dense", (num_classes, channels), bias=True)]


def build(arch: str, num_classes: int = 1000, size: int = SIZE) -> Any:
    """The Keras twin of torchvision's `models.<arch>(num_classes=...)`, logits out."""
    kind, depths = ARCHS[arch]
    return resnet(kind, depths, num_classes, size, name=arch)


def resnet(
    kind: str, depths: Sequence[int], num_classes: int, size: int = SIZE, name: str = "resnet"
) -> Any:
    """torchvision's `ResNet(BasicBlock or Bottleneck, depths, num_classes)` at size×size input.

    The input size is fixed because the stem's max-pool is laid out by the parity of its input
    (see `blocks.max_pool_like_torch`)."""
    import keras

    inputs = keras.Input((size, size, 3), name="input")
    x = blocks.conv(inputs, "conv1", 64, 7, 2, blocks.symmetric(3))
    x = blocks.relu(blocks.batchnorm(x, "bn1", EPSILON), "relu")
    x = blocks.max_pool_like_torch(x, "maxpool")
    for stage, (planes, count) in enumerate(zip(PLANES, depths, strict=True), start=1):
        for b in range(count):
            stride = 2 if stage > 1 and b == 0 else 1
            x = _block(x, kind, planes, stride, f"layer{stage}.{b}")
        x = keras.layers.Identity(name=f"layer{stage}")(x)  # torch's stage output, by its name
    outputs = blocks.head(x, num_classes, "avgpool", "fc", dropout=None)
    return keras.Model(inputs, outputs, name=name)


def _block(x: Any, kind: str, planes: int, stride: int, name: str) -> Any:
    """BasicBlock or Bottleneck, ReLU after the residual add. torch calls one `relu` module two
    or three times; here each call is its own ReLU layer."""
    import keras

    width = planes * EXPANSION[kind]
    shortcut = x
    if stride != 1 or x.shape[-1] != width:
        shortcut = blocks.conv(x, f"{name}.downsample.0", width, 1, stride)
        shortcut = blocks.batchnorm(shortcut, f"{name}.downsample.1", EPSILON)
    layers = convs(kind, planes, int(x.shape[-1]), stride)
    for i, (filters, _, kernel, s) in enumerate(layers, start=1):
        x = blocks.conv(x, f"{name}.conv{i}", filters, kernel, s, blocks.symmetric(kernel // 2))
        x = blocks.batchnorm(x, f"{name}.bn{i}", EPSILON)
        if i < len(layers):
            x = blocks.relu(x, f"{name}.relu{i}")
    x = keras.layers.Add(name=f"{name}.add")([x, shortcut])
    return blocks.relu(x, f"{name}.relu{len(layers)}")


for _arch, (_kind, _depths) in ARCHS.items():
    register(
        Twin(
            name=_arch,
            family="resnet",
            layers=functools.partial(table, _kind, _depths),
            head="fc.weight",
            build=functools.partial(build, _arch),
            cam_layer=CAM_LAYER,
            init=INIT,
        )
    )
