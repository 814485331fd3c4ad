"""Keras DenseNets from ImageNet weights (Keras's cache), a seed, or a file (.weights.h5, .h5,
or a torchvision .pth converted on the fly); any keras.applications model's ImageNet weights
through Keras's cache; and how a model's weights are laid out for `state()`."""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

from . import env  # noqa: F401  (first: it imports TensorFlow quietly and safely)

# isort: split
import h5py
import keras
import numpy as np
import tensorflow as tf
from keras.src.backend.config import keras_home
from keras.src.utils import file_utils

from ..base import BackendError, WeightsSpec
from ..checkpoints import read_checkpoint
from ..downloads import quiet_download
from ..reasons import first_line
from ..twins.densenet import (
    BLOCKS,
    DEFAULT,
    STAGES,
    architecture_of,
    from_keras,
    layers,
    random_weights,
    to_keras,
)
from .activations import is_relu, walk

BUILDERS = {arch: arch.replace("densenet", "DenseNet") for arch in BLOCKS}  # keras.applications
DENSENET_FILES = " (a Keras DenseNet .weights.h5 or .h5, or a torchvision .pth)"
Stages = list[tuple[str, tuple[str, ...]]]  # (stage, state key prefixes), from the output back
TORCH_EPSILON = 1e-5  # BatchNorm2d's default, in every torchvision DenseNet
_get_file = file_utils.get_file  # Keras's own, which `imagenet_model` wraps
# Convolutions per architecture, as counted in a Keras weights file.
_CONVS = {sum(blocks) * 2 + len(blocks): arch for arch, blocks in BLOCKS.items()}


def build_model(weights: WeightsSpec, arch: str = DEFAULT) -> tuple[keras.Model, str]:
    """The Keras DenseNet for `--weights` (logits out, torch-style pooling), and its architecture:
    `arch`, unless a weights file says which DenseNet it is."""
    if weights.kind == "imagenet":
        model = imagenet_model(BUILDERS[arch], DENSENET_FILES)
    elif weights.kind == "random":
        model = densenet(arch, 1000)
        set_torch_weights(model, random_weights(arch, 1000, weights.seed), arch, "random weights")
        torch_epsilon(model)
    else:
        assert weights.path is not None
        model, arch = from_file(weights.path)
    pool_like_torch(model)
    return model, arch


def densenet(arch: str, num_classes: int) -> keras.Model:
    builder = getattr(keras.applications, BUILDERS[arch])
    return builder(weights=None, classes=num_classes, classifier_activation=None)


def keras_models_dir() -> Path:
    """Where keras.applications caches weights: $KERAS_HOME/models, as Keras itself decides."""
    base = os.path.expanduser(keras_home())
    if not os.access(base, os.W_OK):  # Keras falls back to /tmp/.keras
        base = os.path.join("/tmp", ".keras")
    return Path(base) / "models"


def imagenet_model(builder: str, files: str = "") -> keras.Model:
    """keras.applications.<builder> with its ImageNet weights through Keras's own cache, logits
    out. Keras names the file it wants (seen by wrapping its get_file); offline, or with a
    damaged file that Keras would delete, the error is one line naming the file and its folder.
    `files` tells what else --weights PATH takes."""
    wanted: list[tuple[str, str]] = []

    def checked(fname: str, origin: str, *args: object, **kwargs: object) -> str:
        wanted.append((fname, origin))
        cached, digest = keras_models_dir() / fname, kwargs.get("file_hash")
        if digest and cached.is_file() and not file_utils.validate_file(str(cached), digest):
            check = "SHA-256" if len(str(digest)) == 64 else "MD5"
            raise BackendError(
                f"the cached ImageNet weights {cached} fail Keras's {check} check; replace the "
                f"file (from {origin}) or pass --weights PATH"
            )
        return _get_file(fname, origin, *args, **kwargs)

    build = getattr(keras.applications, builder)
    try:
        with mock.patch.object(file_utils, "get_file", checked), quiet_download():
            return build(weights="imagenet", classifier_activation=None)
    except BackendError:
        raise
    except Exception as e:  # offline: Keras raises a plain Exception("URL fetch failure …")
        if not wanted:
            raise BackendError(f"keras.applications.{builder}: {first_line(e)}") from None
        fname, origin = wanted[-1]
        raise BackendError(
            f"ImageNet weights {fname} are not cached and could not be downloaded "
            f"({first_line(e)}): put {origin} in {keras_models_dir()}/ (set KERAS_HOME to move "
            f"it), or pass --weights PATH{files}, or --weights random to try the pipeline on an "
            f"untrained network"
        ) from None


