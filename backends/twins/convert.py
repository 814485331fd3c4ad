"""`gbp convert`'s framework-free part: which kind a weights file is, by its name, and which twin
a torchvision state_dict holds. Reading and writing the files is each framework's business
(backends/checkpoints.py for .pth, backends/tf/twins.py for Keras), and where a result is written
(atomically, never over a file unasked) the command's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..base import BackendError
from .densenet import architecture_of
from .registry import load_all, recognize

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


def architecture(state: Mapping[str, Any], source: str) -> str:
    """The twin a torchvision state_dict is, by name. A file that is no twin exactly is named
    as a DenseNet, the default model's family, would name it: a DenseNet whose shapes do not
    fit, another network, or nothing known."""
    twin = recognize(state)
    return twin.name if twin is not None else architecture_of(state, source)


def num_classes(state: Mapping[str, Any], arch: str) -> int:
    return load_all()[arch].num_classes(state)
