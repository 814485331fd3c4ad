"""How alike two saliency maps are: Adebayo et al.'s (2018) four measures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gbp_cli.backends.base import DISTRIBUTION
from gbp_cli.errors import GbpError


@dataclass(frozen=True)
class Similarity:
    """Adebayo et al.'s four measures between an original map and another."""

    spearman_abs: float  # rank correlation of |map|
    spearman: float  # rank correlation of the signed map
    ssim: float  # structural similarity of |map|, each scaled to [0, 1]
    hog_pearson: float  # Pearson correlation of the HOG features of |map|


def metric_libraries():
    """scipy and scikit-image, or one line saying how to install them."""
    try:
        from scipy import stats
        from skimage.feature import hog
        from skimage.metrics import structural_similarity
    except ImportError:
        raise GbpError(
            f"gbp sanity needs scipy and scikit-image: pip install '{DISTRIBUTION}[sanity]'"
        ) from None
    return stats, hog, structural_similarity


def _planes(saliency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signed, absolute) 2-D maps: the channel sum, and max |·| scaled by its 99th percentile."""
    signed = saliency.sum(axis=-1, dtype=np.float64)
    magnitude = np.abs(saliency).max(axis=-1).astype(np.float64)
    top = np.percentile(magnitude, 99) or magnitude.max() or 1.0
    return signed, np.clip(magnitude / top, 0, 1)


def similarity(original: np.ndarray, other: np.ndarray) -> Similarity:
    stats, hog, structural_similarity = metric_libraries()
    signed_a, abs_a = _planes(original)
    signed_b, abs_b = _planes(other)
    features = [hog(m, pixels_per_cell=(16, 16), cells_per_block=(2, 2)) for m in (abs_a, abs_b)]

    def safe(value: float) -> float:
        return 0.0 if not np.isfinite(value) else float(value)

    return Similarity(
        spearman_abs=safe(stats.spearmanr(abs_a.ravel(), abs_b.ravel())[0]),
        spearman=safe(stats.spearmanr(signed_a.ravel(), signed_b.ravel())[0]),
        ssim=safe(structural_similarity(abs_a, abs_b, data_range=1.0)),
        hog_pearson=safe(stats.pearsonr(*features)[0]) if features[0].std() > 0 else 0.0,
    )
