"""Keras DenseNets from ImageNet weights (Keras's cache), a seed, or a file (.weights.h5, .h5,
.keras, or a torchvision .pth converted on the fly)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from . import tf_env  # noqa: F401  (first: it imports TensorFlow quietly and safely)

# isort: split
import h5py
import keras
import numpy as np
import tensorflow as tf

from .base import BackendError, WeightsSpec
from .checkpoints import read_checkpoint
from .densenet import BLOCKS, DEFAULT, architecture_of, random_weights, to_keras
from .downloads import quiet_download
from .reasons import first_line
from .tf_relus import is_relu

BUILDERS = {
    "densenet121": "DenseNet121",
    "densenet169": "DenseNet169",
    "densenet201": "DenseNet201",
}
IMAGENET_FILE = "densenet201_weights_tf_dim_ordering_tf_kernels.h5"
IMAGENET_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/densenet/" + IMAGENET_FILE
)
IMAGENET_MD5 = "1ceb130c1ea1b78c3bf6114dbdfd8807"  # what keras.applications checks on every load
# Convolutions per architecture, as counted in a Keras weights file.
_CONVS = {sum(blocks) * 2 + len(blocks): arch for arch, blocks in BLOCKS.items()}


def build_model(weights: WeightsSpec) -> tuple[keras.Model, str]:
    """The Keras model for `--weights` (logits out, torch-style pooling), and its architecture."""
    if weights.kind == "imagenet":
        model, arch = imagenet_model(), DEFAULT
    elif weights.kind == "random":
        arch = DEFAULT
        model = densenet(arch, 1000)
        set_torch_weights(model, random_weights(arch, 1000, weights.seed), arch, "random weights")
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
    try:
        from keras.src.backend.config import keras_home

        base = keras_home()
    except ImportError:
        base = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK):  # Keras falls back to /tmp/.keras
        base = os.path.join("/tmp", ".keras")
    return Path(base) / "models"


def imagenet_model() -> keras.Model:
    """keras.applications.DenseNet201 ImageNet weights through Keras's own (MD5-checked) cache."""
    cached = keras_models_dir() / IMAGENET_FILE
    if cached.is_file() and _md5(cached) != IMAGENET_MD5:
        # Keras would try to download again and, offline, delete the file: say so instead.
        raise BackendError(
            f"the cached ImageNet weights {cached} fail Keras's MD5 check; replace the file "
            f"(from {IMAGENET_URL}) or pass --weights PATH"
        )
    try:
        with quiet_download():
            return keras.applications.DenseNet201(weights="imagenet", classifier_activation=None)
    except Exception as e:  # offline: Keras raises a plain Exception("URL fetch failure …")
        raise BackendError(
            f"ImageNet weights {IMAGENET_FILE} are not cached and could not be downloaded "
            f"({first_line(e)}): put {IMAGENET_URL} in {cached.parent}/ (set KERAS_HOME to move "
            f"it), or pass --weights PATH (a torchvision .pth works too), or --weights random "
            f"to try the pipeline on an untrained network"
        ) from None


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        return model, arch
    if name.endswith(".keras"):
        return load_keras_model(path, source), "keras model"
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


def load_keras_model(path: Path, source: str) -> keras.Model:
    """A whole .keras model, in safe mode, with a softmax head turned back into logits."""
    try:
        with warnings_only_on_success():
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:
        raise BackendError(f"{source}: cannot load as a Keras model ({first_line(e)})") from None
    head = model.layers[-1]
    if getattr(head, "activation", None) is keras.activations.softmax:
        head.activation = keras.activations.linear
    return model


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
