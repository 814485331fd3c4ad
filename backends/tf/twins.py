"""The TensorFlow side of the twins (backends/twins/): a twin's Keras network with its weights —
torch's ImageNet ones converted, or Keras's own in its keras.applications model (DenseNet, VGG), a
seed (the twin's numpy draw: the torch backend's very arrays), a torchvision .pth or a Keras
file —, those weights in torchvision's layout for `state()`, and the Keras files gbp convert
reads and writes."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from . import env  # noqa: F401  (first: it imports TensorFlow quietly and safely)

# isort: split
import h5py
import keras
import numpy as np

from ..base import DISTRIBUTION, BackendError, WeightsSpec
from ..checkpoints import read_checkpoint
from ..reasons import first_line
from ..stages import Stages
from ..twins.registry import Application, Twin, load_all
from ..twins.table import State, Table, from_keras, keys, to_keras
from .applications import imagenet_model, warnings_only_on_success
from .layout import Layout

ARCHITECTURE = "gbp:architecture"  # attributes gbp convert writes into a .weights.h5
CLASSES = "gbp:num_classes"
FILES = " (a Keras .weights.h5 or .h5 of this model, or a torchvision .pth)"


class Loaded(NamedTuple):
    """A twin's Keras network with its weights."""

    model: keras.Model
    twin: Twin  # the twin it is (a DenseNet file may be another DenseNet than --model's)
    layout: TwinLayout
    application: Application | None  # Keras's own model of it, if that is what was built


def load(twin: Twin, weights: WeightsSpec) -> Loaded:
    """The twin with `weights`: ImageNet's, a seed, a .pth or a Keras weights file."""
    own = twin.application
    if weights.kind == "imagenet" and own is not None:  # Keras's own weights, in its own model
        model = imagenet_model(own.builder, FILES, lambda: own.build(1000, "imagenet"))
        return Loaded(model, twin, TwinLayout(twin, own.layers), own)
    if weights.kind == "imagenet":
        state = torch_imagenet(twin)
        model = twin.build(twin.num_classes(state))
        layout = TwinLayout(twin)
        layout.fill(model, state, f"{twin.name}'s ImageNet weights")
        return Loaded(model, twin, layout, None)
    if weights.kind == "random":  # the network --weights imagenet builds, holding the numpy draw
        model = own.build(1000, None) if own else twin.build(1000)
        layout = TwinLayout(twin, own.layers if own else None)
        layout.fill(model, twin.random_state(1000, weights.seed), "random weights")
        return Loaded(model, twin, layout, own)
    assert weights.path is not None
    source = f"--weights {weights.path}"
    if not weights.path.is_file():
        raise BackendError(f"{source}: no such file")
    name = weights.path.name.lower()
    if name.endswith((".pth", ".pt")):
        return from_torch_file(twin, weights.path, source)
    if name.endswith((".h5", ".hdf5")):
        return from_keras_file(twin, weights.path, source)
    raise BackendError(f"{source}: expected .weights.h5, .h5, .keras, .pth or .pt")


def torch_imagenet(twin: Twin) -> State:
    """torch's ImageNet weights for a twin that TensorFlow explains with them: torchvision's
    cached file, or the Lite0 package's, found where the torch backend finds them. This is the
    TF backend's one import of the torch backend, made only here; without PyTorch, one line says
    how to make the file once with gbp convert."""
    try:
        from ..torch.zoo import imagenet_state  # the one tf → torch import (see the docstring)
    except ImportError as e:
        if (e.name or "").split(".")[0] not in ("torch", "torchvision"):
            raise
        raise BackendError(
            f"--backend tf --model {twin.name} --weights imagenet converts torch's weights "
            f"and needs PyTorch (pip install '{DISTRIBUTION}[torch]'); or, where PyTorch is, make "
            f"the file once: gbp convert WEIGHTS.pth {twin.name}.weights.h5, then pass "
            f"--weights {twin.name}.weights.h5"
        ) from None
    return imagenet_state(twin.name)


