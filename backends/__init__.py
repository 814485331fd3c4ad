"""Framework backends behind one small interface; each is imported only when asked for."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from types import ModuleType

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
    "BUILT_IN",
    "DISTRIBUTION",
    "Backend",
    "BackendError",
    "Explanation",
    "ModelInfo",
    "ModelSpec",
    "WeightsSpec",
    "backend_module",
    "open_backend",
    "register",
    "registered",
    "restore",
]

# The built-in backends: name → (modules to import in order, the last one the backend;
# the frameworks it needs; the pip extra that installs them).
BUILT_IN: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "torch": ((".torch.backend",), ("torch", "torchvision"), "torch"),
    "tf": ((".tf.env", ".tf.backend"), ("tensorflow", "keras", "h5py"), "tf"),
}


Entry = tuple[tuple[str, ...], tuple[str, ...], str]


def register(name: str, module: str, needs: tuple[str, ...] = (), extra: str = "") -> Entry | None:
    """Make the backend `name` (torch, tf, or a new one) load `module` — a backend of your own
    under a built-in name, or the tests' stand-in; returns what `name` loaded before, for
    `restore`."""
    before = BUILT_IN.get(name)
    BUILT_IN[name] = ((module,), needs, extra)
    return before


def restore(name: str, before: Entry | None) -> None:
    """Undo `register`: `name` loads what it loaded before (or nothing, if it was new)."""
    if before is None:
        BUILT_IN.pop(name, None)
    else:
        BUILT_IN[name] = before


@contextlib.contextmanager
def registered(name: str, module: str) -> Iterator[None]:
    """`register` for the length of a `with` block."""
    before = register(name, module)
    try:
        yield
    finally:
        restore(name, before)


def backend_module(name: str) -> ModuleType:
    """The module of backend `name`: a built-in one, or any importable module (package.module)
    with a `load` function that returns a Backend — your own, as --model takes your own model.
    It travels by name, so a Ray worker imports the same one."""
    modules, needs, extra = BUILT_IN.get(name, ((name,), (), ""))
    try:
        return [importlib.import_module(m, __name__) for m in modules][-1]
    except ImportError as e:
        missing = (e.name or "").split(".")[0]
        if name not in BUILT_IN and missing == name.split(".")[0]:
            raise BackendError(
                f"backend {name!r}: neither torch nor tf, and no module of that name can be "
                "imported"
            ) from e
        if missing not in needs:
            raise
        raise BackendError(
            f"the {name} backend needs {missing}, which is not installed: "
            f"pip install '{DISTRIBUTION}[{extra}]'"
        ) from None


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
    module = backend_module(name)
    if not callable(getattr(module, "load", None)):
        raise BackendError(f"backend {name!r}: its module has no load() function")
    return module.load(weights, device, precision, mode, model)
