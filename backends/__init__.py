"""Framework backends behind one small interface; each is imported only when asked for."""

from __future__ import annotations

import importlib

from .base import (
    DISTRIBUTION,
    Backend,
    BackendError,
    Explanation,
    ModelInfo,
    ModelSpec,
    WeightsSpec,
    precise,
)

__all__ = [
    "BACKENDS",
    "DISTRIBUTION",
    "Backend",
    "BackendError",
    "Explanation",
    "ModelInfo",
    "ModelSpec",
    "WeightsSpec",
    "open_backend",
]

# name → (modules to import in order, the last one the backend; frameworks it needs; pip extra)
BACKENDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "torch": ((".torch.backend",), ("torch", "torchvision"), "torch"),
    "tf": ((".tf.env", ".tf.backend"), ("tensorflow", "keras", "h5py"), "tf"),
}


def open_backend(
    name: str,
    weights: WeightsSpec,
    device: str,
    precision: str = "fp32",
    mode: str = "auto",
    model: ModelSpec = ModelSpec(),  # noqa: B008 (frozen)
) -> Backend:
    """Import a backend's framework on demand and build its model once.

    `mode` is how the backend runs: TensorFlow takes auto, eager, graph or xla (auto picks by
    workload in `plan`); torch takes only auto. `model` is what --model and its options named.
    """
    precise(precision)  # before seconds of framework import
    module_names, needs, extra = BACKENDS[name]
    try:
        module = [importlib.import_module(m, __name__) for m in module_names][-1]
    except ImportError as e:
        missing = (e.name or "").split(".")[0]
        if missing not in needs:
            raise
        raise BackendError(
            f"the {name} backend needs {missing}, which is not installed: "
            f"pip install '{DISTRIBUTION}[{extra}]'"
        ) from None
    return module.load(weights, device, precision, mode, model)
