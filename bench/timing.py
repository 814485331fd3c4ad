"""What the bench scripts share: timing steps turn about, and putting a table into the README."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def turn_about(steps: dict[str, Callable[[], object]], repeat: int, per: int) -> dict[str, float]:
    """Each step once to warm up, then `repeat` rounds taking the steps in turn, so that drift in
    a shared machine's speed touches all alike; the median ms per item (`per` items a call)."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        step()
    for _ in range(repeat):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1000 / per for name, t in times.items()}


def into_readme(marker: str, text: str) -> None:
    """Replace what README.md holds between <!-- MARKER:start --> and <!-- MARKER:end -->."""
    start, end = f"<!-- {marker}:start -->\n", f"<!-- {marker}:end -->"
    head, rest = README.read_text().split(start)
    README.write_text(head + start + text + rest[rest.index(end) :])
