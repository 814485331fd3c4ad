"""Maps that know nothing of the model, so that a method's score means something beside them: a
random map (any method should beat it) and an edge detector, the Sobel magnitude of the photo
(Adebayo et al. 2018 found guided backprop's maps close to one)."""

from __future__ import annotations

import numpy as np

from gbp_cli.backends.base import Preprocessing

# What each baseline is, as the records and the table's legend say it.
DESCRIPTIONS = {
    "random": "uniform random relevance per pixel, seeded by the run's seed and the input",
    "edges": "Sobel gradient magnitude of the photo's grey (the mean of R, G and B)",
}


def random_map(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 1) uniform random relevance."""
    return rng.random((height, width, 1))


def edge_map(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """(H, W, 1) Sobel magnitude of the photo's grey, from the model input (the normalisation
    undone, borders mirrored): where the photo has edges, whatever the model does."""
    mean = np.asarray(pre.mean, np.float64)
    std = np.asarray(pre.std, np.float64)
    grey = (image.astype(np.float64) * std + mean).mean(axis=-1)  # pixels in [0, 1]
    padded = np.pad(grey, 1, mode="symmetric")
    height, width = grey.shape

    def at(dy: int, dx: int) -> np.ndarray:
        return padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    across = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    down = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    return np.hypot(across, down)[..., None]
