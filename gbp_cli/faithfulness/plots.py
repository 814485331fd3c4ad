"""`gbp evaluate`'s picture: the mean curve of each map, one panel per metric."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from gbp_cli.faithfulness import BASELINES
from gbp_cli.faithfulness.evaluation import Evaluated
from gbp_cli.faithfulness.metrics import SCORES, Settings
from gbp_cli.faithfulness.summary import Cell

TITLES = {
    "deletion": "Deletion: most relevant pixels removed\n(lower is better)",
    "insertion": "Insertion: most relevant pixels into a blur\n(higher is better)",
    "road": "ROAD: solid MoRF (lower is better),\ndashed LeRF (higher is better)",
}
X_LABELS = {
    "deletion": "fraction of pixels removed",
    "insertion": "fraction of pixels put back",
    "road": "fraction of pixels imputed",
}
BASELINE_STYLE = {"random": ("#8a8a8a", ":"), "edges": ("#303030", "-.")}


def mean_curves(
    results: Sequence[Evaluated],
    maps: Sequence[str],
    settings: Settings,
    cells: Sequence[Cell],
    title: str,
) -> Image.Image:
    """One panel per metric: for each map, its curves averaged over the inputs, the legend
    giving its mean score."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    means = {(c.map, c.score): c.mean for c in cells}
    figure = Figure(figsize=(4.6 * len(settings.metrics), 4.4), dpi=100)
    FigureCanvasAgg(figure)
    colours = iter(["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"])
    style = {
        name: BASELINE_STYLE[name] if name in BASELINES else (next(colours), "-") for name in maps
    }
    for i, metric in enumerate(settings.metrics, start=1):
        axes = figure.add_subplot(1, len(settings.metrics), i)
        for name in maps:
            curves = [r.curves[(name, metric)] for r in results if (name, metric) in r.curves]
            if not curves:
                continue
            colour, line = style[name]
            label = name + (" (baseline)" if name in BASELINES else "")
            shown = [s.name for s in SCORES if s.metric == metric and s.name != "road-gap"]
            numbers = " / ".join(f"{means[(name, s)]:.3f}" for s in shown if (name, s) in means)
            for curve in curves[0].heights:
                height = np.mean([c.heights[curve] for c in curves], axis=0)
                dashed = "--" if curve == "lerf" else line
                axes.plot(
                    curves[0].fractions,
                    height,
                    color=colour,
                    linestyle=dashed,
                    linewidth=1.6,
                    label=f"{label}: {numbers}" if curve != "lerf" else None,
                )
        axes.set_title(TITLES[metric], fontsize=10)
        axes.set_xlabel(X_LABELS[metric])
        axes.set_xlim(0, 1)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        if i == 1:
            axes.set_ylabel("probability of the explained class (mean)")
        axes.legend(fontsize=7, loc="best")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.canvas.draw()
    return Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3].copy(), "RGB")
