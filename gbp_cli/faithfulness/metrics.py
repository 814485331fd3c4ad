"""Deletion, insertion and ROAD: which perturbed copies of a photo each needs, and from the model's
class probability on each, the curves and the scores.

A curve is the probability of the class the map explains (the photo's top-1) against the
fraction of pixels removed (or, for insertion, put back), step k of N at n_k / P
(removal.removed_counts). The score is the area under it by the trapezoid rule on those exact
fractions:

- deletion: from the photo (k = 0) to every pixel removed (k = N); lower is better;
- insertion: from the blurred photo (k = 0) to the photo (k = N); higher is better;
- ROAD: most relevant first (MoRF, lower is better) and least relevant first (LeRF, higher is
  better), k = 0 … N − 1 (imputation needs pixels left to impute from: the last step removes
  (N − 1)/N of them); its areas are divided by that last fraction, so each is the curve's mean
  height, as deletion's and insertion's are. Their gap, LeRF − MoRF, is higher for a better map.

Copies that every map of a photo shares (the photo, the photo with every pixel removed, its
blur) are made and scored once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from gbp_cli.backends.base import Preprocessing
from gbp_cli.faithfulness import METRICS
from gbp_cli.faithfulness.removal import (
    gaussian_blur,
    linear_imputation,
    pixel_relevance,
    ranking,
    removed_counts,
)

CURVES = {"deletion": ("deletion",), "insertion": ("insertion",), "road": ("morf", "lerf")}
# Copies shared by every map of a photo.
ORIGINAL, REMOVED, BLURRED = ("photo",), ("every pixel removed",), ("blurred",)
# What each seeded draw is for, so that no two purposes share a stream.
TIES, RANDOM_MAP, ROAD_NOISE = 0, 1, 2


@dataclass(frozen=True)
class Score:
    """One number per (photo, map): its name, its metric, and which way is better."""

    name: str
    metric: str
    lower_is_better: bool
    meaning: str

    @property
    def direction(self) -> str:
        return "lower is better" if self.lower_is_better else "higher is better"


SCORES = (
    Score("deletion", "deletion", True, "area under the curve as the top pixels are removed"),
    Score("insertion", "insertion", False, "area under the curve as they enter a blurred photo"),
    Score("road-morf", "road", True, "ROAD, most relevant first: mean probability"),
    Score("road-lerf", "road", False, "ROAD, least relevant first: mean probability"),
    Score("road-gap", "road", False, "ROAD, LeRF − MoRF"),
)


def scores_of(metrics: Iterable[str]) -> tuple[Score, ...]:
    chosen = set(metrics)
    return tuple(s for s in SCORES if s.metric in chosen)


@dataclass(frozen=True)
class Settings:
    """Everything that shapes the numbers besides the model and the photo: each record says it."""

    metrics: tuple[str, ...] = METRICS
    steps: int = 20
    seed: int = 0
    blur_sigma: float = 5.0  # insertion's blur, in pixels of the model input (RISE's)
    blur_radius: int = 5  # 11 taps
    road_noise: float = 0.01  # ROAD's noise σ, as a fraction of the pixel range [0, 1]

    def counts(self, metric: str, pixels: int) -> np.ndarray:
        """Pixels removed at each step of `metric`'s curve."""
        return removed_counts(pixels, self.steps, self.steps - 1 if metric == "road" else None)

    def record(self) -> dict[str, str]:
        """The settings as every output's record and JSON name them."""
        described = {
            "deletion": "pixels set to 0 in the model input (the normalisation's mean colour)",
            "insertion": f"pixels put back into a Gaussian blur of the photo, sigma "
            f"{self.blur_sigma:g} px over {2 * self.blur_radius + 1} taps, mirrored borders",
            "road": "noisy linear imputation: 8 neighbours, direct 1/6, diagonal 1/12; noise "
            f"sigma {self.road_noise:g} of the pixel range on imputed pixels; last step "
            f"{self.steps - 1}/{self.steps}",
        }
        return {
            "metrics": ",".join(self.metrics),
            "steps": str(self.steps),
            "seed": str(self.seed),
            "ranking": "max |map| over channels (a one-channel map as is); ties in a seeded "
            "random order",
            **{f"metric {m}": described[m] for m in self.metrics},
        }


