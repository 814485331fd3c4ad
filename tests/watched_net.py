"""A tiny torch classifier that watches its own autograd graph, for the memory tests: every ReLU's
backward node (the nodes gbp hooks) carries a canary hook, and `NODES` holds weak references to
the canaries. A canary dies only with its node, so a live one means that pass's graph outlived
the pass. Import it as the factory `tests.watched_net:build`."""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NODES: list[weakref.ref] = []  # one per ReLU run, in every pass


class Canary:
    """A backward hook that changes nothing; only its lifetime matters."""

    def __call__(self, *grads: object) -> None:
        return None


def watch(tensor: Tensor) -> Tensor:
    if tensor.grad_fn is not None:  # a pass without gradients builds no graph to watch
        canary = Canary()
        tensor.grad_fn.register_hook(canary)
        NODES.append(weakref.ref(canary))
    return tensor


class WatchedNet(nn.Module):
    """conv → ReLU → conv → ReLU (the Grad-CAM layer's output feeds it) → mean → linear, so that
    Grad-CAM's last gradient stops halfway down and leaves the lower half of the graph unwalked."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=2)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2)
        self.head = nn.Linear(6, 5)

    def forward(self, x: Tensor) -> Tensor:
        h = watch(F.relu(self.conv1(x)))
        h = watch(torch.relu(self.conv2(h)))
        return self.head(h.mean((2, 3)))


def build() -> nn.Module:
    torch.manual_seed(0)
    return WatchedNet()
