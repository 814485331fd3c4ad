"""Shared fixtures: seeded checkpoints and photos the tests make themselves (no network here)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BLOCKED_PROXY = "http://127.0.0.1:9"  # discard port: any download attempt fails at once


def make_photo(
    path: Path, size: tuple[int, int] = (96, 64), seed: int = 0, mode: str = "RGB"
) -> Path:
    """A smooth random photo-like image, so saliency has structure to follow."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [np.sin(xx / (5 + 3 * c) + rng.uniform(0, 6)) * np.cos(yy / (7 + c)) for c in range(3)], -1
    )
    noise = rng.normal(0, 0.1, (h, w, 3))
    pixels = np.clip((base + noise) * 100 + 128, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").convert(mode).save(path)
    return path


def randomize_batchnorm(model, seed: int = 1) -> None:
    """Give every BatchNorm non-trivial statistics and affine terms, as a trained model has."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)


def seeded_densenet(arch: str = "densenet201", num_classes: int = 1000, seed: int = 0):
    """A torchvision DenseNet with seeded random weights and non-trivial BatchNorm statistics."""
    import torch
    from torchvision import models

    torch.manual_seed(seed)
    model = getattr(models, arch)(num_classes=num_classes).eval()
    randomize_batchnorm(model, seed + 1)
    return model


@pytest.fixture(scope="session")
def densenet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded DenseNet201 state_dict on disk, as a user's --weights PATH would be."""
    torch = pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("weights") / "densenet201-seeded.pth"
    torch.save(seeded_densenet().state_dict(), path)
    return path


@pytest.fixture
def offline_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME with every download blocked."""
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, BLOCKED_PROXY)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    return home


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of two small generated photos."""
    folder = tmp_path / "photos"
    make_photo(folder / "a.png", seed=1)
    make_photo(folder / "b.jpg", size=(80, 120), seed=2)
    return folder


@pytest.fixture(autouse=True)
def _quiet_threads() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
