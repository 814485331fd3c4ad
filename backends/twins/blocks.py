"""The Keras building blocks of the twins, each computing what its torch layer computes.

Every padding is an explicit ZeroPadding2D before a "valid" layer, as torch pads: Keras's "same"
puts a stride-2 layer's odd pad at the bottom/right only. BatchNorm takes the torch family's ε
(Keras's own default is 1e-3). Built-in layers only, so a saved twin loads in Keras's safe mode
with no custom objects. Keras is imported when a block is built, never at import.
"""

from __future__ import annotations

from typing import Any

Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))
NONE: Pads = ((0, 0), (0, 0))


def symmetric(pad: int) -> Pads:
    """torch's `padding=pad`: the same on every side, at any stride."""
    return ((pad, pad), (pad, pad))


def padded(x: Any, name: str, pads: Pads) -> Any:
    """A ZeroPadding2D named `{name}_pad`, only where there is padding."""
    import keras

    if any(any(p) for p in pads):
        x = keras.layers.ZeroPadding2D(pads, name=f"{name}_pad")(x)
    return x


def conv(
    x: Any,
    name: str,
    filters: int,
    kernel: int,
    stride: int = 1,
    pads: Pads = NONE,
    bias: bool = False,
) -> Any:
    """A convolution after explicit padding (none by default: the 1×1s)."""
    import keras

    x = padded(x, name, pads)
    return keras.layers.Conv2D(filters, kernel, stride, "valid", use_bias=bias, name=name)(x)


def depthwise(x: Any, name: str, kernel: int, stride: int, pads: Pads) -> Any:
    """A bias-free depthwise convolution after explicit padding."""
    import keras

    x = padded(x, name, pads)
    return keras.layers.DepthwiseConv2D(kernel, stride, "valid", use_bias=False, name=name)(x)


def batchnorm(x: Any, name: str, eps: float) -> Any:
    import keras

    return keras.layers.BatchNormalization(epsilon=eps, name=name)(x)


def relu(x: Any, name: str, max_value: float | None = None) -> Any:
    """A `ReLU` layer (with `max_value=6.0`, ReLU6): one layer per call, the form in which gbp's
    TF backend gives an activation its rule."""
    import keras

    return keras.layers.ReLU(max_value=max_value, name=name)(x)


def max_pool_like_torch(x: Any, name: str) -> Any:
    """torch's MaxPool2d(3, stride=2, padding=1), which pads with −inf.

    Zero padding would tie with the ReLU zeros it follows and take their gradient (DeconvNet's
    border). TF's "same" max-pool ignores its padding, as −inf would, but for an even side it
    pads bottom/right only, where torch pads 1 on each side. So an even side gets one zero row
    (column) appended: "same" then pads 1 on each side, and the one extra output row, the only
    window that sees the zero row, is cropped away, gradient and all."""
    import keras

    extra = tuple(1 - int(n) % 2 for n in x.shape[1:3])
    if any(extra):
        x = keras.layers.ZeroPadding2D(((0, extra[0]), (0, extra[1])), name=f"{name}_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=name)(x)
    if any(extra):
        x = keras.layers.Cropping2D(((0, extra[0]), (0, extra[1])), name=f"{name}_crop")(x)
    return x


def head(x: Any, num_classes: int, pool: str, dense: str, dropout: tuple[str, float] | None) -> Any:
    """Global average pool, dropout (the identity in inference), the linear classifier (logits)."""
    import keras

    x = keras.layers.GlobalAveragePooling2D(name=pool)(x)
    if dropout is not None:
        x = keras.layers.Dropout(dropout[1], name=dropout[0])(x)
    return keras.layers.Dense(num_classes, name=dense)(x)
