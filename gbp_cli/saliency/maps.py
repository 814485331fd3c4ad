"""From a backend's gradients to each method's map — shared, so both backends give the same.

Grad-CAM (Selvaraju et al. 2017): ReLU(Σ_k α_k A^k), α_k the spatial mean of ∂y/∂A^k, A the last
dense block's output, upsampled bilinearly to the input. Guided Grad-CAM multiplies that with the
guided map. SmoothGrad (Smilkov et al. 2017) averages any of them over noisy copies of the input;
the noise is drawn here, seeded, so both backends see identical inputs.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence

import numpy as np

from gbp_cli.backends.base import Backend, Explanation, ModelInfo, ModelSpec
from gbp_cli.backends.rules import GRADIENT_METHODS, METHODS, refusal
from gbp_cli.errors import GbpError
from gbp_cli.settings import Smoothing


def check_methods(info: ModelInfo, methods: tuple[str, ...], spec: ModelSpec) -> None:
    """Refuse, before any input is explained, what this model cannot do honestly."""
    problem = refusal(
        methods,
        info.activations,
        info.unruled,
        cam_layer=info.cam_layer is not None,
        other_activations=spec.other_activations,
        model=info.model,
    )
    if problem is not None:
        raise GbpError(problem)


def backend_request(methods: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """The gradient methods to ask a backend for (those asked, then those a product of maps is
    made from), and whether Grad-CAM's features are needed."""
    asked = [m for m in methods if m in GRADIENT_METHODS]
    parts = [p for m in methods for p in METHODS[m].made_from if p in GRADIENT_METHODS]
    return tuple(dict.fromkeys(asked + parts)), any(METHODS[m].needs_cam_layer for m in methods)


def grad_cam(features: np.ndarray, feature_grads: np.ndarray) -> np.ndarray:
    """(N, h, w, C) activations and (N, K, h, w, C) gradients → (N, K, h, w) class maps, in the
    backend's precision (float32, or float64 for gbp parity --precision fp64)."""
    weights = feature_grads.mean(axis=(2, 3), dtype=np.float64)  # α: (N, K, C)
    cam = np.einsum("nkc,nhwc->nkhw", weights, features.astype(np.float64))
    return np.maximum(cam, 0.0).astype(np.result_type(features, np.float32))


def _axis_weights(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling positions with half-pixel centres (align_corners=False), edge-clamped."""
    position = np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0, source - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, source - 1)
    return low, high, (position - low).astype(np.float32)


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of the last two axes of `maps` to `size` (height, width)."""
    rows = _axis_weights(maps.shape[-2], size[0])
    cols = _axis_weights(maps.shape[-1], size[1])
    top, bottom = maps[..., rows[0], :], maps[..., rows[1], :]
    vertical = top + (bottom - top) * rows[2][:, None]
    left, right = vertical[..., cols[0]], vertical[..., cols[1]]
    return left + (right - left) * cols[2]


def method_maps(explanation: Explanation, methods: Sequence[str], size: tuple[int, int]) -> dict:
    """Each requested method's map, (N, K, H, W, C): C = 3 for gradients, 1 for Grad-CAM; a
    method made from others (Guided Grad-CAM) is the product of their maps."""
    maps: dict[str, np.ndarray] = dict(explanation.saliency)
    if any(METHODS[m].needs_cam_layer for m in methods):
        assert explanation.features is not None and explanation.feature_grads is not None
        cam = upsample(grad_cam(explanation.features, explanation.feature_grads), size)[..., None]
        maps |= {name: cam for name, method in METHODS.items() if method.cam}
    for name in methods:
        if METHODS[name].made_from:
            parts = [maps[part] for part in METHODS[name].made_from]
            maps[name] = functools.reduce(operator.mul, parts)  # broadcast: C = 3 × C = 1
    return {m: maps[m] for m in methods}


def explain_maps(
    backend: Backend,
    images: np.ndarray,
    methods: Sequence[str],
    targets: np.ndarray | None = None,
    top_k: int = 1,
    smoothing: Smoothing | None = None,
    on_sample: Callable[[], None] | None = None,
) -> tuple[Explanation, dict[str, np.ndarray]]:
    """The clean pass (predictions, targets, ReLU counts), and each method's map, maybe smoothed;
    `on_sample` is called after each noisy pass, so long SmoothGrad runs can show progress."""
    gradients, cam = backend_request(methods)
    size = images.shape[1:3]
    clean = backend.explain(images, gradients, targets, top_k, cam=cam)
    if smoothing is None:
        return clean, method_maps(clean, methods, size)
    spread = images.max(axis=(1, 2, 3)) - images.min(axis=(1, 2, 3))
    sigma = (smoothing.noise * spread).astype(np.float32)[:, None, None, None]
    total: dict[str, np.ndarray] = {}
    for sample in range(smoothing.samples):
        noise = np.random.default_rng([smoothing.seed, sample]).standard_normal(images.shape[1:])
        noisy = (images + sigma * noise.astype(np.float32)).astype(np.float32)
        result = backend.explain(noisy, gradients, clean.targets, cam=cam)
        for method, values in method_maps(result, methods, size).items():
            total[method] = total.get(method, 0) + values
        if on_sample is not None:
            on_sample()
    kept = np.result_type(*(v.dtype for v in total.values()), np.float32)  # fp64 stays fp64
    return clean, {m: (v / smoothing.samples).astype(kept) for m, v in total.items()}
