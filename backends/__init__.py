"""Framework backends behind one small interface; each is imported only when asked for."""

from __future__ import annotations

import importlib

from backends.base import METHODS, Backend, Explanation, ModelInfo, WeightsSpec
from gbp_cli.errors import GbpError

__all__ = [
    "BACKENDS",
    "METHODS",
    "Backend",
    "Explanation",
    "ModelInfo",
    "WeightsSpec",
    "open_backend",
]

# name → (modules to import in order, the last one the backend; frameworks it needs; pip extra)
BACKENDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "torch": (("backends.torch_backend",), ("torch", "torchvision"), "torch"),
    "tf": (("backends.tf_env", "backends.tf_backend"), ("tensorflow", "keras", "h5py"), "tf"),
}


def open_backend(name: str, weights: WeightsSpec, device: str, precision: str = "fp32") -> Backend:
    """Import a backend's framework on demand and build its model once."""
    module_names, needs, extra = BACKENDS[name]
    try:
        module = [importlib.import_module(m) for m in module_names][-1]
    except ImportError as e:
        missing = (e.name or "").split(".")[0]
        if missing not in needs:
            raise
        raise GbpError(
            f"the {name} backend needs {missing}, which is not installed: "
            f"pip install 'gbp[{extra}]'"
        ) from None
    return module.load(weights, device, precision)
