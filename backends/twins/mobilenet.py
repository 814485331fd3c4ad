"""torchvision's MobileNetV2 as a Keras functional network that computes the same function, and
its table.

Why not `keras.applications.MobileNetV2`: it pads stride-2 convolutions asymmetrically and uses
BatchNorm ε 1e-3, so torchvision's weights would give another function. Here every padding is
torchvision's (backends/twins/blocks.py) and ε is 1e-5.

Every Keras layer is named after the torch module it mirrors ("features.2.conv.0.0" →
"features_2_conv_0_0"), so a difference between the two is easy to trace.
"""

from __future__ import annotations

from typing import Any

from ..base import Preprocessing
from . import blocks
from .initialization import Init
from .registry import Twin, register
from .table import Layer

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
# torchvision's MobileNetV2: Kaiming-normal (fan_out) convs, the classifier N(0, 0.01), zero bias.
INIT = Init(conv="fan_out", dense="normal", dense_bias="zero")
# Its DEFAULT weights (IMAGENET1K_V2) are evaluated at 224 of a 232 resize.
PREPROCESSING = Preprocessing(size=224, resize=232, name="imagenet")


def keras_name(prefix: str) -> str:
    """A torch module path as a Keras layer name: dots are not allowed in every Keras version."""
    return prefix.replace(".", "_")


def inverted_residuals() -> list[tuple[int, int, int, int, int]]:
    """(index in `features`, in channels, out channels, stride, expand ratio) per block."""
    found, index, channels = [], 1, STEM
    for t, c, n, s in SETTING:
        for i in range(n):
            found.append((index, channels, c, s if i == 0 else 1, t))
            index, channels = index + 1, c
    return found


def table(num_classes: int = 1000) -> list[Layer]:
    """Every layer that holds weights, in torchvision's state_dict order."""

    def row(prefix: str, kind: str, shape: tuple[int, ...]) -> Layer:
        return Layer(prefix, keras_name(prefix), kind, shape)

    rows = [row("features.0.0", "conv", (STEM, 3, 3, 3)), row("features.0.1", "bn", (STEM,))]
    last = STEM
    for index, cin, cout, _, t in inverted_residuals():
        prefix, hidden, j = f"features.{index}.conv", cin * t, 0
        if t != 1:
            rows += [row(f"{prefix}.0.0", "conv", (hidden, cin, 1, 1))]
            rows += [row(f"{prefix}.0.1", "bn", (hidden,))]
            j = 1
        rows += [row(f"{prefix}.{j}.0", "depthwise", (hidden, 1, 3, 3))]
        rows += [row(f"{prefix}.{j}.1", "bn", (hidden,))]
        rows += [row(f"{prefix}.{j + 1}", "conv", (cout, hidden, 1, 1))]
        rows += [row(f"{prefix}.{j + 2}", "bn", (cout,))]
        last = cout
    rows += [row(f"features.{HEAD}.0", "conv", (LAST, last, 1, 1))]
    rows += [row(f"features.{HEAD}.1", "bn", (LAST,))]
    return [*rows, Layer("classifier.1", "classifier_1", "dense", (num_classes, LAST), bias=True)]


def build(num_classes: int = 1000, size: int | None = 224) -> Any:
    """The Keras network, channels-last, logits out; `size` None takes any square size."""
    import keras

    def bn_relu6(x: Any, name: str, relu: str) -> Any:
        return blocks.relu(blocks.batchnorm(x, name, EPS), relu, max_value=6.0)

    x = inputs = keras.Input((size, size, 3), name="input")
    around = blocks.symmetric(1)  # torchvision's 3×3 padding: 1 on every side, at any stride
    x = bn_relu6(blocks.conv(x, "features_0_0", STEM, 3, 2, around), "features_0_1", "features_0_2")
    for index, cin, cout, stride, t in inverted_residuals():
        prefix, block_input, j = f"features_{index}_conv", x, 0
        if t != 1:
            x = blocks.conv(x, f"{prefix}_0_0", cin * t, 1)
            x = bn_relu6(x, f"{prefix}_0_1", f"{prefix}_0_2")
            j = 1
        x = blocks.depthwise(x, f"{prefix}_{j}_0", 3, stride, around)
        x = bn_relu6(x, f"{prefix}_{j}_1", f"{prefix}_{j}_2")
        x = blocks.conv(x, f"{prefix}_{j + 1}", cout, 1)
        x = blocks.batchnorm(x, f"{prefix}_{j + 2}", EPS)
        if stride == 1 and cin == cout:  # torchvision's use_res_connect
            x = keras.layers.Add(name=f"features_{index}_add")([block_input, x])
    x = blocks.conv(x, f"features_{HEAD}_0", LAST, 1)
    x = bn_relu6(x, f"features_{HEAD}_1", CAM_LAYER)
    logits = blocks.head(x, num_classes, "avgpool", "classifier_1", ("classifier_0", DROPOUT))
    return keras.Model(inputs, logits, name=NAME)


TWIN = register(
    Twin(
        name=NAME,
        family="mobilenet",
        layers=table,
        head="classifier.1.weight",
        build=build,
        cam_layer=CAM_LAYER,
        init=INIT,
        preprocessing=PREPROCESSING,
    )
)
