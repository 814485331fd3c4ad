"""Pictures for `gbp sanity`: similarity against randomized depth, and the grid of maps."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gbp_cli.render.pictures import gray
from gbp_cli.sanity.cascade import CLASS_CHECK, Record

METRICS = (
    ("spearman_abs", "Spearman, |map|"),
    ("spearman", "Spearman, signed"),
    ("ssim", "SSIM"),
    ("hog_pearson", "HOG Pearson"),
)


def _figure_image(figure) -> Image.Image:
    figure.tight_layout()
    figure.canvas.draw()
    return Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3].copy(), "RGB")


def similarity_plot(records: list[Record], title: str) -> Image.Image:
    """One panel per measure: similarity to the original map as more of the top is randomized."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    methods = list(dict.fromkeys(r.method for r in records))
    stages = list(dict.fromkeys(r.stage for r in records if r.stage != CLASS_CHECK))
    for i, (field, label) in enumerate(METRICS, start=1):
        axes = figure.add_subplot(1, len(METRICS), i)
        lowest = 0.0
        for method in methods:
            values = [
                getattr(r.similarity, field)
                for s in stages
                for r in records
                if r.method == method and r.stage == s
            ]
            lowest = min(lowest, *values)
            axes.plot(range(len(stages)), values, marker="o", label=method)
        axes.set_xticks(range(len(stages)), [f"→{s}" for s in stages], rotation=60, fontsize=7)
        axes.set_ylim(min(-0.05, lowest - 0.05), 1.02)  # the data's own range, never clipped
        axes.axhline(0, color="grey", linewidth=0.5)
        axes.set_title(label, fontsize=10)
        if i == 1:
            axes.set_ylabel("similarity to the original map")
            axes.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return _figure_image(figure)


def map_grid(maps: dict[str, dict[str, np.ndarray]], index: int, title: str) -> Image.Image:
    """Rows: methods; columns: the original map, then each randomization step, then the least
    likely class's map."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = list(maps)  # "original", each stage, the class check
    methods = list(maps["original"])
    figure = Figure(figsize=(1.3 * len(columns), 1.45 * len(methods) + 0.6), dpi=100)
    FigureCanvasAgg(figure)
    for row, method in enumerate(methods):
        for column, stage in enumerate(columns):
            axes = figure.add_subplot(len(methods), len(columns), row * len(columns) + column + 1)
            axes.imshow(np.asarray(gray(maps[stage][method][index, 0])), cmap="gray")
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(
                    stage if stage in ("original", CLASS_CHECK) else f"→{stage}", fontsize=7
                )
            if column == 0:
                axes.set_ylabel(method, fontsize=8)
    figure.suptitle(title, fontsize=10)
    return _figure_image(figure)
