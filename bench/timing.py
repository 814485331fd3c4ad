"""What the bench scripts share: timing steps turn about, and putting a table into the README."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"


def machine() -> str:
    """The CPU's name, its cores and Python's version, for the line above a results table."""
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


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


def publish(name: str, results: dict, text: str, readme: bool, marker: str | None = None) -> None:
    """bench/results-NAME.json and .md, the table printed, and with `readme` put into README.md
    between its markers (`marker`, else NAME)."""
    (HERE / f"results-{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (HERE / f"results-{name}.md").write_text(text)
    print(text)
    if readme:
        into_readme(marker or name, text)