def from_torch_file(twin: Twin, path: Path, source: str) -> Loaded:
    """A torchvision state_dict of the twin (any class count); of a family whose files say
    which member they are (the DenseNets), the member the file is."""
    state = read_checkpoint(path, source)
    if twin.member_of is not None:
        twin = load_all()[twin.member_of(state, source)]
    elif not twin.matches(state):
        raise BackendError(f"{source}: not a torchvision {twin.name} state_dict")
    model = twin.build(twin.num_classes(state))
    layout = TwinLayout(twin)
    layout.fill(model, state, source)
    return Loaded(model, twin, layout, None)


def from_keras_file(twin: Twin, path: Path, source: str) -> Loaded:
    """A Keras weights file: one gbp convert wrote (it names its twin), or, for a twin with a
    keras.applications model, one Keras wrote for that model (its own ImageNet .h5, or a
    `save_weights`), told apart by its convolutions."""
    named = architecture(path)
    if named is not None and twin.member_of is not None:
        found = load_all()[named]
        twin = found if found.family == twin.family else twin
    if named is None and twin.application is not None:
        family = [t for t in load_all().values() if t.family == twin.family and t.application]
        model, twin = keras_own_file(path, source, family)
        assert twin.application is not None
        return Loaded(model, twin, TwinLayout(twin, twin.application.layers), twin.application)
    return Loaded(from_h5(twin, path, source), twin, TwinLayout(twin), None)


def from_h5(twin: Twin, path: Path, source: str) -> keras.Model:
    """A .weights.h5 of the twin, as gbp convert writes it, any class count."""
    try:
        with h5py.File(path, "r") as handle:
            classes = int(handle.attrs.get(CLASSES, 1000))
    except OSError as e:
        raise BackendError(f"{source}: not a Keras weights file ({first_line(e)})") from None
    model = twin.build(classes)
    try:
        with warnings_only_on_success():
            model.load_weights(path)
    except Exception as e:
        raise BackendError(f"{source}: does not fit {twin.keras_title} ({first_line(e)})") from None
    return model


def keras_own_file(path: Path, source: str, candidates: list[Twin]) -> tuple[keras.Model, Twin]:
    """A weights file Keras wrote for one of the candidates' keras.applications models (Keras
    3's .weights.h5 or the legacy .h5 Keras downloads), told apart by its convolution count,
    in that model, with Keras's BatchNorm ε."""
    names = _spelled([t.application.builder for t in candidates if t.application])
    try:
        with h5py.File(path, "r") as handle:
            convs, classes = _convolutions_and_classes(handle)
    except (OSError, KeyError, ValueError) as e:
        raise BackendError(
            f"{source}: not a Keras {names} weights file ({first_line(e)})"
        ) from None
    found = [t for t in candidates if t.application and _convs(t.application) == convs]
    if not found:
        raise BackendError(f"{source}: not a Keras {names} ({convs} convolutions)")
    twin = found[0]
    assert twin.application is not None
    model = twin.application.build(classes, "keras")
    try:
        with warnings_only_on_success():
            model.load_weights(path)
    except Exception as e:
        raise BackendError(
            f"{source}: does not fit Keras {twin.application.builder} ({first_line(e)})"
        ) from None
    return model, twin


def _convs(application: Application) -> int:
    return sum(layer.kind == "conv" for layer in application.layers(1))


def _convolutions_and_classes(handle: h5py.File) -> tuple[int, int]:
    """How many layers hold a 4-D kernel, and the class count of the last Dense layer's."""
    if "layers" in handle:  # Keras 3 .weights.h5: groups named by layer class and counter
        groups = {name: handle["layers"][name] for name in handle["layers"]}
        dense = max((n for n in groups if re.fullmatch(r"dense(_\d+)?", n)), key=_counter)
        head = groups[dense]["vars"]["0"]
    else:  # legacy .h5, as keras.applications downloads: groups named by layer
        layer_names = [
            n.decode() if isinstance(n, bytes) else n for n in handle.attrs["layer_names"]
        ]
        groups = {name: handle[name] for name in layer_names}
        head = next(d for d in _datasets(groups["predictions"]) if d.ndim == 2)
    convs = sum(any(d.ndim == 4 for d in _datasets(group)) for group in groups.values())
    return convs, int(head.shape[1])


def _counter(group_name: str) -> int:
    """Keras's counter in a group name: "dense" 0, "dense_2" 2."""
    return int(group_name.rsplit("_", 1)[1]) if "_" in group_name else 0


