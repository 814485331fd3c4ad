"""gbp as a library, for notebooks and scripts: the same maps as `gbp explain`.

    from gbp_cli import Explainer, explain

    result = explain("photo.jpg", method=["guided", "gradcam"], model="efficientnet_lite0")
    result                                   # in a notebook: the panel, photo and maps
    explainer = Explainer(net, input_size=224, labels=names)   # your torch or Keras model
    results = explainer.explain([photo_a, photo_b], target="cat")  # one result per image

Errors are `gbp_cli.GbpError`s (gbp_cli/errors.py); loaded models are cached by content
(gbp_cli/api/models.py), `clear_cache()` frees them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

from gbp_cli.api.explainer import Explainer, ImageLike, Preprocess
from gbp_cli.api.models import (
    CACHE,
    ModelWarning,
    RandomWeightsWarning,
    Request,
    clear_cache,
)
from gbp_cli.api.options import api_terms
from gbp_cli.api.results import Explained, Results
from gbp_cli.backends import Backend, ModelSpec, WeightsSpec
from gbp_cli.settings import Smoothing

__all__ = [
    "Explained",
    "Explainer",
    "ModelWarning",
    "RandomWeightsWarning",
    "Results",
    "clear_cache",
    "explain",
]


def explain(
    images: ImageLike,
    *,
    method: str | Sequence[str] = "guided",
    target: Any = None,
    model: Any = "densenet201",
    backend: str | None = None,
    weights: str | os.PathLike | None = None,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    normalize: str | None = None,
    preprocess: Preprocess | None = None,
    labels: str | os.PathLike | Sequence[str] | None = None,
    resize: str = "squash",
    device: str = "auto",
    precision: str = "fp32",
    smooth: int | None = None,
    noise: float = Smoothing.noise,
    other_activations: str = "refuse",
    cam_layer: str | None = None,
    batch_size: int = 8,
    model_name: str | None = None,
) -> Explained | Results:
    """Explain one image (an Explained) or many (Results, one per image): `Explainer(model,
    ...).explain(images, ...)` in one call, the model loaded once and kept (see Explainer for
    every argument). `model_name` is `model`'s old spelling: it still works, with a
    DeprecationWarning."""
    if model_name is not None:
        warnings.warn(
            "explain(model_name=...) is now explain(model=...)", DeprecationWarning, stacklevel=2
        )
        model = model_name
    explainer = Explainer(
        model,
        backend=backend,
        weights=weights,
        input_size=input_size,
        mean=mean,
        std=std,
        normalize=normalize,
        preprocess=preprocess,
        labels=labels,
        device=device,
        precision=precision,
        other_activations=other_activations,
        cam_layer=cam_layer,
        batch_size=batch_size,
    )
    # The Explainer checked the model's content as it loaded it, a moment ago.
    return explainer.explain_with(explainer.loaded, images, method, target, resize, smooth, noise)


def model(
    backend: str = "torch",
    weights: str = "imagenet",
    device: str = "auto",
    precision: str = "fp32",
    network: ModelSpec = ModelSpec(),  # noqa: B008 (frozen)
) -> Backend:
    """A loaded backend by name, through the library's cache (gbp 0.1's loader; an Explainer
    is the way now). `model.cache_clear()` is `clear_cache()`."""
    with api_terms():
        request = Request(
            backend, network.name, WeightsSpec.parse(weights), device, precision, network
        )
        return CACHE.get(request).backend


model.cache_clear = clear_cache  # type: ignore[attr-defined]
