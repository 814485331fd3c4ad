"""gbp as a library, for notebooks:

from gbp_cli import explain
from gbp_cli.render.pictures import overlay
result = explain("cat.jpg", method=["guided", "gradcam"], backend="tf")
result.target            # Prediction(index=281, label='tabby', logit=…, probability=…)
overlay(result.saliency["gradcam"], result.photo, result.geometry)   # a PIL image
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from gbp_cli.backends import Backend, WeightsSpec, open_backend
from gbp_cli.backends.base import ModelSpec
from gbp_cli.inputs.preprocess import Geometry, open_rgb, prepare_image, to_rgb
from gbp_cli.outputs.planning import Prediction, predictions
from gbp_cli.saliency.labels import load_labels, resolve_target
from gbp_cli.saliency.maps import check_methods, explain_maps
from gbp_cli.settings import Smoothing

ImageLike = str | Path | Image.Image | np.ndarray
DEFAULT_MODEL = ModelSpec()
RANDOM_WEIGHTS = (
    "weights='random' is an untrained, seeded network: its labels and maps say nothing about "
    "ImageNet"
)


class RandomWeightsWarning(UserWarning):
    """The maps come from an untrained network."""


@dataclass
class Explained:
    """One photo's explanation: each method's 224×224×C map for one target, and the prediction."""

    saliency: dict[str, np.ndarray]  # C = 3 for gradients, 1 for Grad-CAM
    target: Prediction
    top: list[Prediction]  # the five most likely classes
    relus: dict[str, int]
    photo: Image.Image  # upright RGB, at its own size: what overlays are drawn on
    geometry: Geometry  # where the model's view sits in `photo`
    model_input: np.ndarray  # the exact normalised 224×224×3 input the gradients are taken of


@functools.lru_cache(maxsize=4)
def model(
    backend: str = "torch",
    weights: str = "imagenet",
    device: str = "auto",
    precision: str = "fp32",
    network: ModelSpec = DEFAULT_MODEL,
) -> Backend:
    """A loaded backend, kept so that repeated calls in a notebook do not reload it. Random
    weights are announced once, as the command line does."""
    loaded = open_backend(backend, WeightsSpec.parse(weights), device, precision, model=network)
    if loaded.info.weights.is_random:
        warnings.warn(RANDOM_WEIGHTS, RandomWeightsWarning, stacklevel=3)
    return loaded


loaded_model = model  # `explain` takes a `model=` name, which hides this function's name there


def as_photo(image: ImageLike) -> Image.Image:
    """A path, PIL image or array (H×W or H×W×3; uint8, or floats in [0, 1]) as upright RGB."""
    if isinstance(image, str | Path):
        return open_rgb(Path(image))
    if isinstance(image, np.ndarray):
        pixels = image if image.dtype == np.uint8 else np.round(np.clip(image, 0, 1) * 255)
        return Image.fromarray(pixels.astype(np.uint8)).convert("RGB")
    return to_rgb(ImageOps.exif_transpose(image))


def explain(
    image: ImageLike,
    *,
    method: str | Sequence[str] = "guided",
    target: int | str | None = None,
    backend: str = "torch",
    weights: str = "imagenet",
    resize: str = "squash",
    device: str = "auto",
    labels: Path | None = None,
    smooth: int | None = None,
    noise: float = Smoothing.noise,
    precision: str = "fp32",
    model: str = "densenet201",
    other_activations: str = "refuse",
    cam_layer: str | None = None,
    model_name: str | None = None,
) -> Explained:
    """Explain one photo: `target` is a class index or name, or None for the top-1 class;
    `model` is any name `--model` takes (as `Saliency(model=...)` does). `model_name` is its old
    spelling: it still works, with a DeprecationWarning."""
    if model_name is not None:
        warnings.warn(
            "explain(model_name=...) is now explain(model=...)", DeprecationWarning, stacklevel=2
        )
        model = model_name
    methods = (method,) if isinstance(method, str) else tuple(method)
    network = ModelSpec(model, cam_layer=cam_layer, other_activations=other_activations)
    loaded = loaded_model(backend, weights, device, precision, network)
    check_methods(loaded.info, methods, network)
    names = load_labels(labels, loaded.info.num_classes)
    photo = as_photo(image)
    prepared = prepare_image(photo, resize, keep_photo=True, pre=loaded.info.preprocessing)
    wanted = None if target is None else resolve_target(str(target), names)
    smoothing = None if smooth is None else Smoothing(samples=smooth, noise=noise)
    explanation, maps = explain_maps(
        loaded,
        prepared.array[None],
        methods,
        None if wanted is None else np.array([[wanted]]),
        smoothing=smoothing,
    )
    logits = explanation.logits[0]
    return Explained(
        saliency={m: values[0, 0] for m, values in maps.items()},
        target=predictions(logits, explanation.targets[0], names)[0],
        top=predictions(logits, np.argsort(-logits)[:5], names),
        relus=explanation.relus,
        photo=photo,
        geometry=prepared.geometry,
        model_input=prepared.array,
    )
