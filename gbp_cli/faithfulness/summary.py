"""Over the inputs: each (map, score)'s mean with a 95% t-interval, and the best map per score.

The interval is Student's t: mean ± t(0.975, n − 1) · s / √n, s the sample standard deviation
over the n inputs — the usual interval for a mean, honest with the few photos a user may have
(a percentile bootstrap undercovers there); it needs n ≥ 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gbp_cli.faithfulness.metrics import Score

INTERVAL = "95% t-interval of the mean over the inputs"


@dataclass(frozen=True)
class Cell:
    """One (map, score) over the inputs."""

    map: str
    score: str
    mean: float
    low: float | None  # None with a single input
    high: float | None
    inputs: int


def t_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95% t-interval of the mean of `values`; None for fewer than two."""
    n = len(values)
    if n < 2:
        return None
    from scipy.stats import t

    mean = math.fsum(values) / n
    spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * spread / math.sqrt(n)
    return mean - half, mean + half


def summarize(
    scores: Iterable[dict[tuple[str, str], float]], maps: Sequence[str], kinds: Sequence[Score]
) -> list[Cell]:
    """One cell per map and score, from each input's scores, in the order of `maps` and
    `kinds`."""
    collected: dict[tuple[str, str], list[float]] = {}
    for each in scores:
        for key, value in each.items():
            collected.setdefault(key, []).append(value)
    cells = []
    for name in maps:
        for kind in kinds:
            values = collected.get((name, kind.name), [])
            if not values:
                continue
            interval = t_interval(values)
            low, high = interval if interval is not None else (None, None)
            mean = math.fsum(values) / len(values)
            cells.append(Cell(name, kind.name, mean, low, high, len(values)))
    return cells


def best(cells: Sequence[Cell], kinds: Sequence[Score]) -> dict[str, str]:
    """Score name → the map with the best mean (the first listed, on a tie)."""
    chosen = {}
    for kind in kinds:
        mine = [c for c in cells if c.score == kind.name]
        if mine:
            pick = min if kind.lower_is_better else max
            chosen[kind.name] = pick(mine, key=lambda c: c.mean).map
    return chosen


def wins(
    scores: Sequence[dict[tuple[str, str], float]],
    methods: Sequence[str],
    baselines: Sequence[str],
    kinds: Sequence[Score],
) -> dict[tuple[str, str, str], int]:
    """(method, baseline, score) → on how many inputs the method's map did strictly better than
    the baseline's on that input: a paired comparison, which the photos' own spread (most of the
    intervals' width) does not blur."""
    counted = {}
    for method in methods:
        for baseline in baselines:
            for kind in kinds:
                sign = -1 if kind.lower_is_better else 1
                counted[(method, baseline, kind.name)] = sum(
                    sign * (each[(method, kind.name)] - each[(baseline, kind.name)]) > 0
                    for each in scores
                    if (method, kind.name) in each and (baseline, kind.name) in each
                )
    return counted
