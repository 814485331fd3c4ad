"""DenseNet weights between a torchvision state_dict and a Keras .weights.h5.

Reading and converting only: where and how a result is written (atomically, never over a file
unasked) is the caller's business, so this package needs nothing of the CLI. Needs both
frameworks: torch to read or write the .pth, Keras to read or write the .h5.
"""

from __future__ import annotations

from pathlib import Path

from .base import BackendError
from .checkpoints import checkpoint_bytes, read_checkpoint
from .densenet import Weights, architecture_of, from_keras, layers

__all__ = [
    "KERAS_SUFFIXES",
    "TORCH_SUFFIXES",
    "checkpoint_bytes",
    "kind",
    "num_classes",
    "read_keras",
    "read_torch",
    "read_weights",
    "save_keras",
]

TORCH_SUFFIXES = (".pth", ".pt")
KERAS_SUFFIXES = (".weights.h5", ".h5", ".hdf5")


def kind(path: Path) -> str:
    """ "torch" or "keras", by the file name, which is all there is before the file is read."""
    name = path.name.lower()
    if name.endswith(TORCH_SUFFIXES):
        return "torch"
    if name.endswith(KERAS_SUFFIXES):
        return "keras"
    raise BackendError(f"{path}: expected a .pth/.pt (torchvision) or .weights.h5 (Keras) file")


def num_classes(state: Weights) -> int:
    return int(state["classifier.weight"].shape[0])


def read_weights(path: Path, source: str | None = None) -> tuple[Weights, str]:
    """Either kind of file as torchvision-layout arrays, and its architecture.

    `source` names the file in errors the way the user gave it (default: `--weights PATH`).
    """
    if kind(path) == "torch":
        return read_torch(path, source)
    return read_keras(path, source)


def read_torch(path: Path, source: str | None = None) -> tuple[Weights, str]:
    """A torchvision DenseNet state_dict file, checked to be one."""
    state = read_checkpoint(path, source)
    return state, architecture_of(state, source or f"--weights {path}")


def read_keras(path: Path, source: str | None = None) -> tuple[Weights, str]:
    """A Keras DenseNet weights file as torchvision-layout arrays."""
    from .tf_weights import from_file

    model, arch = from_file(path, source)
    weights = {name: model.get_layer(name).get_weights() for _, name, _ in layers(arch)}
    return from_keras(weights, arch), arch


def save_keras(state: Weights, arch: str, path: Path, source: str) -> None:
    """Write `state` as a Keras .weights.h5 to exactly `path` (Keras wants that suffix).

    `source` names where the weights came from, for an error if they do not fit.
    """
    from .tf_weights import densenet, set_torch_weights

    if not path.name.lower().endswith(".weights.h5"):
        raise BackendError(f"{path}: Keras writes weights only to a name ending .weights.h5")
    model = densenet(arch, num_classes(state))
    set_torch_weights(model, state, arch, source)
    model.save_weights(path)
