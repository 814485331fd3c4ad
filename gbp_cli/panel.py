"""The comparison figure: the photo and each method's map side by side, titled like the blog's."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gbp_cli.preprocess import Geometry
from gbp_cli.render import color, on_photo, overlay

DISPLAY = 480  # longest side, in pixels, of each picture in the panel


def panel(
    photo: Image.Image,
    geometry: Geometry,
    maps: dict[str, np.ndarray],
    label: str,
    probability: float,
    note: str | None = None,
    clip: float = 99.0,
    cmap: str = "inferno",
    alpha: float = 0.5,
    contrast: float = 0.1,
) -> Image.Image:
    """One figure: the photo, then every method (Grad-CAM as an overlay, gradients in colour).

    Each map is titled with the method, the explained class and its probability; `note` (say,
    that the weights are random) heads the figure in red.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = photo.crop(geometry.box)
    shown.thumbnail((DISPLAY, DISPLAY))
    pictures = [("photo", shown)]
    for method, saliency in maps.items():
        if method == "gradcam":
            picture = overlay(saliency, photo, geometry, clip, cmap, alpha).crop(geometry.box)
        else:
            picture = on_photo(color(saliency, contrast), geometry)
        pictures.append((f"{method}\n{label} {probability:.1%}", picture.resize(shown.size)))
    aspect = shown.height / shown.width
    figure = Figure(figsize=(3.2 * len(pictures), 3.2 * aspect + (1.2 if note else 0.8)), dpi=100)
    FigureCanvasAgg(figure)
    for i, (title, picture) in enumerate(pictures, start=1):
        axes = figure.add_subplot(1, len(pictures), i)
        axes.imshow(np.asarray(picture))
        axes.set_title(title, fontsize=10)
        axes.axis("off")
    if note:
        figure.suptitle(note, color="firebrick", fontsize=11)
    figure.tight_layout()
    figure.canvas.draw()
    rgba = np.asarray(figure.canvas.buffer_rgba())
    return Image.fromarray(rgba[..., :3].copy(), "RGB")
