"""A twin's untrained weights, drawn once in numpy from its layer table, as its torch family
initialises them: the same seed gives the same arrays to both backends, for `--weights random`
and for each stage `gbp sanity` re-initialises (Adebayo et al.'s cascading randomization).

The spreads are torch's own, family by family, so that a re-initialised layer is what a fresh
torch network would hold (ResNet's fc: std 0.026, not Kaiming's 0.062).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .table import BN, COUNTER, State, Table


@dataclass(frozen=True)
class Init:
    """How a family's torch code initialises its weights. BatchNorm: unit scale and variance,
    zero shift and mean, in every family; conv biases: zero (torchvision's VGG)."""

    # Kaiming-normal, N(0, √(2/fan)), over fan_in or fan_out (`nn.init.kaiming_normal_`), or
    # torch's own Conv2d default, U(±1/√fan_in), where the code sets none.
    conv: Literal["fan_in", "fan_out", "default"]
    # torch's own Linear default, U(±1/√fan_in), or N(0, 0.01) (VGG, MobileNetV2).
    dense: Literal["default", "normal"]
    # zero, or torch's own Linear default, U(±1/√fan_in).
    dense_bias: Literal["zero", "default"]


def random_state(table: Table, init: Init, seed: int) -> State:
    """Every weight of the table drawn from `seed`, in torch's key order: float32 arrays, and
    int64 zeros for the BatchNorm counters. One draw per weight, in the table's order."""
    rng = np.random.default_rng(seed)
    state: dict[str, np.ndarray] = {}
    for layer in table:
        prefix, shape = layer.torch, layer.shape
        if layer.kind == "bn":
            n = shape[0]
            values = (np.ones(n), np.zeros(n), np.zeros(n), np.ones(n))
            state.update({f"{prefix}.{p}": v for p, v in zip(BN, values, strict=True)})
            state[f"{prefix}.{COUNTER}"] = np.zeros((), np.int64)
            continue
        fan_in = int(np.prod(shape[1:]))
        bound = 1.0 / np.sqrt(fan_in)  # torch's default for Conv2d and Linear alike
        if layer.kind == "dense":
            if init.dense == "normal":
                state[f"{prefix}.weight"] = rng.normal(0.0, 0.01, shape)
            else:
                state[f"{prefix}.weight"] = rng.uniform(-bound, bound, shape)
            if layer.bias:
                state[f"{prefix}.bias"] = (
                    rng.uniform(-bound, bound, shape[:1])
                    if init.dense_bias == "default"
                    else np.zeros(shape[:1])
                )
            continue
        if init.conv == "default":
            state[f"{prefix}.weight"] = rng.uniform(-bound, bound, shape)
        else:
            fan = fan_in if init.conv == "fan_in" else shape[0] * int(np.prod(shape[2:]))
            state[f"{prefix}.weight"] = rng.normal(0.0, np.sqrt(2.0 / fan), shape)
        if layer.bias:
            state[f"{prefix}.bias"] = np.zeros(shape[:1])
    return {k: v if v.dtype == np.int64 else v.astype(np.float32) for k, v in state.items()}
