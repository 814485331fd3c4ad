"""torchvision's ResNet18/34/50/101/152 as a Keras functional model (channels-last), and weights.

keras.applications' ResNets are not these networks: they are v1 (stride on the 1×1 conv, conv
biases, BatchNorm ε 1.001e-5), torchvision's are v1.5 (stride on the 3×3 conv, no biases, ε 1e-5).
Every Keras layer that holds weights is named as the torchvision module it copies
("layer1.0.conv1", "layer1.0.downsample.1", "fc"), so the weights map one prefix to one layer.

Only numpy at import: Keras is imported when a model is built, so the torch side can recognise
a state_dict without loading TensorFlow. The models use built-in layers only, so a saved one loads
in Keras's safe mode with no custom objects.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .registry import BN, KerasWeights, Replica, State, conv_from_keras, conv_to_keras, register

ARCHS: dict[str, tuple[str, tuple[int, ...]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
EXPANSION = {"basic": 1, "bottleneck": 4}
PLANES = (64, 128, 256, 512)
EPSILON = 1e-5  # torch's BatchNorm2d default; Keras's own is 1e-3
SIZE = 224
CAM_LAYER = "layer4"  # what torch's Grad-CAM auto-detection picks (tests check)
_BLOCK = re.compile(r"layer([1-4])\.(\d+)\.")


def build(arch: str, num_classes: int = 1000, size: int = SIZE) -> Any:
    """The Keras twin of torchvision's `models.<arch>(num_classes=...)`, logits out."""
    kind, layers = ARCHS[arch]
    return resnet(kind, layers, num_classes, size, name=arch)


def resnet(
    kind: str, layers: Sequence[int], num_classes: int, size: int = SIZE, name: str = "resnet"
) -> Any:
    """torchvision's `ResNet(BasicBlock or Bottleneck, layers, num_classes)` at size×size input.

    The input size is fixed because the stem's max-pool is laid out by the parity of its input
    (see `_max_pool_like_torch`)."""
    import keras

    inputs = keras.Input((size, size, 3), name="input")
    x = _conv(inputs, 64, 7, 2, "conv1")
    x = keras.layers.ReLU(name="relu")(_bn(x, "bn1"))
    x = _max_pool_like_torch(x, "maxpool")
    for stage, (planes, blocks) in enumerate(zip(PLANES, layers, strict=True), start=1):
        for b in range(blocks):
            stride = 2 if stage > 1 and b == 0 else 1
            x = _block(x, kind, planes, stride, f"layer{stage}.{b}")
        x = keras.layers.Identity(name=f"layer{stage}")(x)  # torch's stage output, by its name
    x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = keras.layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=name)


def _conv(x: Any, filters: int, kernel: int, stride: int, name: str) -> Any:
    """torch's Conv2d(padding=kernel // 2, bias=False): explicit symmetric zero padding, then
    "valid". Keras's "same" would put a stride-2 conv's odd pad at the bottom/right only."""
    import keras

    if kernel > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}.pad")(x)
    return keras.layers.Conv2D(filters, kernel, strides=stride, use_bias=False, name=name)(x)


def _bn(x: Any, name: str) -> Any:
    import keras

    return keras.layers.BatchNormalization(epsilon=EPSILON, name=name)(x)


def _block(x: Any, kind: str, planes: int, stride: int, name: str) -> Any:
    """BasicBlock or Bottleneck (v1.5: stride on the 3×3), ReLU after the residual add. torch
    calls one `relu` module two or three times; here each call is its own ReLU layer."""
    import keras

    width = planes * EXPANSION[kind]
    shortcut = x
    if stride != 1 or x.shape[-1] != width:  # torchvision's rule for a downsample branch
        shortcut = _bn(_conv(x, width, 1, stride, f"{name}.downsample.0"), f"{name}.downsample.1")
    if kind == "basic":
        convs = ((planes, 3, stride), (planes, 3, 1))
    else:
        convs = ((planes, 1, 1), (planes, 3, stride), (width, 1, 1))
    for i, (filters, kernel, s) in enumerate(convs, start=1):
        x = _bn(_conv(x, filters, kernel, s, f"{name}.conv{i}"), f"{name}.bn{i}")
        if i < len(convs):
            x = keras.layers.ReLU(name=f"{name}.relu{i}")(x)
    x = keras.layers.Add(name=f"{name}.add")([x, shortcut])
    return keras.layers.ReLU(name=f"{name}.relu{len(convs)}")(x)


