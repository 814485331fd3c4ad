"""What the TensorFlow backend can explain. Keras builds a network in a second or more, so the
list names them all and probes only the networks asked for by name."""

from __future__ import annotations

from collections.abc import Iterator

from ..base import BackendError, ModelInfo, ModelSpec, Preprocessing, WeightsSpec
from ..twins.registry import load_all
from .models import known_names


def names() -> list[str]:
    return [name for name in known_names() if name != "PATH.keras"]


def imagenet_weights(name: str) -> str:
    """What `--weights imagenet` loads for this name: Keras's own, or torch's converted."""
    twin = load_all().get(name)
    if twin is not None and twin.application is None:
        return f"{twin.torch_weights}, converted (needs PyTorch)"
    if twin is not None and twin.application.normalize == "caffe":  # Keras trained its own VGGs
        return "Keras applications' own (caffe), not torchvision's"
    return "Keras applications' own"


def describe(name: str) -> ModelInfo:
    """A network built with seeded weights (no download) and probed: its activations and
    Grad-CAM layer."""
    from .backend import load

    return load(WeightsSpec("random"), "cpu", model=ModelSpec(name)).info


def listed(name: str) -> ModelInfo:
    """A network named without being built: its input size where it is known ahead."""
    found = load_all().get(name)
    size = found.preprocessing if found else Preprocessing(0 if ":" in name else 224)
    twin = name if found or not name.startswith("keras:") else None
    return ModelInfo("tf", name, 1000, WeightsSpec("random"), "cpu", preprocessing=size, twin=twin)


def catalog(wanted: list[str] | None = None) -> Iterator[ModelInfo]:
    """Every model by name (or the ones named, built and probed)."""
    known = names()
    for name in wanted or known:
        if name not in known:
            raise BackendError(f"{name}: the tf backend has no model of that name")
        yield describe(name) if wanted else listed(name)
