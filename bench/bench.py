"""Speed of gbp against its baselines, measured in one run on one machine; reports ratios.

    python bench/bench.py [--batch 1 8] [--repeat 7] [--cases guided vanilla]

Timing lives here, never in the tests.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np


def median_ms(step: Callable[[], object], repeat: int, per: int) -> float:
    """Median wall time of `step` after one warm-up call, in ms per image."""
    step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000 / per


def torch_cases(batch: int) -> dict[str, Callable[[], object]]:
    """(a) gbp's torch guided backprop and (b) the plain input gradient it must match in speed."""
    import torch

    from backends.base import ModelInfo, WeightsSpec
    from backends.torch_backend import TorchBackend
    from backends.torch_weights import build_model

    model, name = build_model(WeightsSpec("random"))
    backend = TorchBackend(model, ModelInfo("torch", name, 1000, WeightsSpec("random"), "cpu"))
    images = np.random.default_rng(0).normal(size=(batch, 224, 224, 3)).astype(np.float32)
    x = torch.from_numpy(images).permute(0, 3, 1, 2)  # the same channels-last input

    def vanilla_floor() -> object:
        leaf = x.detach().requires_grad_(True)
        logits = backend.model(leaf)
        score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
        return torch.autograd.grad(score, leaf)

    return {
        "torch guided (gbp)": lambda: backend.explain(images, ["guided"]),
        "torch vanilla gradient (floor)": vanilla_floor,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}")
    for batch in args.batch:
        cases = torch_cases(batch)
        results = {name: median_ms(step, args.repeat, batch) for name, step in cases.items()}
        floor = results["torch vanilla gradient (floor)"]
        for name, ms in results.items():
            print(f"batch {batch:2d}  {name:34s} {ms:8.1f} ms/image  {ms / floor:5.2f}× floor")


if __name__ == "__main__":
    main()
