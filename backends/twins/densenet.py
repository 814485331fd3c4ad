"""DenseNet121/169/201 as both frameworks lay them out, in numpy: names, shapes, conversion, init.

This is the one place that knows torchvision's and Keras's DenseNets compute the same function, so
weights can move between them and a seeded `--weights random` is the same network in both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import numpy as np

from ..base import BackendError

BLOCKS = {
    "densenet121": (6, 12, 24, 16),
    "densenet169": (6, 12, 32, 32),
    "densenet201": (6, 12, 48, 32),
}
DEFAULT = "densenet201"
GROWTH, BOTTLENECK, STEM = 32, 4, 64
_DENSE_LAYER = re.compile(r"features\.denseblock(\d)\.denselayer(\d+)\.")

Weights = dict[str, np.ndarray]  # torchvision state_dict names → arrays
# gbp sanity's stages, from the top: torchvision state_dict key prefixes, the same in both
# backends (the TF twin's weights are in torchvision's layout too).
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("classifier", ("classifier.",)),
    ("block4", ("features.denseblock4.", "features.norm5.")),
    ("transition3", ("features.transition3.",)),
    ("block3", ("features.denseblock3.",)),
    ("transition2", ("features.transition2.",)),
    ("block2", ("features.denseblock2.",)),
    ("transition1", ("features.transition1.",)),
    ("block1", ("features.denseblock1.",)),
    ("stem", ("features.conv0.", "features.norm0.")),
]


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


def layers(arch: str) -> Iterator[tuple[str, str, str]]:
    """(torchvision prefix, Keras layer name, kind) for every layer that holds weights."""
    yield "features.conv0", "conv1_conv", "conv"
    yield "features.norm0", "conv1_bn", "bn"
    for b, count in enumerate(BLOCKS[arch], start=1):
        for i in range(1, count + 1):
            torch_name, keras_name = (
                f"features.denseblock{b}.denselayer{i}",
                f"conv{b + 1}_block{i}",
            )
            yield f"{torch_name}.norm1", f"{keras_name}_0_bn", "bn"
            yield f"{torch_name}.conv1", f"{keras_name}_1_conv", "conv"
            yield f"{torch_name}.norm2", f"{keras_name}_1_bn", "bn"
            yield f"{torch_name}.conv2", f"{keras_name}_2_conv", "conv"
        if b < len(BLOCKS[arch]):
            yield f"features.transition{b}.norm", f"pool{b + 1}_bn", "bn"
            yield f"features.transition{b}.conv", f"pool{b + 1}_conv", "conv"
    yield "features.norm5", "bn", "bn"
    yield "classifier", "predictions", "dense"


_BN = ("weight", "bias", "running_mean", "running_var")


def to_keras(state: Mapping[str, np.ndarray], arch: str) -> dict[str, list[np.ndarray]]:
    """torchvision arrays → Keras `layer.set_weights` lists (OIHW→HWIO, dense transposed)."""
    out: dict[str, list[np.ndarray]] = {}
    for prefix, name, kind in layers(arch):
        if kind == "conv":
            out[name] = [np.transpose(state[f"{prefix}.weight"], (2, 3, 1, 0))]
        elif kind == "bn":
            out[name] = [state[f"{prefix}.{p}"] for p in _BN]
        else:
            out[name] = [np.transpose(state[f"{prefix}.weight"]), state[f"{prefix}.bias"]]
    return {k: [np.ascontiguousarray(a, dtype=np.float32) for a in v] for k, v in out.items()}


def from_keras(weights: Mapping[str, list[np.ndarray]], arch: str) -> Weights:
    """Keras `layer.get_weights` lists → a torchvision state_dict of arrays; exact inverse."""
    state: Weights = {}
    for prefix, name, kind in layers(arch):
        arrays = weights[name]
        if kind == "conv":
            state[f"{prefix}.weight"] = np.transpose(arrays[0], (3, 2, 0, 1))
        elif kind == "bn":
            state.update({f"{prefix}.{p}": a for p, a in zip(_BN, arrays, strict=True)})
            state[f"{prefix}.num_batches_tracked"] = np.zeros((), np.int64)
        else:
            state[f"{prefix}.weight"] = np.transpose(arrays[0])
            state[f"{prefix}.bias"] = arrays[1]
    return {k: np.asarray(v, order="C") for k, v in state.items()}


def shapes(arch: str, num_classes: int) -> Iterator[tuple[str, str, tuple[int, ...]]]:
    """(torchvision prefix, kind, weight shape) in network order."""
    channels = STEM
    yield "features.conv0", "conv", (STEM, 3, 7, 7)
    yield "features.norm0", "bn", (STEM,)
    for b, count in enumerate(BLOCKS[arch], start=1):
        for i in range(1, count + 1):
            prefix = f"features.denseblock{b}.denselayer{i}"
            width = BOTTLENECK * GROWTH
            yield f"{prefix}.norm1", "bn", (channels,)
            yield f"{prefix}.conv1", "conv", (width, channels, 1, 1)
            yield f"{prefix}.norm2", "bn", (width,)
            yield f"{prefix}.conv2", "conv", (GROWTH, width, 3, 3)
            channels += GROWTH
        if b < len(BLOCKS[arch]):
            yield f"features.transition{b}.norm", "bn", (channels,)
            yield f"features.transition{b}.conv", "conv", (channels // 2, channels, 1, 1)
            channels //= 2
    yield "features.norm5", "bn", (channels,)
    yield "classifier", "dense", (num_classes, channels)


def random_weights(arch: str, num_classes: int, seed: int) -> Weights:
    """torchvision's initialisation (Kaiming-normal convs, unit BatchNorm, zero biases), seeded in
    numpy so that both backends get bit-identical random networks."""
    rng = np.random.default_rng(seed)
    state: Weights = {}
    for prefix, kind, shape in shapes(arch, num_classes):
        if kind == "conv":
            fan_in = int(np.prod(shape[1:]))
            state[f"{prefix}.weight"] = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif kind == "bn":
            n = shape[0]
            state.update(
                {
                    f"{prefix}.weight": np.ones(n),
                    f"{prefix}.bias": np.zeros(n),
                    f"{prefix}.running_mean": np.zeros(n),
                    f"{prefix}.running_var": np.ones(n),
                }
            )
            state[f"{prefix}.num_batches_tracked"] = np.zeros((), np.int64)
        else:
            bound = 1.0 / np.sqrt(shape[1])
            state[f"{prefix}.weight"] = rng.uniform(-bound, bound, shape)
            state[f"{prefix}.bias"] = np.zeros(shape[0])
    return {k: v if v.dtype == np.int64 else v.astype(np.float32) for k, v in state.items()}
