"""Saliency maps → pictures. Plain functions from numpy arrays to PIL images; no framework.

A map is H×W×C (C = 3 for gradients, 1 for Grad-CAM) at the model's 224×224 input. `on_photo` and
`overlay` lay it back on the photo's own geometry: the whole photo for `squash`, the crop box for
`crop`.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from gbp_cli.inputs.preprocess import Geometry, picture_photo
from gbp_cli.settings import DEFAULT_RENDERING, Rendering

CLIP, CMAP, ALPHA, CONTRAST = Rendering.clip, Rendering.cmap, Rendering.alpha, Rendering.contrast


def _channels(saliency: np.ndarray) -> np.ndarray:
    values = np.asarray(saliency, dtype=np.float64)
    return values if values.ndim == 3 else values[..., None]


def _rgb(values: np.ndarray) -> Image.Image:
    """[0, 1] H×W×(1 or 3) floats → an 8-bit RGB image."""
    pixels = np.round(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return Image.fromarray(pixels, "RGB")


def color(saliency: np.ndarray, contrast: float = CONTRAST) -> Image.Image:
    """The signed gradient as the guided-backprop blog draws it: centred, std-scaled, clipped.

    Zero gradient lands on mid-grey; `contrast` is how far one standard deviation moves from it.
    """
    g = _channels(saliency)
    return _rgb((g - g.mean()) / (g.std() + 1e-12) * contrast + 0.5)


def intensity(saliency: np.ndarray, clip: float = CLIP) -> np.ndarray:
    """max |g| over channels, scaled so its `clip` percentile is 1 and clipped: H×W in [0, 1]."""
    magnitude = np.abs(_channels(saliency)).max(axis=-1)
    top = float(np.percentile(magnitude, clip))
    if top <= 0:
        top = float(magnitude.max()) or 1.0
    return np.clip(magnitude / top, 0.0, 1.0)


def gray(saliency: np.ndarray, clip: float = CLIP) -> Image.Image:
    """Where the map is strong, whatever its sign: white is the `clip` percentile and above."""
    return Image.fromarray(np.round(intensity(saliency, clip) * 255).astype(np.uint8), "L")


def colormap(values: np.ndarray, cmap: str) -> np.ndarray:
    """H×W in [0, 1] through a matplotlib colormap → H×W×3 in [0, 1] (float32): its table,
    indexed as matplotlib indexes it (⌊v·N⌋, 1 at the last entry), without its per-call cost."""
    table = _table(cmap)
    index = np.minimum((np.nan_to_num(values) * len(table)).astype(np.intp), len(table) - 1)
    return table[np.maximum(index, 0)]


@functools.lru_cache(maxsize=8)
def _table(cmap: str) -> np.ndarray:
    import matplotlib

    colors = matplotlib.colormaps[cmap]
    return colors(np.arange(colors.N))[:, :3].astype(np.float32)


def heatmap(saliency: np.ndarray, clip: float = CLIP, cmap: str = CMAP) -> Image.Image:
    return _rgb(colormap(intensity(saliency, clip), cmap))


def _signed_part(part: np.ndarray, clip: float) -> Image.Image:
    top = float(np.percentile(part, clip)) or float(part.max()) or 1.0
    return _rgb(part / top)


def positive(saliency: np.ndarray, clip: float = CLIP) -> Image.Image:
    """Positive saliency: each channel's part above zero, its `clip` percentile at full strength."""
    return _signed_part(np.maximum(_channels(saliency), 0), clip)


def negative(saliency: np.ndarray, clip: float = CLIP) -> Image.Image:
    """Negative saliency: each channel's part below zero, its `clip` percentile at full strength."""
    return _signed_part(np.maximum(-_channels(saliency), 0), clip)


def on_photo(picture: Image.Image, geometry: Geometry) -> Image.Image:
    """A 224×224 rendering stretched over the photo region the model saw."""
    left, top, right, bottom = geometry.box
    return picture.resize((right - left, bottom - top), Image.BILINEAR)


def overlay(
    saliency: np.ndarray,
    photo: Image.Image,
    geometry: Geometry,
    clip: float = CLIP,
    cmap: str = CMAP,
    alpha: float = ALPHA,
) -> Image.Image:
    """The heatmap blended over the upright photo, at its own size; outside a crop, the photo.

    Each pixel's blend weight is `alpha` × √(the map's intensity there): quiet regions show the
    photo as it is, strong ones take the colormap's colour, and the square root keeps the thin
    structure of gradient maps visible next to Grad-CAM's broad blobs.
    """
    left, top, right, bottom = geometry.box
    size = (right - left, bottom - top)
    strength = Image.fromarray(intensity(saliency, clip).astype(np.float32), "F")
    there = np.clip(np.asarray(strength.resize(size, Image.BILINEAR)), 0, 1)
    heat = colormap(there, cmap) * np.float32(255)
    weight = (np.float32(alpha) * np.sqrt(there))[..., None]
    pixels = np.array(photo.convert("RGB"))
    region = pixels[top:bottom, left:right].astype(np.float32)
    blended = region + (heat - region) * weight  # region·(1 − w) + heat·w, in float32
    pixels[top:bottom, left:right] = np.round(blended).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def render(
    fmt: str,
    saliency: np.ndarray,
    geometry: Geometry,
    photo: Image.Image | None = None,
    style: Rendering = DEFAULT_RENDERING,
) -> Image.Image:
    """One per-map format, at the photo's geometry scaled to `style.max_size` (the kept photo is
    usually at that size already: see gbp_cli.inputs.preprocess.prepare_image)."""
    geometry = geometry.bounded(style.max_size)
    if fmt == "overlay":
        assert photo is not None
        photo = picture_photo(photo, geometry)
        return overlay(saliency, photo, geometry, style.clip, style.cmap, style.alpha)
    pictures = {
        "color": lambda: color(saliency, style.contrast),
        "gray": lambda: gray(saliency, style.clip),
        "heatmap": lambda: heatmap(saliency, style.clip, style.cmap),
        "pos": lambda: positive(saliency, style.clip),
        "neg": lambda: negative(saliency, style.clip),
    }
    return on_photo(pictures[fmt](), geometry)