@dataclass(frozen=True)
class Photo:
    """One photo as the model sees it, and the key that seeds its draws: from its content, so
    the same photo gets the same random map, tie order and noise in any run and backend."""

    name: str
    image: np.ndarray  # (H, W, C) model input, float32
    key: int

    @classmethod
    def of(cls, name: str, image: np.ndarray, digest: str) -> Photo:
        return cls(name, image, int(digest[:16], 16) if digest else 0)

    def rng(self, seed: int, *purpose: int) -> np.random.Generator:
        return np.random.default_rng([seed, self.key, *purpose])


Slot = tuple  # which copy: a shared one (ORIGINAL, …) or (map, curve, step)


def copies_per_photo(settings: Settings, maps: int) -> int:
    """How many copies of one photo the model scores."""
    shared = 1 + ("deletion" in settings.metrics) + ("insertion" in settings.metrics)
    curves = sum(len(CURVES[m]) for m in settings.metrics)
    return shared + maps * curves * (settings.steps - 1)


def perturbations(
    photo: Photo, maps: dict[str, np.ndarray], settings: Settings, pre: Preprocessing
) -> Iterator[tuple[Slot, np.ndarray]]:
    """Every copy of `photo` the measures need, made one at a time (a photo's copies would fill
    gigabytes), each with the slot its probability fills."""
    image = photo.image
    height, width, channels = image.shape
    pixels = height * width
    flat = image.reshape(pixels, channels)
    yield ORIGINAL, image
    if "deletion" in settings.metrics:
        yield REMOVED, np.zeros_like(image)
    blurred = None
    if "insertion" in settings.metrics:
        blurred = gaussian_blur(image, settings.blur_sigma, settings.blur_radius)
        yield BLURRED, blurred
    tie_order = photo.rng(settings.seed, TIES).permutation(pixels)
    scale = (settings.road_noise / np.asarray(pre.std, np.float64)).astype(np.float32)
    noise: dict[int, np.ndarray] = {}  # step → the noise field, the same for every map
    for name, saliency in maps.items():
        order = ranking(pixel_relevance(saliency), tie_order)
        for metric in settings.metrics:
            counts = settings.counts(metric, pixels)
            for curve in CURVES[metric]:
                ranked = order[::-1] if curve == "lerf" else order
                for k in range(1, settings.steps):
                    chosen = ranked[: counts[k]]
                    if metric == "deletion":
                        copy = image.copy()
                        copy.reshape(pixels, channels)[chosen] = 0
                    elif metric == "insertion":
                        assert blurred is not None
                        copy = blurred.copy()
                        copy.reshape(pixels, channels)[chosen] = flat[chosen]
                    else:
                        if k not in noise:
                            draw = photo.rng(settings.seed, ROAD_NOISE, k)
                            noise[k] = draw.standard_normal((pixels, channels), np.float32) * scale
                        copy = linear_imputation(image, chosen)
                        copy.reshape(pixels, channels)[chosen] += noise[k][chosen]
                    yield (name, curve, k), copy


@dataclass
class Curves:
    """One metric's curves for one (photo, map): the shared x axis and each curve's heights."""

    metric: str
    fractions: np.ndarray
    heights: dict[str, np.ndarray] = field(default_factory=dict)

    def area(self, curve: str) -> float:
        """Trapezoid area under `curve`; ROAD's divided by its last fraction (a mean height)."""
        x, y = self.fractions, self.heights[curve]
        area = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))
        return area / float(x[-1]) if self.metric == "road" else area

    def scores(self) -> dict[str, float]:
        if self.metric != "road":
            return {self.metric: self.area(self.metric)}
        morf, lerf = self.area("morf"), self.area("lerf")
        return {"road-morf": morf, "road-lerf": lerf, "road-gap": lerf - morf}


def assemble(
    probability: dict[Slot, float], maps: Iterable[str], settings: Settings, pixels: int
) -> dict[tuple[str, str], Curves]:
    """Each (map, metric)'s curves from the probability of every copy of one photo."""
    result = {}
    for name in maps:
        for metric in settings.metrics:
            curves = Curves(metric, settings.counts(metric, pixels) / pixels)
            for curve in CURVES[metric]:
                inner = [probability[(name, curve, k)] for k in range(1, settings.steps)]
                first = probability[BLURRED if metric == "insertion" else ORIGINAL]
                ends = {"deletion": REMOVED, "insertion": ORIGINAL}
                last = [probability[ends[metric]]] if metric in ends else []
                curves.heights[curve] = np.array([first, *inner, *last], dtype=np.float64)
            result[(name, metric)] = curves
    return result
