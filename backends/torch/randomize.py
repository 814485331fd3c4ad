"""Cascading randomization (Adebayo et al. 2018) for any torch model: its stages from the output
back, and a seeded re-initialisation of every weight.

Stages follow each family's own blocks where torchvision names them (DenseNet, ResNet, VGG,
MobileNet); any other network is cut into about eight groups of its weighted layers, in order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torchvision import models
from torchvision.models.mobilenetv2 import InvertedResidual as InvertedResidualV2
from torchvision.models.mobilenetv3 import InvertedResidual as InvertedResidualV3

from ..twins.densenet import BLOCKS, STAGES, random_weights

Stages = list[tuple[str, tuple[str, ...]]]  # (stage name, state_dict key prefixes), output first

DENSENET_STAGES: Stages = STAGES  # the same cut in both backends
RESNET_STAGES: Stages = [
    ("fc", ("fc.",)),
    ("layer4", ("layer4.",)),
    ("layer3", ("layer3.",)),
    ("layer2", ("layer2.",)),
    ("layer1", ("layer1.",)),
    ("stem", ("conv1.", "bn1.")),
]
GROUPS = 8  # stages for a network gbp knows no blocks of: the head, then seven groups


def stages(model: nn.Module, arch: str) -> Stages:
    """The stages for this network, from the output back; every weight is in exactly one."""
    keys = list(model.state_dict())
    if isinstance(model, models.DenseNet):
        found = DENSENET_STAGES
    elif isinstance(model, models.ResNet):
        found = RESNET_STAGES
    elif isinstance(model, models.VGG):
        found = _vgg(model)
    elif isinstance(model, models.MobileNetV2 | models.MobileNetV3):
        found = _mobilenet(model)
    else:
        return generic_stages(model)
    covered = [k for k in keys if any(k.startswith(p) for _, ps in found for p in ps)]
    return found if len(covered) == len(keys) else generic_stages(model)


def _weighted(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _vgg(model: nn.Module) -> Stages:
    """classifier, then the conv groups between max-pools: conv5 … conv1, as in the paper."""
    groups: list[list[str]] = [[]]
    for index, layer in enumerate(model.features):  # type: ignore[arg-type]
        if isinstance(layer, nn.MaxPool2d):
            groups.append([])
        elif _weighted(layer):
            groups[-1].append(f"features.{index}.")
    groups = [g for g in groups if g]
    named = [(f"conv{i}", tuple(g)) for i, g in enumerate(groups, start=1)]
    return [("classifier", ("classifier.",)), *reversed(named)]


def _mobilenet(model: nn.Module) -> Stages:
    """classifier, the last 1×1 conv, the inverted-residual blocks grouped by their output
    width (one group per stage of the paper's table), and the stem."""
    runs: list[tuple[list[int], object]] = []  # (block indices, what groups them)
    for index, layer in enumerate(model.features):  # type: ignore[arg-type]
        if isinstance(layer, InvertedResidualV2 | InvertedResidualV3):
            width = layer.out_channels
            if runs and runs[-1][1] == width:
                runs[-1][0].append(index)
                continue
            runs.append(([index], width))
        else:
            runs.append(([index], f"layer {index}"))
    named = []
    for indices, _ in runs:
        first, last = indices[0], indices[-1]
        name = "stem" if first == 0 else f"features.{first}" + (f"-{last}" if last > first else "")
        named.append((name, tuple(f"features.{i}." for i in indices)))
    return [("classifier", ("classifier.",)), *reversed(named)]


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
    if len(units) <= GROUPS:
        return list(reversed(units))
    head, body = units[-1], units[:-1]
    groups = [g for g in np.array_split(np.arange(len(body)), GROUPS - 1) if len(g)]
    named = [(body[g[0]][0], tuple(p for i in g for p in body[i][1])) for g in groups]
    return [head, *reversed(named)]


def random_state(
    model: nn.Module,
    arch: str,
    num_classes: int,
    seed: int,
    rebuild: Callable[..., nn.Module] | None = None,
) -> dict[str, np.ndarray]:
    """Every weight re-drawn, seeded, in `model.state_dict()`'s layout: DenseNets from the shared
    numpy initialisation (both backends alike), torchvision networks from their own builder,
    anyone's model by each module's `reset_parameters`."""
    if isinstance(model, models.DenseNet) and arch in BLOCKS:
        return random_weights(arch, num_classes, seed)
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
