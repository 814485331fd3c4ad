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

# name → (module, framework modules it needs, pip extra)
BACKENDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "torch": ("backends.torch_backend", ("torch", "torchvision"), "torch"),
    "tf": ("backends.tf_backend", ("tensorflow",), "tf"),
}


def open_backend(name: str, weights: WeightsSpec, device: str) -> Backend:
    """Import a backend's framework on demand and build its model once."""
    module_name, needs, extra = BACKENDS[name]
    for framework in needs:
        try:
            importlib.import_module(framework)
        except ImportError:
            raise GbpError(
                f"the {name} backend needs {framework}, which is not installed: "
                f"pip install 'gbp[{extra}]'"
            ) from None
    module = importlib.import_module(module_name)
    return module.load(weights, device)
