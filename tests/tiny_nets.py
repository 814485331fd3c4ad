"""A small torch classifier for the library's tests: built in memory, as a notebook user's model
is, or by the factory name `tests.tiny_nets:build`, as `gbp explain --model` takes it. It has
what eval mode changes (BatchNorm with non-trivial statistics, Dropout), ReLUs spelled two ways
and a spatial feature map for Grad-CAM; an explanation at 64×64 takes milliseconds."""

from __future__ import annotations

import torch
from torch import Tensor, nn

FACTORY = "tests.tiny_nets:build"
CLASSES = 10


class TinyNet(nn.Module):
    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(16, classes)
        self.refuse_batches_of: int | None = None  # to make a forward pass fail mid-call

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] == self.refuse_batches_of:
            raise RuntimeError(f"TinyNet refuses batches of {x.shape[0]}")
        return self.head(self.dropout(self.features(x).mean((2, 3))))


def build(seed: int = 0) -> TinyNet:
    """Seeded weights, BatchNorm statistics and affine terms not the trivial ones."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TinyNet()
    norm = net.features[1]
    with torch.no_grad():
        norm.running_mean.copy_(torch.randn(8, generator=generator) * 0.1)
        norm.running_var.copy_(torch.rand(8, generator=generator) + 0.5)
        norm.weight.copy_(torch.rand(8, generator=generator) + 0.5)
        norm.bias.copy_(torch.randn(8, generator=generator) * 0.1)
    return net
