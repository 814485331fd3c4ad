"""The comparison figure: the photo and each method's map side by side, one row per class."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gbp_cli.inputs.preprocess import Geometry, picture_photo
from gbp_cli.render.pictures import color, on_photo, overlay
from gbp_cli.settings import DEFAULT_RENDERING, Rendering

DISPLAY = 480  # longest side, in pixels, of each picture in the panel
Row = tuple[str, float, dict[str, np.ndarray]]  # (label, probability, method → map)


def panel(
    photo: Image.Image,
    geometry: Geometry,
    rows: list[Row],
    note: str | None = None,
    style: Rendering = DEFAULT_RENDERING,
) -> Image.Image:
    """One figure: per explained class a row with the photo, then every method (Grad-CAM as an
    overlay, gradients in colour), each titled with the method, the class and its probability.
    `note` (say, that the weights are random) heads the figure in red."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    geometry = geometry.bounded(style.max_size)
    photo = picture_photo(photo, geometry)
    shown = photo.crop(geometry.box)
    shown.thumbnail((DISPLAY, DISPLAY))
    grid: list[list[tuple[str, Image.Image]]] = []
    for label, probability, maps in rows:
        line = [("photo", shown)]
        for method, saliency in maps.items():
            if method == "gradcam":
                picture = overlay(saliency, photo, geometry, style.clip, style.cmap, style.alpha)
                picture = picture.crop(geometry.box)
            else:
                picture = on_photo(color(saliency, style.contrast), geometry)
            line.append((f"{method}\n{label} {probability:.1%}", picture.resize(shown.size)))
        grid.append(line)
    columns, aspect = len(grid[0]), shown.height / shown.width
    height = (3.2 * aspect + 0.6) * len(grid) + (0.6 if note else 0.2)
    figure = Figure(figsize=(3.2 * columns, height), dpi=100)
    FigureCanvasAgg(figure)
    for r, line in enumerate(grid):
        for c, (title, picture) in enumerate(line):
            axes = figure.add_subplot(len(grid), columns, r * columns + c + 1)
            axes.imshow(np.asarray(picture))
            axes.set_title(title, fontsize=10)
            axes.axis("off")
    if note:
        figure.suptitle(note, color="firebrick", fontsize=11)
    figure.tight_layout()
    figure.canvas.draw()
    rgba = np.asarray(figure.canvas.buffer_rgba())
    return Image.fromarray(rgba[..., :3].copy(), "RGB")
