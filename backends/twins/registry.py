"""Keras networks that compute exactly what a torchvision (or torch-package) network computes,
so one set of weights gives the same map in both backends. Each family registers a `Replica`:
how to build it in Keras, and how its weights move between the two layouts, bit-exactly.

The DenseNets live in backends/densenet.py (their Keras twin is keras.applications' own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..base import Preprocessing

IMAGENET = Preprocessing()  # torchvision's eval transform: 256, centre 224, ImageNet mean/std

State = dict[str, np.ndarray]  # torchvision state_dict names → arrays
KerasWeights = dict[str, list[np.ndarray]]  # Keras layer name → layer.get_weights()


@dataclass(frozen=True)
class Replica:
    """One architecture in both frameworks."""

    name: str  # its --model name (torchvision's, or efficientnet_lite0)
    build: Callable[[int], Any]  # num_classes → a Keras model with logits out
    to_keras: Callable[[Mapping[str, np.ndarray]], KerasWeights]  # exact
    from_keras: Callable[[Mapping[str, list[np.ndarray]]], State]  # the exact inverse
    matches: Callable[[Mapping[str, Any]], bool]  # whether a state_dict is this architecture
    cam_layer: str  # the Keras layer whose output is torch's Grad-CAM layer's
    num_classes: Callable[[Mapping[str, Any]], int]  # a state_dict's class count
    preprocessing: Preprocessing = IMAGENET  # what its torch weights were trained with


REPLICAS: dict[str, Replica] = {}
FAMILIES = ("lite0", "mobilenet", "resnet", "vgg")  # they register


def load_all() -> dict[str, Replica]:
    """Every replica, its module imported (each registers itself; none imports a framework)."""
    import importlib

    for family in FAMILIES:
        try:
            importlib.import_module(f".{family}", __package__)
        except ImportError:  # a family not written yet is simply not there
            continue
    return REPLICAS


def register(replica: Replica) -> Replica:
    REPLICAS[replica.name] = replica
    return replica


def recognize(state: Mapping[str, Any]) -> Replica | None:
    """The replica a torchvision state_dict is for, if any."""
    return next((r for r in load_all().values() if r.matches(state)), None)


def conv_to_keras(weight: np.ndarray) -> np.ndarray:
    """OIHW → HWIO."""
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)))


def conv_from_keras(kernel: np.ndarray) -> np.ndarray:
    """HWIO → OIHW."""
    return np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))


def depthwise_to_keras(weight: np.ndarray) -> np.ndarray:
    """torch (C, 1, H, W) → Keras DepthwiseConv2D (H, W, C, 1)."""
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 0, 1)))


def depthwise_from_keras(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(kernel, (2, 3, 0, 1)))


BN = ("weight", "bias", "running_mean", "running_var")  # = Keras gamma, beta, mean, variance