def _datasets(group: h5py.Group) -> list[h5py.Dataset]:
    found: list[h5py.Dataset] = []
    group.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return found


def _spelled(builders: list[str]) -> str:
    """ "DenseNet121/169/201", "DenseNet121/169/201 or VGG16/19": numbers after a shared name."""
    families: dict[str, list[str]] = {}
    for builder in builders:
        stem = builder.rstrip("0123456789")
        families.setdefault(stem, []).append(builder[len(stem) :])
    return " or ".join(stem + "/".join(numbers) for stem, numbers in families.items())


def save_keras(state: Mapping[str, np.ndarray], arch: str, path: Path, source: str) -> None:
    """Write torch's `state` as the twin's .weights.h5 to exactly `path` (Keras wants that
    suffix), saying which twin and how many classes. `source` names where the weights came
    from, for an error if they do not fit."""
    if not path.name.lower().endswith(".weights.h5"):
        raise BackendError(f"{path}: Keras writes weights only to a name ending .weights.h5")
    twin = load_all()[arch]
    classes = twin.num_classes(state)
    model = twin.build(classes)
    TwinLayout(twin).fill(model, state, source)
    model.save_weights(path)
    with h5py.File(path, "a") as handle:
        handle.attrs[ARCHITECTURE] = twin.name
        handle.attrs[CLASSES] = classes


def read_keras(path: Path, source: str | None = None) -> tuple[State, str]:
    """A Keras weights file as torchvision-layout arrays, and its twin's name: one gbp convert
    wrote, or one Keras wrote for a keras.applications model that is a twin (DenseNet, VGG).
    `source` names the file in errors the way the user gave it (default: `--weights PATH`)."""
    source = source or f"--weights {path}"
    if not path.is_file():
        raise BackendError(f"{source}: no such file")
    named = architecture(path)
    if named is not None:
        twin = load_all()[named]
        return TwinLayout(twin).state(from_h5(twin, path, source)), named
    own = [twin for twin in load_all().values() if twin.application]
    model, twin = keras_own_file(path, source, own)
    assert twin.application is not None
    return TwinLayout(twin, twin.application.layers).state(model), twin.name


def architecture(path: Path) -> str | None:
    """The twin a .weights.h5 that gbp convert wrote is for."""
    try:
        with h5py.File(path, "r") as handle:
            name = handle.attrs.get(ARCHITECTURE)
    except OSError:
        return None
    return str(name) if name is not None and str(name) in load_all() else None


class TwinLayout(Layout):
    """A twin's weights in torchvision's layout, so that both backends save, load, compare and
    re-initialise the very same tensors, and cut gbp sanity's stages alike. `layers` is the
    table of the Keras network it reads (default: the twin's own; keras.applications' names for
    its application)."""

    def __init__(self, twin: Twin, layers: Callable[[int], Table] | None = None) -> None:
        self.twin = twin
        self.layers = layers or twin.layers

    def table(self, model: keras.Model) -> Table:
        return self.layers(int(model.outputs[0].shape[-1]))

    def state(self, model: keras.Model) -> dict[str, np.ndarray]:
        by_name = {layer.name: layer for layer in model.layers}
        table = self.table(model)
        return from_keras(table, {row.keras: by_name[row.keras].get_weights() for row in table})

    def load_state(self, model: keras.Model, state: dict[str, np.ndarray]) -> None:
        self.fill(model, state, "weights")

    def fill(self, model: keras.Model, state: Mapping[str, np.ndarray], source: str) -> None:
        """Set every layer of the table from torch's arrays; `source` names them in an error."""
        try:
            by_name = {layer.name: layer for layer in model.layers}
            for name, arrays in to_keras(self.table(model), state).items():
                by_name[name].set_weights(arrays)
        except (KeyError, ValueError) as e:
            title = self.twin.keras_title
            raise BackendError(f"{source}: does not fit {title} ({first_line(e)})") from None

    def stages(self, model: keras.Model) -> Stages:
        return self.twin.stages(keys(self.table(model)))

    def random_state(self, model: keras.Model, seed: int) -> dict[str, np.ndarray]:
        """The twin's numpy draw: the torch backend's very arrays for the same seed."""
        return self.twin.random_state(int(model.outputs[0].shape[-1]), seed)
