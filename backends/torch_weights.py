"""Torchvision DenseNets from ImageNet weights (torchvision's cache), a seed, or a state_dict."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision import models

from .base import BackendError, WeightsSpec
from .checkpoints import read_checkpoint
from .densenet import DEFAULT, architecture_of, random_weights
from .downloads import quiet_download
from .reasons import first_line


def build_model(weights: WeightsSpec) -> tuple[nn.Module, str]:
    """The model for `--weights`, and its architecture name."""
    if weights.kind == "imagenet":
        return imagenet_model(), DEFAULT
    if weights.kind == "random":
        state, arch = random_weights(DEFAULT, 1000, weights.seed), DEFAULT
        source = "random weights"
    else:
        assert weights.path is not None
        source = f"--weights {weights.path}"
        state = read_checkpoint(weights.path, source)
        arch = architecture_of(state, source)
    num_classes = state["classifier.weight"].shape[0]
    with torch.device("meta"):  # no time spent initialising weights about to be replaced
        model = getattr(models, arch)(num_classes=num_classes)
    load_strict(model, state, source)
    return model, arch


def imagenet_model() -> nn.Module:
    """DenseNet201 IMAGENET1K_V1 through torchvision's cache ($TORCH_HOME), or one clear error."""
    spec = models.DenseNet201_Weights.IMAGENET1K_V1
    filename = spec.url.rsplit("/", 1)[-1]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    was_cached = (folder / filename).is_file()
    try:
        with quiet_download():
            return models.densenet201(weights=spec)
    except Exception as e:  # offline: URLError/OSError; a damaged cache: RuntimeError and others
        if was_cached:
            raise BackendError(
                f"the cached ImageNet weights {folder / filename} cannot be loaded "
                f"({first_line(e)}); delete the file to download it again, or pass --weights PATH"
            ) from None
        raise BackendError(
            f"ImageNet weights {filename} are not cached and could not be downloaded "
            f"({first_line(e)}): put {spec.url} in {folder}/ (set TORCH_HOME to move it; "
            f"the same file serves --backend tf), or pass --weights PATH, or --weights random "
            f"to try the pipeline on an untrained network"
        ) from None


def load_strict(model: nn.Module, state: Mapping[str, np.ndarray], source: str) -> None:
    """load_state_dict, with its multi-line complaint cut down to one line."""
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}
    try:
        result = model.load_state_dict(tensors, strict=False, assign=True)
    except RuntimeError as e:
        detail = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e))
        raise BackendError(f"{source}: does not fit {type(model).__name__} ({detail})") from None
    problems = []
    if result.missing_keys:
        problems.append(f"{len(result.missing_keys)} missing, e.g. {result.missing_keys[0]}")
    if result.unexpected_keys:
        problems.append(
            f"{len(result.unexpected_keys)} unexpected, e.g. {result.unexpected_keys[0]}"
        )
    if problems:
        raise BackendError(f"{source}: keys do not match ({'; '.join(problems)})")
