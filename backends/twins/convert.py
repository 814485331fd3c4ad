"""Weights between a torchvision state_dict and a Keras .weights.h5: the DenseNets, and every
network with a Keras replica (backends/replicas.py), recognized from the file.

Reading and converting only: where and how a result is written (atomically, never over a file
unasked) is the caller's business, so this package needs nothing of the CLI. Needs both
frameworks: torch to read or write the .pth, Keras to read or write the .h5.
"""

from __future__ import annotations

from pathlib import Path

from ..base import BackendError
from ..checkpoints import checkpoint_bytes, read_checkpoint
from .densenet import Weights, architecture_of, from_keras, layers
from .registry import load_all, recognize

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


def num_classes(state: Weights, arch: str = "densenet201") -> int:
    replica = load_all().get(arch)
    return replica.num_classes(state) if replica else int(state["classifier.weight"].shape[0])


def read_weights(path: Path, source: str | None = None) -> tuple[Weights, str]:
    """Either kind of file as torchvision-layout arrays, and its architecture.

    `source` names the file in errors the way the user gave it (default: `--weights PATH`).
    """
    if kind(path) == "torch":
        return read_torch(path, source)
    return read_keras(path, source)


def read_torch(path: Path, source: str | None = None) -> tuple[Weights, str]:
    """A torchvision state_dict file of a DenseNet or of a network with a replica."""
    state = read_checkpoint(path, source)
    try:
        return state, architecture_of(state, source or f"--weights {path}")
    except BackendError:
        replica = recognize(state)
        if replica is None:
            raise
        return state, replica.name


def read_keras(path: Path, source: str | None = None) -> tuple[Weights, str]:
    """A Keras weights file as torchvision-layout arrays: a replica's (as gbp convert writes
    them, saying which) or a DenseNet's."""
    from ..tf.twins import ReplicaLayout, architecture, from_h5

    name = architecture(path)
    if name is not None:
        replica = load_all()[name]
        model = from_h5(replica, path, source or f"--weights {path}")
        return ReplicaLayout(replica).state(model), name
    from ..tf.densenet import from_file

    model, arch = from_file(path, source)
    weights = {name: model.get_layer(name).get_weights() for _, name, _ in layers(arch)}
    return from_keras(weights, arch), arch


def save_keras(state: Weights, arch: str, path: Path, source: str) -> None:
    """Write `state` as a Keras .weights.h5 to exactly `path` (Keras wants that suffix).

    `source` names where the weights came from, for an error if they do not fit.
    """
    if not path.name.lower().endswith(".weights.h5"):
        raise BackendError(f"{path}: Keras writes weights only to a name ending .weights.h5")
    replica = load_all().get(arch)
    if replica is not None:
        from ..tf.twins import save

        save(replica, state, path, source)
        return
    from ..tf.densenet import densenet, set_torch_weights

    model = densenet(arch, num_classes(state))
    set_torch_weights(model, state, arch, source)
    model.save_weights(path)
