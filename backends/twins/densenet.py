"""torchvision's DenseNet121/169/201 and keras.applications' DenseNets: the same function, so the
Keras twin is Keras's own application, holding torch's weights with torch's BatchNorm ε (1e-5;
Keras's is 1.001e-5) and its first max-pool padded with −inf as torch pads. Its table names each
layer both ways; and a DenseNet file says which DenseNet it is, or what else it looks like.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..base import BackendError
from .initialization import Init
from .registry import Application, Twin, register
from .table import Layer, State

BLOCKS = {
    "densenet121": (6, 12, 24, 16),
    "densenet169": (6, 12, 32, 32),
    "densenet201": (6, 12, 48, 32),
}
BUILDERS = {arch: arch.replace("densenet", "DenseNet") for arch in BLOCKS}  # keras.applications
DEFAULT = "densenet201"
GROWTH, BOTTLENECK, STEM = 32, 4, 64
EPSILON = 1e-5  # BatchNorm2d's default, in every torchvision DenseNet
# torchvision's DenseNet: Kaiming-normal (fan_in) convs, the classifier's bias zero.
INIT = Init(conv="fan_in", dense="default", dense_bias="zero")
_DENSE_LAYER = re.compile(r"features\.denseblock(\d)\.denselayer(\d+)\.")


# Other torchvision (and timm) architectures, told apart by key prefixes that all must occur,
# so that a wrong file is named for what it is. The first match wins: specific before general.
LOOKALIKES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("a ResNet", ("layer1.0.conv1.weight",)),
    ("a Vision Transformer", ("conv_proj.weight",)),
    ("an Inception v3", ("Conv2d_1a_3x3.",)),
    ("a GoogLeNet", ("inception3a.",)),
    ("a RegNet", ("trunk_output.",)),
    ("a ShuffleNet", ("stage2.0.",)),
    ("a SqueezeNet", ("features.3.squeeze.",)),
    ("a VGG", ("features.0.weight", "classifier.0.weight")),
    ("an AlexNet", ("features.0.weight", "classifier.1.weight")),
    ("a MobileNetV2", ("features.1.conv.0.0.weight",)),
    ("a ConvNeXt", ("features.1.0.layer_scale",)),
    ("an MNASNet", ("layers.0.weight", "classifier.1.weight")),
    ("a Swin Transformer", ("features.0.0.weight", "head.weight")),
    ("a MobileNet/EfficientNet-family", ("features.0.0.weight",)),
)


def architecture_of(state: Mapping[str, object], source: str) -> str:
    """Tell DenseNet121/169/201 apart by their dense layers per block; name anything else."""
    config = dense_layers_per_block(state)
    for name, blocks in BLOCKS.items():
        if config == blocks and "classifier.weight" in state:
            return name
    raise BackendError(
        f"{source}: not a torchvision DenseNet121/169/201 state_dict; {looks_like(state)}"
    )


def dense_layers_per_block(state: Mapping[str, object]) -> tuple[int, ...]:
    layers: dict[int, set[int]] = {}
    for key in state:
        match = _DENSE_LAYER.match(key)
        if match:
            layers.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    return tuple(len(layers.get(block, ())) for block in (1, 2, 3, 4))


def looks_like(state: Mapping[str, object]) -> str:
    """What a state_dict that is not a known DenseNet seems to be, in words for an error line."""
    config = dense_layers_per_block(state)
    if config in BLOCKS.values():
        return "it has no classifier.weight"
    if any(config):
        return f"it looks like a DenseNet with dense layers per block {config}"
    keys = list(state)
    if not keys:
        return "it is empty"
    for name, prefixes in LOOKALIKES:
        if all(any(key.startswith(prefix) for key in keys) for prefix in prefixes):
            return f"it looks like {name} state_dict"
    return f"it is an unknown architecture (first keys: {', '.join(keys[:3])})"


def table(arch: str, num_classes: int = 1000) -> list[Layer]:
    """Every layer that holds weights, in torchvision's state_dict order, with its Keras name."""
    rows = [Layer("features.conv0", "conv1_conv", "conv", (STEM, 3, 7, 7))]
    rows.append(Layer("features.norm0", "conv1_bn", "bn", (STEM,)))
    channels, width = STEM, BOTTLENECK * GROWTH
    for b, count in enumerate(BLOCKS[arch], start=1):
        for i in range(1, count + 1):
            t, k = f"features.denseblock{b}.denselayer{i}", f"conv{b + 1}_block{i}"
            rows.append(Layer(f"{t}.norm1", f"{k}_0_bn", "bn", (channels,)))
            rows.append(Layer(f"{t}.conv1", f"{k}_1_conv", "conv", (width, channels, 1, 1)))
            rows.append(Layer(f"{t}.norm2", f"{k}_1_bn", "bn", (width,)))
            rows.append(Layer(f"{t}.conv2", f"{k}_2_conv", "conv", (GROWTH, width, 3, 3)))
            channels += GROWTH
        if b < len(BLOCKS[arch]):
            t, k, half = f"features.transition{b}", f"pool{b + 1}", channels // 2
            rows.append(Layer(f"{t}.norm", f"{k}_bn", "bn", (channels,)))
            rows.append(Layer(f"{t}.conv", f"{k}_conv", "conv", (half, channels, 1, 1)))
            channels = half
    rows.append(Layer("features.norm5", "bn", "bn", (channels,)))
    return [*rows, Layer("classifier", "predictions", "dense", (num_classes, channels), bias=True)]