def _max_pool_like_torch(x: Any, name: str) -> Any:
    """torch's MaxPool2d(3, stride=2, padding=1), which pads with −inf.

    Zero padding would tie with the ReLU zeros it follows and take their gradient (DeconvNet's
    border). TF's "same" max-pool ignores its padding, as −inf would, but for an even side it
    pads bottom/right only, where torch pads 1 on each side. So an even side gets one zero row
    (column) appended: "same" then pads 1 on each side, and the one extra output row, the only
    window that sees the zero row, is cropped away, gradient and all."""
    import keras

    extra = tuple(1 - int(n) % 2 for n in x.shape[1:3])
    if any(extra):
        x = keras.layers.ZeroPadding2D(((0, extra[0]), (0, extra[1])), name=f"{name}.pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=name)(x)
    if any(extra):
        x = keras.layers.Cropping2D(((0, extra[0]), (0, extra[1])), name=f"{name}.crop")(x)
    return x


# --- weights: numpy only ---


def layout(kind: str, layers: Sequence[int], num_classes: int) -> dict[str, tuple[int, ...]]:
    """torchvision's state_dict for this ResNet: every key and its shape, in order."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(prefix: str, cout: int, cin: int, k: int) -> None:
        shapes[f"{prefix}.weight"] = (cout, cin, k, k)

    def bn(prefix: str, n: int) -> None:
        shapes.update({f"{prefix}.{p}": (n,) for p in BN})
        shapes[f"{prefix}.num_batches_tracked"] = ()

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    channels = 64
    for stage, (planes, blocks) in enumerate(zip(PLANES, layers, strict=True), start=1):
        width = planes * EXPANSION[kind]
        for b in range(blocks):
            name = f"layer{stage}.{b}"
            if kind == "basic":
                convs = ((planes, channels, 3), (planes, planes, 3))
            else:
                convs = ((planes, channels, 1), (planes, planes, 3), (width, planes, 1))
            for i, (cout, cin, k) in enumerate(convs, start=1):
                conv(f"{name}.conv{i}", cout, cin, k)
                bn(f"{name}.bn{i}", cout)
            if b == 0 and (stage > 1 or channels != width):
                conv(f"{name}.downsample.0", width, channels, 1)
                bn(f"{name}.downsample.1", width)
            channels = width
    shapes["fc.weight"] = (num_classes, channels)
    shapes["fc.bias"] = (num_classes,)
    return shapes


def config_of(state: Mapping[str, Any]) -> tuple[str, tuple[int, ...]] | None:
    """(block kind, blocks per stage) of a torchvision ResNet state_dict, checked key by key and
    shape by shape (so wide_resnet and ResNeXt, same keys but other widths, are not taken)."""
    if "fc.weight" not in state:
        return None
    blocks: dict[int, set[int]] = {}
    for key in state:
        match = _BLOCK.match(key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    layers = tuple(len(blocks.get(stage, ())) for stage in (1, 2, 3, 4))
    kind = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    if not all(layers):
        return None
    expected = layout(kind, layers, num_classes(state))
    found = {key: tuple(getattr(value, "shape", ())) for key, value in state.items()}
    return (kind, layers) if found == expected else None


def matches(arch: str, state: Mapping[str, Any]) -> bool:
    return config_of(state) == ARCHS[arch]


def num_classes(state: Mapping[str, Any]) -> int:
    return int(state["fc.weight"].shape[0])


def weighted_layers(state: Mapping[str, Any]) -> Iterator[str]:
    """The torch module prefixes that hold weights, in state_dict order: one Keras layer each."""
    return iter(dict.fromkeys(k.rsplit(".", 1)[0] for k in state if k.endswith(".weight")))


def named_to_keras(state: Mapping[str, np.ndarray]) -> KerasWeights:
    """torch arrays → `set_weights` lists per layer named as the module: conv OIHW → HWIO (and
    its bias), BatchNorm (γ, β, mean, var), Linear transposed. Any torch-named network."""
    out: KerasWeights = {}
    for prefix in weighted_layers(state):
        weight = np.asarray(state[f"{prefix}.weight"])
        bias = [np.asarray(state[f"{prefix}.bias"])] if f"{prefix}.bias" in state else []
        if f"{prefix}.running_mean" in state:
            out[prefix] = [np.asarray(state[f"{prefix}.{p}"]) for p in BN]
        elif weight.ndim == 4:
            out[prefix] = [conv_to_keras(weight), *bias]
        else:
            out[prefix] = [np.ascontiguousarray(weight.T), *bias]
    return {k: [np.ascontiguousarray(a, dtype=np.float32) for a in v] for k, v in out.items()}


def named_from_keras(weights: Mapping[str, Sequence[np.ndarray]]) -> State:
    """The exact inverse of `named_to_keras`; layers without weights are passed over, so every
    layer's `get_weights()` may be given. Keras keeps no num_batches_tracked: it comes back as
    torch's fresh 0 (an int64 scalar), which is what `load_state_dict` needs."""
    state: State = {}
    for prefix, arrays in weights.items():
        if not len(arrays):  # a layer without weights (ReLU, padding): `get_weights()` is []
            continue
        first = np.asarray(arrays[0])
        if first.ndim == 4:
            state[f"{prefix}.weight"] = conv_from_keras(first)
        elif len(arrays) == len(BN):
            state.update({f"{prefix}.{p}": np.asarray(a) for p, a in zip(BN, arrays, strict=True)})
            state[f"{prefix}.num_batches_tracked"] = np.zeros((), np.int64)
            continue
        else:
            state[f"{prefix}.weight"] = np.ascontiguousarray(first.T)
        if len(arrays) > 1:
            state[f"{prefix}.bias"] = np.asarray(arrays[1])
    return {k: np.asarray(v, order="C") for k, v in state.items()}  # 0-d stays 0-d


for _arch in ARCHS:
    register(
        Replica(
            name=_arch,
            build=functools.partial(build, _arch),
            to_keras=named_to_keras,
            from_keras=named_from_keras,
            matches=functools.partial(matches, _arch),
            cam_layer=CAM_LAYER,
            num_classes=num_classes,
        )
    )
