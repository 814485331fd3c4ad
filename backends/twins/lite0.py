"""EfficientNet-Lite0 of the `efficientnet-lite-pytorch` package as a Keras functional network that
computes the same function, and its weights in both layouts.

The package pads every convolution TF-style with a STATIC padding computed once for its image size
(224), Conv2dStaticSamePadding: total = max((⌈i/s⌉−1)·s + k − i, 0), left total//2, right the rest.
At 224 that is exactly Keras's padding="same"; but the torch network keeps those pads whatever the
input size, so they are written here as explicit ZeroPadding2D layers from the same formula, and the
twin agrees at any size. BatchNorm ε is the package's 1e-3; no squeeze-excitation; ReLU6 throughout.

Keras layers are named after the package's modules ("_blocks.3._bn1" → "blocks_3_bn1"). The
package runs one shared ReLU6 module 33 times, so each Keras ReLU6 is named after the BatchNorm it
follows ("blocks_3_bn1_relu6"); torch's Grad-CAM layer, `_bn1`, is then the distinct layer "bn1":
the head BatchNorm's output, before the final ReLU6.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from ..base import Preprocessing
from .mobilenet import (
    Layer,
    Pads,
    batchnorm,
    conv,
    depthwise,
    head,
    relu6,
    table_functions,
)
from .registry import Replica, register

NAME = "efficientnet_lite0"
# The official Lite preprocessing, (pixels − 127) / 128 at 224 of 256, as backends/lite0_torch.py.
LITE = Preprocessing(
    224, 256, "bilinear", (127 / 255,) * 3, (128 / 255,) * 3, False, "lite: (pixels - 127) / 128"
)
# The package's efficientnet_lite() block strings, decoded: repeats, kernel, first stride,
# expand ratio, in channels, out channels (width and depth coefficients are 1.0 for Lite0).
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80))
STAGES += ((3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
STEM, LAST = 32, 1280  # fix_head_stem: not scaled
EPS = 1e-3  # global_params.batch_norm_epsilon
DROPOUT = 0.2
IMAGE_SIZE = 224  # the package's image_size, from which it fixes every padding
CAM_LAYER = "bn1"  # torch's `_bn1`: the head BatchNorm, before the shared ReLU6 runs on it


def keras_name(prefix: str) -> str:
    """ "_blocks.3._bn1" → "blocks_3_bn1"."""
    return "_".join(part.lstrip("_") for part in prefix.split("."))


def same_pads(size: int, kernel: int, stride: int) -> Pads:
    """Conv2dStaticSamePadding's padding for an input of `size` (square)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    side = (total // 2, total - total // 2)
    return (side, side)


def blocks() -> Iterator[tuple[int, int, int, int, int, int, bool]]:
    """(index, kernel, stride, expand ratio, in, out, residual) per MBConv block. The package adds
    the skip when `stride == 1` and in == out; a stage's first block keeps its stride as a list
    ([1] ≠ 1), so only the repeats ever add it (Lite0's first blocks all change width anyway)."""
    index = 0
    for repeats, kernel, stride, expand, cin, cout in STAGES:
        for i in range(repeats):
            first = i == 0
            source = cin if first else cout
            yield index, kernel, stride if first else 1, expand, source, cout, not first
            index += 1


def layers(num_classes: int = 1000) -> Iterator[Layer]:
    """Every layer that holds weights, in network order."""

    def entry(prefix: str, kind: str, shape: tuple[int, ...]) -> Layer:
        return prefix, keras_name(prefix), kind, shape

    yield entry("_conv_stem", "conv", (STEM, 3, 3, 3))
    yield entry("_bn0", "bn", (STEM,))
    last = STEM
    for index, kernel, _, expand, cin, cout, _ in blocks():
        prefix, hidden = f"_blocks.{index}", cin * expand
        if expand != 1:
            yield entry(f"{prefix}._expand_conv", "conv", (hidden, cin, 1, 1))
            yield entry(f"{prefix}._bn0", "bn", (hidden,))
        yield entry(f"{prefix}._depthwise_conv", "depthwise", (hidden, 1, kernel, kernel))
        yield entry(f"{prefix}._bn1", "bn", (hidden,))
        yield entry(f"{prefix}._project_conv", "conv", (cout, hidden, 1, 1))
        yield entry(f"{prefix}._bn2", "bn", (cout,))
        last = cout
    yield entry("_conv_head", "conv", (LAST, last, 1, 1))
    yield entry("_bn1", "bn", (LAST,))
    yield entry("_fc", "dense", (num_classes, LAST))


def build(num_classes: int = 1000, size: int | None = IMAGE_SIZE) -> Any:
    """The Keras network, channels-last, logits out. Its pads are the package's for 224, at any
    `size` (None: any square size), as the torch network's are."""
    import keras

    def bn_relu6(x: Any, name: str) -> Any:
        return relu6(batchnorm(x, name, EPS), f"{name}_relu6")

    x = inputs = keras.Input((size, size, 3), name="input")
    x = bn_relu6(conv(x, "conv_stem", STEM, 3, 2, same_pads(IMAGE_SIZE, 3, 2)), "bn0")
    grid = math.ceil(IMAGE_SIZE / 2)  # the size the package's static pads were computed for
    for index, kernel, stride, expand, cin, cout, residual in blocks():
        prefix, block_input = f"blocks_{index}", x
        if expand != 1:  # 1×1 convs: the static "same" padding is zero
            x = bn_relu6(conv(x, f"{prefix}_expand_conv", cin * expand, 1), f"{prefix}_bn0")
        pads = same_pads(grid, kernel, stride)
        x = bn_relu6(
            depthwise(x, f"{prefix}_depthwise_conv", kernel, stride, pads), f"{prefix}_bn1"
        )
        x = batchnorm(conv(x, f"{prefix}_project_conv", cout, 1), f"{prefix}_bn2", EPS)
        if residual:  # drop_connect is the identity in inference
            x = keras.layers.Add(name=f"{prefix}_add")([block_input, x])
        grid = math.ceil(grid / stride)
    x = conv(x, "conv_head", LAST, 1)
    x = relu6(batchnorm(x, CAM_LAYER, EPS), f"{CAM_LAYER}_relu6")
    logits = head(x, num_classes, DROPOUT, ("avg_pooling", "dropout", "fc"))
    return keras.Model(inputs, logits, name=NAME)


# The package's EfficientNet-Lite0, any class count; the round trip is exact.
to_keras, from_keras, matches, num_classes = table_functions(layers, "_fc.weight", "fc")

REPLICA = register(
    Replica(
        name=NAME,
        build=build,
        to_keras=to_keras,
        from_keras=from_keras,
        matches=matches,
        cam_layer=CAM_LAYER,
        num_classes=num_classes,
        preprocessing=LITE,
    )
)
