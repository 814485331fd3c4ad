"""What the library returns: one image's explanation, and many of them; each shows itself in a
notebook cell as the panel `gbp explain --format panel` writes (the photo, then each map).

Map shapes, the same everywhere (`explain`, the Ray Data columns, `gbp explain`'s .npy files):
a gradient map (guided, vanilla, deconv, guided-gradcam) is H×W×3, one value per input
channel; Grad-CAM is H×W, one value per pixel; both at the model's input size.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from gbp_cli.inputs.preprocess import Geometry
from gbp_cli.outputs.planning import Prediction
from gbp_cli.render.panel import panel

SHOWN = 8  # panels a list of results draws in a cell; results[i] shows any one


def image_maps(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """explain_maps' (N, 1, H, W, C) maps → (N, H, W, 3) for gradients, (N, H, W) for
    Grad-CAM."""
    return {m: v[:, 0, ..., 0] if v.shape[-1] == 1 else v[:, 0] for m, v in maps.items()}


@dataclass(repr=False, eq=False)
class Explained:
    """One image's explanation: each method's map for one target class, and the prediction.
    In a notebook its panel shows itself; `picture()` returns it as a PIL image."""

    saliency: dict[str, np.ndarray]  # method → H×W×3 (gradients) or H×W (Grad-CAM)
    target: Prediction  # the class explained
    top: list[Prediction]  # the five most likely classes
    relus: dict[str, int]  # method → activations its rule was applied to
    photo: Image.Image  # upright RGB, at its own size: what overlays are drawn on
    geometry: Geometry  # where the model's view sits in `photo`
    model_input: np.ndarray  # the exact normalised H×W×3 input the gradients are taken of
    note: str | None = None  # what must head the panel (random weights)
    _panel: Image.Image | None = field(default=None, init=False, compare=False)

    def __repr__(self) -> str:
        maps = ", ".join(f"{m} {'×'.join(map(str, v.shape))}" for m, v in self.saliency.items())
        return (
            f"Explained(target={self.target.label!r} ({self.target.index}, "
            f"{self.target.probability:.1%}), maps: {maps}; photo {self.photo.width}×"
            f"{self.photo.height})"
        )

    def picture(self) -> Image.Image:
        """The panel: the photo, then each method's map over it, titled with the class."""
        if self._panel is None:
            row = (self.target.label, self.target.probability, self.saliency)
            self._panel = panel(self.photo, self.geometry, [row], self.note)
        return self._panel

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.picture().save(buffer, format="PNG")
        return buffer.getvalue()

    def _repr_html_(self) -> str:
        data = base64.b64encode(self._repr_png_()).decode("ascii")
        top = ", ".join(f"{p.label} {p.probability:.1%}" for p in self.top)
        caption = html.escape(f"{self.target.label} ({self.target.index}) · top 5: {top}")
        return (
            f'<figure style="margin:0"><img src="data:image/png;base64,{data}" '
            f'alt="{caption}" style="max-width:100%"/><figcaption>{caption}</figcaption></figure>'
        )


class Results(list[Explained]):
    """The explanations of many images, one per image in their order. In a notebook the first
    few show their panels."""

    def _repr_html_(self) -> str:
        shown = "".join(result._repr_html_() for result in self[:SHOWN])
        more = len(self) - SHOWN
        rest = f"<p>… and {more} more: results[i] shows any one</p>" if more > 0 else ""
        return shown + rest