def from_file(path: Path, source: str | None = None) -> tuple[keras.Model, str]:
    """A model from a weights file, by the file's kind; `source` names it in errors the way the
    user gave it (default: `--weights PATH`)."""
    source = source or f"--weights {path}"
    if not path.is_file():
        raise BackendError(f"{source}: no such file")
    name = path.name.lower()
    if name.endswith((".pth", ".pt")):
        state = read_checkpoint(path, source)
        arch = architecture_of(state, source)
        model = densenet(arch, state["classifier.weight"].shape[0])
        set_torch_weights(model, state, arch, source)
        return torch_epsilon(model), arch
    if name.endswith((".h5", ".hdf5")):
        arch, num_classes = inspect_h5(path, source)
        model = densenet(arch, num_classes)
        try:
            with warnings_only_on_success():
                model.load_weights(path)
        except Exception as e:
            raise BackendError(
                f"{source}: does not fit Keras {BUILDERS[arch]} ({first_line(e)})"
            ) from None
        return model, arch
    raise BackendError(f"{source}: expected .weights.h5, .h5, .keras, .pth or .pt")


@contextlib.contextmanager
def warnings_only_on_success() -> Iterator[None]:
    """Keras warns on its way to a load error ("Skipping nested container …"); a failed load is
    answered by gbp's one line alone, while a load that works passes its warnings on."""
    with warnings.catch_warnings(record=True) as caught:
        yield
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def inspect_h5(path: Path, source: str) -> tuple[str, int]:
    """Architecture and class count of a Keras weights file (Keras 3 or legacy layout)."""
    try:
        with h5py.File(path, "r") as f:
            if "layers" in f:  # Keras 3 .weights.h5: groups named by layer class
                groups = list(f["layers"].keys())
                convs = sum(g.startswith("conv2d") for g in groups)
                kernel = f["layers"]["dense"]["vars"]["0"]
            else:  # legacy .h5, as keras.applications downloads: groups named by layer
                groups = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
                convs = sum(g.endswith("_conv") for g in groups)
                kernel = next(d for d in _datasets(f["predictions"]) if d.ndim == 2)
            num_classes = int(kernel.shape[1])
    except (OSError, KeyError, StopIteration) as e:
        raise BackendError(
            f"{source}: not a Keras DenseNet weights file ({first_line(e)})"
        ) from None
    if convs not in _CONVS:
        raise BackendError(f"{source}: not a Keras DenseNet121/169/201 ({convs} convolutions)")
    return _CONVS[convs], num_classes


def _datasets(group: h5py.Group) -> list[h5py.Dataset]:
    found: list[h5py.Dataset] = []
    group.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return found


def set_torch_weights(
    model: keras.Model, state: dict[str, np.ndarray], arch: str, source: str
) -> None:
    """Copy torchvision-layout arrays into the Keras layers that correspond to them."""
    try:
        for name, arrays in to_keras(state, arch).items():
            model.get_layer(name).set_weights(arrays)
    except (KeyError, ValueError) as e:
        raise BackendError(
            f"{source}: does not fit Keras {BUILDERS[arch]} ({first_line(e)})"
        ) from None


