"""Cascading randomization's stages (Adebayo et al. 2018), cut from torchvision-layout state_dict
keys: gbp sanity re-initialises a network stage by stage from the output back, and each stage is
(name, the state keys' prefixes it re-initialises).

The cut depends on the keys (and shapes) alone, so both backends, whose twins hold torchvision's
layout, cut one network the same way. A family's own cut follows its blocks as the paper does
(DenseNet's blocks and transitions, ResNet's layers, VGG's conv groups, MobileNet's
inverted-residual stages); any other network is cut into its weighted modules in about eight
groups. numpy only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Stages = list[tuple[str, tuple[str, ...]]]  # (stage name, state key prefixes), output first
GROUPS = 8  # stages for a network cut by its modules: the head, then seven groups

DENSENET: Stages = [
    ("classifier", ("classifier.",)),
    ("block4", ("features.denseblock4.", "features.norm5.")),
    ("transition3", ("features.transition3.",)),
    ("block3", ("features.denseblock3.",)),
    ("transition2", ("features.transition2.",)),
    ("block2", ("features.denseblock2.",)),
    ("transition1", ("features.transition1.",)),
    ("block1", ("features.denseblock1.",)),
    ("stem", ("features.conv0.", "features.norm0.")),
]
RESNET: Stages = [
    ("fc", ("fc.",)),
    ("layer4", ("layer4.",)),
    ("layer3", ("layer3.",)),
    ("layer2", ("layer2.",)),
    ("layer1", ("layer1.",)),
    ("stem", ("conv1.", "bn1.")),
]


def split(state: Mapping[str, Any], family: str | None) -> Stages:
    """The family's own cut where it covers every key, else the weighted modules in groups."""
    return (family_stages(family, state) if family else None) or grouped(modules(state))


def family_stages(family: str, state: Mapping[str, Any]) -> Stages | None:
    """The family's cut of these keys, or None where some key falls outside it."""
    cut = CUTS[family](state)
    return cut if cut and covers(cut, state) else None


def covers(stages: Stages, keys: Mapping[str, Any] | Sequence[str]) -> bool:
    return all(key.startswith(tuple(p for _, ps in stages for p in ps)) for key in keys)


def modules(state: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """The modules that hold the keys, in order, each with its own keys."""
    owned: dict[str, list[str]] = {}
    for key in state:
        owned.setdefault(key.rsplit(".", 1)[0], []).append(key)
    return [(module, tuple(keys)) for module, keys in owned.items()]


def grouped(units: Sequence[tuple[str, tuple[str, ...]]]) -> Stages:
    """Weighted units in network order (name, prefixes) as stages from the output back: the last
    one (the head) alone, the rest in GROUPS − 1 groups, each named by its first unit."""
    if len(units) <= GROUPS:
        return list(reversed(units))
    head, body = units[-1], units[:-1]
    groups = [g for g in np.array_split(np.arange(len(body)), GROUPS - 1) if len(g)]
    named = [(body[g[0]][0], tuple(p for i in g for p in body[i][1])) for g in groups]
    return [head, *reversed(named)]


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def _features(state: Mapping[str, Any]) -> dict[int, list[str]] | None:
    """`features.N.…` keys by N, in order; None if some features key is not numbered."""
    found: dict[int, list[str]] = {}
    for key in state:
        if key.startswith("features."):
            index = key.split(".")[1]
            if not index.isdigit():
                return None
            found.setdefault(int(index), []).append(key)
    return dict(sorted(found.items()))


def _vgg(state: Mapping[str, Any]) -> Stages | None:
    """classifier, then the conv groups between max-pools, conv5 … conv1. In torchvision's
    `make_layers` the convs of a group sit a fixed step apart in `features` (conv, [bn,] relu)
    and a max-pool between two groups adds one more."""
    layers = _features(state)
    if not layers:
        return None
    convs = [i for i, keys in layers.items() if any(len(_shape(state[k])) == 4 for k in keys)]
    step = min((b - a for a, b in itertools.pairwise(convs)), default=0)
    groups: list[list[int]] = []
    last = None
    for index in layers:
        if index in convs:
            if last is None or index - last > step:
                groups.append([])
            last = index
        if groups:
            groups[-1].append(index)
    named = [(f"conv{n}", tuple(f"features.{i}." for i in g)) for n, g in enumerate(groups, 1)]
    return [("classifier", ("classifier.",)), *reversed(named)]


def _mobilenet(state: Mapping[str, Any]) -> Stages | None:
    """classifier, then `features` from the top: the inverted-residual blocks (V2's hold
    `conv.` keys, V3's `block.` ones) grouped by output width, their last convolution's
    (one group per stage of the paper's table), every other layer alone, and the stem."""
    layers = _features(state)
    if not layers:
        return None
    runs: list[tuple[list[int], object]] = []  # (indices, what groups them)
    for index, keys in layers.items():
        inner = (f"features.{index}.conv.", f"features.{index}.block.")
        if any(key.startswith(inner) for key in keys):
            kernels = [_shape(state[k]) for k in keys if len(_shape(state[k])) == 4]
            width = kernels[-1][0]
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


CUTS: dict[str, Callable[[Mapping[str, Any]], Stages | None]] = {
    "densenet": lambda _: DENSENET,
    "resnet": lambda _: RESNET,
    "vgg": _vgg,
    "mobilenet": _mobilenet,
}