def random_weights(arch: str, num_classes: int, seed: int) -> State:
    """torchvision's initialisation, seeded in numpy: both backends get the same network."""
    return TWINS[arch].random_state(num_classes, seed)


def application(arch: str, num_classes: int = 1000, weights: str | None = None) -> Any:
    """keras.applications' DenseNet with logits out and torch's max-pool padding: with Keras's
    own ImageNet weights ("imagenet"), or untrained, to hold Keras's numbers from a file
    ("keras") or torch's (None), which take torch's BatchNorm ε (it moves float64 logits by
    ~4e-7)."""
    import keras

    build = getattr(keras.applications, BUILDERS[arch])
    if weights == "imagenet":
        model = build(weights="imagenet", classifier_activation=None)
    else:
        model = build(weights=None, classes=num_classes, classifier_activation=None)
    if weights is None:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.epsilon = EPSILON
    pool_like_torch(model)
    return model


def pool_like_torch(model: Any) -> None:
    """Pad before `pool1` with −inf, as torch's MaxPool2d(padding=1) does, instead of Keras's 0.

    The pooled input is a ReLU output, so a window of zeros ties with zero padding and Keras sends
    its gradient into the pad; with −inf the border gradient matches torch's.
    """
    import keras

    names = [layer.name for layer in model.layers]
    if "pool1" not in names or names.index("pool1") < 2:
        return
    before, pad = model.layers[names.index("pool1") - 2 : names.index("pool1")]
    after_relu = getattr(getattr(before, "activation", None), "__name__", None) == "relu"
    if isinstance(pad, keras.layers.ZeroPadding2D) and after_relu:  # inputs ≥ 0: forward unchanged
        pad.call = functools.partial(_pad_with_minus_inf, padding=pad.padding)


def _pad_with_minus_inf(inputs: Any, padding: tuple[tuple[int, int], tuple[int, int]]) -> Any:
    import keras

    (top, bottom), (left, right) = padding
    widths = [[0, 0], [top, bottom], [left, right], [0, 0]]
    return keras.ops.pad(inputs, widths, constant_values=-np.inf)


TWINS = {
    arch: register(
        Twin(
            name=arch,
            family="densenet",
            layers=functools.partial(table, arch),
            head="classifier.weight",
            build=functools.partial(application, arch),
            cam_layer=f"conv5_block{BLOCKS[arch][-1]}_concat",  # torch's features.denseblock4
            init=INIT,
            title=f"Keras {BUILDERS[arch]}",
            application=Application(
                builder=BUILDERS[arch],
                layers=functools.partial(table, arch),
                normalize="imagenet",
                build=functools.partial(application, arch),
            ),
            member_of=architecture_of,
        )
    )
    for arch in BLOCKS
}
