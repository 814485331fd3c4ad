"""Speed of gbp against its baselines, measured in one run on one machine; reports ratios.

    python bench/bench.py                 # torch guided vs the plain input gradient, batch 1 and 8
    python bench/bench.py --tf-modes      # the TF backend eager / graph / XLA, and first-call costs

Timing lives here, never in the tests. Weights are seeded random: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from backends import WeightsSpec, open_backend

RANDOM = WeightsSpec("random")


def median_ms(step: Callable[[], object], repeat: int, per: int) -> float:
    """Median wall time of `step` after one warm-up call, in ms per image."""
    step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000 / per


def images(batch: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(batch, 224, 224, 3)).astype(np.float32)


def torch_cases(batch: int) -> dict[str, Callable[[], object]]:
    """(a) gbp's torch guided backprop and (b) the plain input gradient, its floor."""
    import torch

    backend = open_backend("torch", RANDOM, "cpu")
    x = images(batch)
    leaf_source = torch.from_numpy(x).permute(0, 3, 1, 2)  # the same channels-last input

    def vanilla_floor() -> object:
        leaf = leaf_source.detach().requires_grad_(True)
        logits = backend.model(leaf)  # type: ignore[attr-defined]
        score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
        return torch.autograd.grad(score, leaf)

    return {
        "torch guided (gbp)": lambda: backend.explain(x, ["guided"]),
        "torch vanilla gradient (floor)": vanilla_floor,
    }


def torch_report(batches: list[int], repeat: int) -> None:
    for batch in batches:
        results = {n: median_ms(s, repeat, batch) for n, s in torch_cases(batch).items()}
        floor = results["torch vanilla gradient (floor)"]
        for name, ms in results.items():
            print(f"batch {batch:2d}  {name:34s} {ms:8.1f} ms/image  {ms / floor:5.2f}× floor")


def tf_modes_report(batches: list[int], repeat: int) -> None:
    """Each TF execution mode: the first call (trace/compile included) and the steady state."""
    backend = open_backend("tf", RANDOM, "cpu")
    for batch in batches:
        x = images(batch)
        for mode in ("eager", "graph", "xla"):
            backend.mode, backend.batch_size = mode, batch  # type: ignore[attr-defined]
            backend._functions.clear()  # type: ignore[attr-defined]
            start = time.perf_counter()
            backend.explain(x, ["guided"])
            first = time.perf_counter() - start
            ms = median_ms(lambda x=x: backend.explain(x, ["guided"]), repeat, batch)
            overhead = first - ms * batch / 1000
            print(
                f"batch {batch:2d}  tf guided {mode:5s}  first call {first:6.2f} s "
                f"(+{overhead:5.2f} s)  steady {ms:7.1f} ms/image"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--tf-modes", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.platform()}")
    if args.tf_modes:
        tf_modes_report(args.batch, args.repeat)
    else:
        torch_report(args.batch, args.repeat)


if __name__ == "__main__":
    main()
