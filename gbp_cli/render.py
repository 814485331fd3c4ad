"""Saliency arrays → pictures. Plain functions on numpy arrays; no framework, no files."""

from __future__ import annotations

import numpy as np

FORMATS = ("color", "npy")


def color(saliency: np.ndarray, contrast: float = 0.1) -> np.ndarray:
    """The signed gradient as the guided-backprop blog draws it: centred, std-scaled, clipped.

    Zero gradient lands on mid-grey; `contrast` is how far one standard deviation moves from it.
    """
    g = saliency.astype(np.float64)
    g = (g - g.mean()) / (g.std() + 1e-12) * contrast + 0.5
    return np.round(np.clip(g, 0.0, 1.0) * 255).astype(np.uint8)
