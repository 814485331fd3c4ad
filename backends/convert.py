"""`gbp convert`: DenseNet weights between a torchvision state_dict and a Keras .weights.h5.

Needs both frameworks: torch to read or write the .pth, Keras to read or write the .h5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backends.checkpoints import checkpoint_bytes, read_checkpoint
from backends.densenet import architecture_of, from_keras, layers
from gbp_cli.errors import GbpError
from gbp_cli.output import AtomicFile, write_atomic

TORCH_SUFFIXES = (".pth", ".pt")
KERAS_SUFFIXES = (".weights.h5", ".h5", ".hdf5")


def kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(TORCH_SUFFIXES):
        return "torch"
    if name.endswith(KERAS_SUFFIXES):
        return "keras"
    raise GbpError(f"{path}: expected a .pth/.pt (torchvision) or .weights.h5 (Keras) file")


def convert(source: Path, destination: Path, overwrite: bool = False) -> str:
    """Convert one file; returns what was converted, e.g. 'densenet201, 1000 classes'."""
    direction = (kind(source), kind(destination))
    if direction[0] == direction[1]:
        raise GbpError(f"{source} and {destination} are both {direction[0]} files: nothing to do")
    if destination.exists() and not overwrite:
        raise GbpError(f"{destination} exists; pass --overwrite to replace it")
    if direction == ("torch", "keras"):
        if not destination.name.lower().endswith(".weights.h5"):
            raise GbpError(f"{destination}: Keras writes weights only to a name ending .weights.h5")
        state = read_checkpoint(source, "SRC")
        arch = architecture_of(state, f"SRC {source}")
        classes = state["classifier.weight"].shape[0]
        save_keras(state, arch, destination, overwrite)
    else:
        state, arch = read_keras(source)
        classes = state["classifier.weight"].shape[0]
        if not write_atomic(destination, checkpoint_bytes(state), overwrite):
            raise GbpError(f"{destination} appeared while converting; it was left alone")
    return f"{arch}, {classes} classes"


def save_keras(state: dict[str, np.ndarray], arch: str, destination: Path, overwrite: bool) -> None:
    from backends.tf_weights import densenet, set_torch_weights

    model = densenet(arch, state["classifier.weight"].shape[0])
    set_torch_weights(model, state, arch, "SRC")
    target = AtomicFile(destination, overwrite, suffix=".weights.h5")
    with target as temp:
        model.save_weights(temp)
    if not target.published:
        raise GbpError(f"{destination} appeared while converting; it was left alone")


def read_keras(source: Path) -> tuple[dict[str, np.ndarray], str]:
    """A Keras DenseNet weights file as torchvision-layout arrays."""
    from backends.tf_weights import from_file

    model, arch = from_file(source)
    weights = {name: model.get_layer(name).get_weights() for _, name, _ in layers(arch)}
    return from_keras(weights, arch), arch
