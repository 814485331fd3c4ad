"""What the torch backend can explain, described without weights: each torchvision classifier
built on the meta device (no memory, no initialisation) and probed once."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torchvision import models

from .base import BackendError, ModelInfo, WeightsSpec
from .densenet import BLOCKS
from .replicas import load_all
from .torch_models import probe
from .torch_weights import arch_kwargs, classifiers, zoo_preprocessing

BIGGEST_PROBED = 200_000_000  # parameters; larger networks are probed only when named


def names() -> list[str]:
    return classifiers()


def describe(name: str, always: bool = False) -> ModelInfo:
    """A torchvision classifier's input size, activations and Grad-CAM layer; networks too big
    to build quickly are left unprobed (empty activations) unless `always`."""
    pre = zoo_preprocessing(name)
    meta = models.get_model_weights(name).DEFAULT.meta
    info = ModelInfo(
        "torch", name, 1000, WeightsSpec("random"), "meta", preprocessing=pre,
        twin=name if name in BLOCKS or name in load_all() else None,
    )  # fmt: skip
    if meta.get("num_params", 0) > BIGGEST_PROBED and not always:
        return info
    kwargs = arch_kwargs(name, aux=False)
    try:
        with torch.device("meta"):
            module = models.get_model(name, **kwargs).eval()
    except (NotImplementedError, RuntimeError):  # builders that compute with tensors (RegNet)
        module = models.get_model(name, **kwargs).eval()
    found = probe(module, pre.size, name)
    return ModelInfo(
        "torch", name, found.num_classes, info.weights, "meta", preprocessing=pre,
        activations=found.activations, unruled=found.unruled, cam_layer=found.cam_layer,
        twin=info.twin,
    )  # fmt: skip


def catalog(wanted: list[str] | None = None) -> Iterator[ModelInfo]:
    """Every classifier (or the ones named), described."""
    known = names()
    for name in wanted or known:
        if name not in known:
            raise BackendError(f"{name}: not a torchvision classifier")
        yield describe(name, always=bool(wanted))