def torch_epsilon(model: keras.Model) -> keras.Model:
    """torch's BatchNorm ε for a DenseNet built to hold torch's weights: Keras's DenseNet has
    1.001e-5, right for Keras's own weights, and it moves logits by ~4e-7 (float64 parity)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.epsilon = TORCH_EPSILON
    return model


def pool_like_torch(model: keras.Model) -> None:
    """Pad before `pool1` with −inf, as torch's MaxPool2d(padding=1) does, instead of Keras's 0.

    The pooled input is a ReLU output, so a window of zeros ties with zero padding and Keras sends
    its gradient into the pad; with −inf the border gradient matches torch's.
    """
    names = [layer.name for layer in model.layers]
    if "pool1" not in names or names.index("pool1") < 2:
        return
    before, pad = model.layers[names.index("pool1") - 2 : names.index("pool1")]
    after_relu = is_relu(getattr(before, "activation", None))
    if isinstance(pad, keras.layers.ZeroPadding2D) and after_relu:  # inputs ≥ 0: forward unchanged
        pad.call = functools.partial(_pad_with_minus_inf, padding=pad.padding)


def _pad_with_minus_inf(inputs: tf.Tensor, padding: tuple[tuple[int, int], tuple[int, int]]):
    (top, bottom), (left, right) = padding
    paddings = [[0, 0], [top, bottom], [left, right], [0, 0]]
    return tf.pad(inputs, paddings, constant_values=tf.constant(-np.inf, inputs.dtype))


class Layout:
    """How `state()` names the weights, and gbp sanity's stages over them: (name, key prefixes),
    from the output back, as the torch backend gives them. A DenseNet's weights are in
    torchvision's layout, so that both backends save, load, randomise and compare the very same
    tensors; any other model's are {"layer path/index": array}, staged by `named` or else as the
    head alone, then the other layers with trainable weights in seven groups, each named by its
    first layer."""

    GROUPS = 8

    def __init__(self, arch: str | None = None, named: Stages | None = None) -> None:
        self.arch = arch  # a DenseNet's, or None
        self.named = STAGES if arch else named

    def weighted(self, model: keras.Model) -> list[tuple[str, keras.Layer]]:
        return [(p, layer) for p, layer in walk(model) if layer.weights and not _nests(layer)]

    def state(self, model: keras.Model) -> dict[str, np.ndarray]:
        if self.arch:
            weights = {n: model.get_layer(n).get_weights() for _, n, _ in layers(self.arch)}
            return from_keras(weights, self.arch)
        return {
            f"{path}/{i}": np.array(array)
            for path, layer in self.weighted(model)
            for i, array in enumerate(layer.get_weights())
        }

    def load_state(self, model: keras.Model, state: dict[str, np.ndarray]) -> None:
        if self.arch:
            set_torch_weights(model, state, self.arch, "weights")
            return
        for path, layer in self.weighted(model):
            try:
                layer.set_weights([state[f"{path}/{i}"] for i in range(len(layer.weights))])
            except (KeyError, ValueError) as e:
                raise BackendError(f"weights for {path} do not fit ({first_line(e)})") from None

    def stages(self, model: keras.Model) -> Stages:
        if self.named:
            return self.named
        units = [path for path, layer in self.weighted(model) if layer.trainable_weights]
        if len(units) <= self.GROUPS:
            return [(path, (f"{path}/",)) for path in reversed(units)]
        body = np.array_split(np.arange(len(units) - 1), self.GROUPS - 1)
        groups = [(units[g[0]], tuple(f"{units[i]}/" for i in g)) for g in body]
        return [(units[-1], (f"{units[-1]}/",)), *reversed(groups)]

    def random_state(self, model: keras.Model, seed: int) -> dict[str, np.ndarray]:
        """Seeded in numpy. A DenseNet gets torchvision's initialisation, the torch backend's bit
        for bit; any other model Glorot-uniform kernels (Keras's default), zero biases and shifts,
        unit scales and variances, and keeps other non-trainable weights (a Normalization layer's
        statistics are preprocessing, not learning)."""
        if self.arch:
            return random_weights(self.arch, int(model.outputs[0].shape[-1]), seed)
        rng, state = np.random.default_rng(seed), {}
        for path, layer in self.weighted(model):
            trainable = {id(v) for v in layer.trainable_weights}
            for i, variable in enumerate(layer.weights):
                value, name = np.array(variable), variable.name.split("/")[-1]
                if id(variable) in trainable or name in ("moving_mean", "moving_variance"):
                    value = _initial(name, value.shape, rng).astype(value.dtype)
                state[f"{path}/{i}"] = value
        return state


def _nests(layer: keras.Layer) -> bool:
    return bool(getattr(layer, "layers", None))


def _initial(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if name in ("gamma", "moving_variance", "scale"):
        return np.ones(shape)
    if name in ("beta", "bias", "moving_mean") or len(shape) < 2:
        return np.zeros(shape)
    receptive = int(np.prod(shape[:-2]))
    limit = np.sqrt(6 / (receptive * (shape[-2] + shape[-1])))
    return rng.uniform(-limit, limit, shape)
