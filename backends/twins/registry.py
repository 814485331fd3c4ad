"""Networks that compute the same function in torch and in Keras — twins — so one set of weights
gives the same map in both backends. Each family module registers a `Twin`: its table of
weighted layers (backends/twins/table.py), from which its weights move between the two layouts
bit-exactly, are recognised in a file and are drawn at random; how to build it in Keras; and its
stages for gbp sanity. numpy only: Keras is imported when a network is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import Preprocessing
from ..stages import Stages, split
from . import table as tables
from .initialization import Init, random_state
from .table import KerasWeights, State, Table

IMAGENET = Preprocessing()  # torchvision's eval transform: 256, centre 224, ImageNet mean/std
# The family modules, in the order `gbp models` and the tf backend's messages list them.
FAMILIES = ("densenet", "vgg", "lite0", "mobilenet", "resnet")


@dataclass(frozen=True)
class Application:
    """keras.applications' own model of a twin's network, which TensorFlow uses with Keras's own
    ImageNet weights (and, for VGG, with seeds, so that a name means one Keras network)."""

    builder: str  # its keras.applications name: "DenseNet121", "VGG16"
    layers: Callable[[int], Table]  # num_classes → its weighted layers, by its own layer names
    normalize: str  # what its own ImageNet weights expect: "imagenet" or "caffe"
    # (num_classes, whose numbers it will hold) → the model, computing as torch does: "imagenet",
    # Keras's own, downloaded now; "keras", Keras's own from a file; None, torch's.
    build: Callable[[int, str | None], Any]


@dataclass(frozen=True)
class Twin:
    """One network in both frameworks."""

    name: str  # its --model name (torchvision's, or efficientnet_lite0)
    family: str | None  # its cut into gbp sanity's stages (backends/stages.py); None: in groups
    layers: Callable[[int], Table]  # num_classes → its weighted layers, torch and Keras names
    head: str  # the state_dict key of its classifier's weight, whose rows are the classes
    build: Callable[[int], Any]  # num_classes → the Keras network with logits out
    cam_layer: str  # the Keras layer whose output is torch's Grad-CAM layer's
    init: Init  # how its torch code initialises it
    preprocessing: Preprocessing = IMAGENET  # what its torch weights were trained with
    title: str = ""  # how an error line names its Keras network (default: its name)
    application: Application | None = None
    # For a family whose weight files say which member they are (the DenseNets): the member a
    # state_dict is (its name), or a BackendError that says what the file seems to be.
    member_of: Callable[[Mapping[str, Any], str], str] | None = None
    torch_weights: str = "torchvision's"  # whose ImageNet weights torch loads (TF converts them)

    @property
    def keras_title(self) -> str:
        return self.title or self.name

    def num_classes(self, state: Mapping[str, Any]) -> int:
        return int(tables.shape_of(state[self.head])[0])

    def matches(self, state: Mapping[str, Any]) -> bool:
        """Whether a state_dict is exactly this network (any class count)."""
        if self.head not in state or len(tables.shape_of(state[self.head])) != 2:
            return False
        return tables.matches(self.layers(self.num_classes(state)), state)

    def to_keras(self, state: Mapping[str, Any]) -> KerasWeights:
        return tables.to_keras(self.layers(self.num_classes(state)), state)

    def from_keras(self, weights: Mapping[str, Sequence[np.ndarray]]) -> State:
        """The exact inverse of `to_keras`; any layer's `get_weights()` may be given."""
        head = next(layer for layer in self.layers(1) if f"{layer.torch}.weight" == self.head)
        classes = int(np.shape(weights[head.keras][0])[-1])  # a Dense kernel is (in, out)
        return tables.from_keras(self.layers(classes), weights)

    def random_state(self, num_classes: int, seed: int) -> State:
        """Untrained weights drawn in numpy: the same arrays for both backends."""
        return random_state(self.layers(num_classes), self.init, seed)

    def stages(self, state: Mapping[str, Any]) -> Stages:
        """gbp sanity's stages over its torchvision-layout state (arrays or shapes)."""
        return split(state, self.family)


TWINS: dict[str, Twin] = {}


def load_all() -> dict[str, Twin]:
    """Every twin, its family module imported (each registers its own; none imports a
    framework)."""
    for family in FAMILIES:
        importlib.import_module(f".{family}", __package__)
    return TWINS


def register(twin: Twin) -> Twin:
    TWINS[twin.name] = twin
    return twin


def recognize(state: Mapping[str, Any]) -> Twin | None:
    """The twin a torchvision state_dict is exactly, if any."""
    return next((twin for twin in load_all().values() if twin.matches(state)), None)
