"""Cascading randomization (Adebayo et al. 2018) for any torch model: its stages from the output
back, and a seeded re-initialisation of every weight.

A twin is cut and re-drawn by its twin (backends/twins/), exactly as the TF backend does it, so
`gbp sanity` gives both the same stages and the same arrays. Other torchvision networks of a
family with blocks (DenseNet, ResNet, VGG, MobileNet) are cut by the same splitter
(backends/stages.py); anything else into about eight groups of its weighted modules, in order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torchvision import models

from ..stages import Stages, family_stages, grouped
from ..twins.registry import load_all

# torchvision's classes whose blocks gbp sanity follows, by family (backends/stages.py).
FAMILIES: tuple[tuple[type[nn.Module] | tuple[type[nn.Module], ...], str], ...] = (
    (models.DenseNet, "densenet"),
    (models.ResNet, "resnet"),
    (models.VGG, "vgg"),
    ((models.MobileNetV2, models.MobileNetV3), "mobilenet"),
)


def stages(model: nn.Module, arch: str) -> Stages:
    """The stages for this network, from the output back; every weight is in exactly one."""
    state = model.state_dict()
    twin = load_all().get(arch)
    if twin is not None and twin.matches(state):
        return twin.stages(state)
    family = next((name for kind, name in FAMILIES if isinstance(model, kind)), None)
    return (family_stages(family, state) if family else None) or generic_stages(model)


def generic_stages(model: nn.Module) -> Stages:
    """The weighted modules in order, each by its own weights: the last one (the head) alone,
    the rest in seven groups, each named by its first module path."""
    keys = set(model.state_dict())
    units: list[tuple[str, tuple[str, ...]]] = []
    for path, module in model.named_modules():
        own = [
            f"{path}.{n}" if path else n
            for n in (*module._parameters, *module._buffers)
            if (f"{path}.{n}" if path else n) in keys
        ]
        if own:
            leaf = path and not any(True for _ in module.children())
            units.append((path or own[0], (f"{path}.",) if leaf else tuple(own)))
    return grouped(units)


def random_state(
    model: nn.Module,
    arch: str,
    num_classes: int,
    seed: int,
    rebuild: Callable[..., nn.Module] | None = None,
) -> dict[str, np.ndarray]:
    """Every weight re-drawn, seeded, in `model.state_dict()`'s layout: a twin's from its numpy
    initialisation (the TF backend's very arrays), other torchvision networks from their own
    builder, anyone's model by each module's `reset_parameters`."""
    twin = load_all().get(arch)
    if twin is not None and twin.matches(model.state_dict()):
        return twin.random_state(num_classes, seed)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        fresh = rebuild(num_classes=num_classes) if rebuild else _reset(model)
    state = {k: v.detach().cpu().numpy().copy() for k, v in fresh.state_dict().items()}
    missing = set(model.state_dict()) ^ set(state)
    if missing:
        raise ValueError(f"the re-initialised {arch} differs in keys: {sorted(missing)[:3]}")
    return state


def _reset(model: nn.Module) -> nn.Module:
    """A copy with each module's own `reset_parameters` run (BatchNorm statistics too); weights
    no module resets (a class token) are drawn from a normal of their own spread."""
    fresh = copy.deepcopy(model).cpu()
    done: set[int] = set()
    for module in fresh.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
            done.update(id(p) for p in module.parameters(recurse=False))
    for parameter in fresh.parameters():
        if id(parameter) not in done:
            spread = float(parameter.float().std()) if parameter.numel() > 1 else 0.0
            parameter.normal_(0.0, spread or 0.02)
    return fresh
