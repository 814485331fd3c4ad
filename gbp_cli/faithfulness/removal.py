"""What removing a pixel means, for each measure, on the model's input (H×W×C, after the
preprocessing: 224×224 for most networks), and in which order pixels go.

- Order: a map becomes one relevance per pixel — max |map| over channels for a gradient map
  (Simonyan et al. 2013; gbp's `gray` picture), the value itself for a one-channel map
  (Grad-CAM) — and pixels are ranked most relevant first. Equal values (Grad-CAM's zeros, a
  flat region) are ranked in one seeded random order rather than in raster order, which would
  remove the top of the photo first.
- Schedule: step k of N removes n_k = round(k·P/N) pixels (halves up), P = H·W; the curves'
  x axis is n_k / P, exactly.
- Deletion (Petsiuk et al. 2018): a removed pixel is 0 in the model's input, i.e. the
  normalisation's mean colour (ImageNet's mean grey; grey 127 for EfficientNet-Lite; black
  for `--normalize none`), in every channel.
- Insertion (same paper): pixels are put back, most relevant first, into a Gaussian blur of the
  photo: σ = 5 px over 11 taps (RISE's kernel), separable, borders mirrored.
- ROAD (Rong et al. 2022): noisy linear imputation. Each removed pixel becomes the weighted mean
  of its eight neighbours inside the image (direct ones 1/6, diagonal ones 1/12, renormalised
  at the border), removed neighbours included: one sparse linear system per mask, solved
  exactly; then seeded Gaussian noise is added to the imputed pixels only.
"""

from __future__ import annotations

import numpy as np

# ROAD's neighbourhood: (row offset, column offset) → weight.
NEIGHBOURS = (
    ((0, 1), 1 / 6),
    ((0, -1), 1 / 6),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
    ((1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((-1, 1), 1 / 12),
    ((-1, -1), 1 / 12),
)


def pixel_relevance(saliency: np.ndarray) -> np.ndarray:
    """(H, W, C) map → (H, W) relevance: max |map| over channels where C > 1, else the map."""
    if saliency.shape[-1] == 1:
        return saliency[..., 0].astype(np.float64)
    return np.abs(saliency).max(axis=-1).astype(np.float64)


def ranking(relevance: np.ndarray, tie_order: np.ndarray) -> np.ndarray:
    """Flat pixel indices, most relevant first. `tie_order` is a permutation of the pixels
    (seeded): equal relevances keep its order, so ties never fall to the sort's whim."""
    flat = relevance.ravel()[tie_order]
    return tie_order[np.argsort(-flat, kind="stable")]


def removed_counts(pixels: int, steps: int, last: int | None = None) -> np.ndarray:
    """n_k = round(k·pixels/steps) for k = 0 … `last` (default `steps`), halves rounded up, in
    exact integer arithmetic."""
    k = np.arange((steps if last is None else last) + 1, dtype=np.int64)
    return (2 * k * pixels + steps) // (2 * steps)


def gaussian_blur(image: np.ndarray, sigma: float, radius: int) -> np.ndarray:
    """(H, W, C) blurred by a normalised Gaussian of `sigma` pixels over 2·radius + 1 taps, rows
    then columns, with mirrored borders (… c b a | a b c …), so a flat image stays flat."""
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    height, width = image.shape[:2]
    values = image.astype(np.float64)
    padded = np.pad(values, ((radius, radius), (0, 0), (0, 0)), mode="symmetric")
    values = sum(w * padded[i : i + height] for i, w in enumerate(kernel))
    padded = np.pad(values, ((0, 0), (radius, radius), (0, 0)), mode="symmetric")
    values = sum(w * padded[:, i : i + width] for i, w in enumerate(kernel))
    return values.astype(image.dtype)


def linear_imputation(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """(H, W, C) with the pixels at flat indices `removed` imputed, without noise: each is the
    weighted mean of its neighbours in the image (NEIGHBOURS), known or imputed. Written as
    Σ_q w_pq (x_p − x_q) = 0 for every removed p, the system is symmetric and, while a pixel is
    left, non-singular; SuperLU solves all channels at once."""
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import splu

    height, width, channels = image.shape
    result = image.astype(np.float64).reshape(-1, channels)
    removed = np.asarray(removed, dtype=np.int64)
    if removed.size == 0:
        return image.copy()
    if removed.size >= height * width:
        raise ValueError("linear imputation needs at least one pixel left")
    unknown = np.full(height * width, -1, dtype=np.int64)
    unknown[removed] = np.arange(removed.size)
    rows_of, cols_of = np.divmod(removed, width)
    diagonal = np.zeros(removed.size)
    known_sum = np.zeros((removed.size, channels))
    entries_rows, entries_cols, entries = [], [], []
    for (dy, dx), weight in NEIGHBOURS:
        y, x = rows_of + dy, cols_of + dx
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        diagonal[inside] += weight
        where = np.flatnonzero(inside)
        neighbour = y[inside] * width + x[inside]
        variable = unknown[neighbour]
        free = variable >= 0
        entries_rows.append(where[free])
        entries_cols.append(variable[free])
        entries.append(np.full(int(free.sum()), -weight))
        known_sum[where[~free]] += weight * result[neighbour[~free]]
    every = np.arange(removed.size)
    matrix = csc_matrix(
        (
            np.concatenate([*entries, diagonal]),
            (np.concatenate([*entries_rows, every]), np.concatenate([*entries_cols, every])),
        ),
        shape=(removed.size, removed.size),
    )
    factor = splu(
        matrix,
        permc_spec="MMD_AT_PLUS_A",  # the matrix is symmetric: order for that, no pivoting
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    result[removed] = factor.solve(known_sum)
    return result.reshape(height, width, channels).astype(image.dtype)
