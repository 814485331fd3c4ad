"""Which loaded model a library call uses.

Loading takes seconds, so loaded models are kept (the four most recent) and shared by every
call and every Explainer that asks for the same one. The cache is keyed by content, so it cannot
go stale: a weights file (or .keras model) by its SHA-256 (gbp_cli.fingerprints, the digest
records carry), a model object by a SHA-256 of its weights and structure, taken again at each
call, so a file saved anew or a model trained further is loaded anew. `clear_cache()` frees
them. Each loaded model has a lock: threads that share it take turns on the backend, so each
gets the maps a serial run gives, and a model asked for by several threads at once is loaded
once.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gbp_cli.api.options import in_api_terms
from gbp_cli.backends import Backend, ModelSpec, WeightsSpec, open_backend
from gbp_cli.errors import ArgumentError
from gbp_cli.fingerprints import sha256_weights

CACHED = 4  # loaded models kept: enough for a notebook that compares a few
RANDOM_WEIGHTS = (
    "weights='random' is an untrained, seeded network: its labels and maps say nothing about "
    "ImageNet"
)


class RandomWeightsWarning(UserWarning):
    """The maps come from an untrained network."""


class ModelWarning(UserWarning):
    """Something about the loaded model a user must hear before trusting its maps (what the
    command line prints as `gbp: WARNING: …`)."""


def framework_of(model: object) -> str | None:
    """The backend that explains a model object: "torch" for a torch.nn.Module, "tf" for a
    Keras model; None for anything else. A framework not imported yet cannot have made it."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        return "tf"
    return None


@dataclass(frozen=True, eq=False)
class Request:
    """What to load: a model by name (as `gbp explain --model` takes it) with its weights, or a
    user's model object, which brings its own."""

    backend: str
    model: Any  # a name, or the user's torch.nn.Module or Keras model
    weights: WeightsSpec
    device: str
    precision: str
    spec: ModelSpec

    @property
    def is_object(self) -> bool:
        return not isinstance(self.model, str)

    def identity(self) -> Hashable:
        """Which cache slot serves it: one per name and options, one per model object."""
        which = ("object", id(self.model)) if self.is_object else ("name", self.weights)
        return (self.backend, *which, self.spec, self.device, self.precision)

    def content(self) -> str:
        """What the loaded model's maps depend on beyond its identity: the digest of a model
        object's weights and structure, or of the files its name and weights point at."""
        if self.is_object:
            return model_digest(self.model)
        files = [self.weights.path] if self.weights.path is not None else []
        if self.spec.kind == "keras-file":
            files.append(Path(self.spec.name))
        return " ".join(file_digest(path) for path in files)

    def load(self) -> Backend:
        if not self.is_object:
            return open_backend(
                self.backend, self.weights, self.device, self.precision, model=self.spec
            )
        if self.backend == "torch":
            from gbp_cli.backends.torch.backend import wrap_module

            return wrap_module(self.model, self.device, self.precision, self.spec)
        if self.precision != "fp32":
            raise ArgumentError(
                f"precision={self.precision!r}: a Keras model object is explained as it was "
                "built, in fp32; save it (model.save('m.keras')) and pass model='m.keras' for "
                "another precision"
            )
        from gbp_cli.backends.tf.backend import wrap_keras_model

        return wrap_keras_model(self.model, self.weights, self.device, spec=self.spec)


@dataclass(eq=False)
class Loaded:
    """A loaded model, what it was loaded from, and the lock its users take turns with."""

    backend: Backend
    content: str
    owner: Any = None  # a weak reference to the user's model object; None for a name
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serves(self, request: Request, content: str) -> bool:
        """Whether this is still the model `request` asks for, as its content is now."""
        if content != self.content:
            return False
        return self.owner is None or self.owner() is request.model


class Cache:
    """The most recently used loaded models, by identity, each checked against its content."""

    def __init__(self, size: int = CACHED) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, Loaded] = OrderedDict()
        self._loading: dict[Hashable, threading.Lock] = {}

    def get(self, request: Request, content: str | None = None) -> Loaded:
        """The loaded model `request` asks for, loaded now if the cache has no current one; a
        request that arrives while the same model loads waits for it."""
        content = request.content() if content is None else content
        key = request.identity()
        with self._lock:
            found = self._current(key, request, content)
            if found is not None:
                return found
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                found = self._current(key, request, content)
                if found is not None:
                    return found
            try:
                backend = request.load()
            except BaseException:
                with self._lock:
                    self._loading.pop(key, None)
                raise
            loaded = Loaded(backend, content, _weak(request.model) if request.is_object else None)
            with self._lock:
                self._entries[key] = loaded
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
                self._loading.pop(key, None)
        announce(loaded.backend, request.spec)
        return loaded

    def _current(self, key: Hashable, request: Request, content: str) -> Loaded | None:
        """The cached model for `key` if it still serves `request`; a stale one is dropped."""
        found = self._entries.get(key)
        if found is None:
            return None
        if not found.serves(request, content):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return found

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = Cache()


def clear_cache() -> None:
    """Forget every loaded model the library keeps (an Explainer keeps its own until it goes).
    Never needed for correct maps: the cache notices changed weights by itself."""
    CACHE.clear()


def announce(backend: Backend, spec: ModelSpec) -> None:
    """What the command line says on stderr about a model, said once per load as warnings, in
    the library's terms. A factory keeps its own weights under weights='random' (its warning
    says so): no random-weights warning for it."""
    if backend.info.weights.is_random and spec.kind != "factory":
        warnings.warn(RANDOM_WEIGHTS, RandomWeightsWarning, stacklevel=_user_level())
    for note in backend.info.warnings:
        warnings.warn(in_api_terms(note), ModelWarning, stacklevel=_user_level())


def _user_level() -> int:
    """The stacklevel that points a warning at the user's own line: the first caller outside
    gbp_cli."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _weak(model: object) -> Any:
    try:
        return weakref.ref(model)
    except TypeError:  # cannot be referred to weakly: its id alone identifies it
        return None


def file_digest(path: Path) -> str:
    """A file's SHA-256 (remembered by what stat says of it); "absent" when there is none, which
    the backend then reports in its own words."""
    try:
        return sha256_weights(path)
    except OSError:
        return "absent"


def model_digest(model: Any) -> str:
    """A SHA-256 of a model object's class, structure, settings and every weight and buffer, so
    that any change to them (training, loading a state_dict, swapping a layer, setting an
    attribute its forward reads) is a different model. Its train/eval mode is not part of it:
    gbp explains in eval mode whatever mode the user's model is in."""
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    if framework_of(model) == "torch":
        _torch_digest(model, digest)
    else:
        _keras_digest(model, digest)
    return digest.hexdigest()


def _torch_digest(module: Any, digest: Any) -> None:
    import torch

    digest.update(repr(module).encode())  # every submodule and its settings, ReLUs included
    for name, sub in module.named_modules():  # and the plain attributes a forward may read
        settings = sorted(
            (key, repr(value))
            for key, value in vars(sub).items()
            if not key.startswith("_") and key != "training"
        )
        digest.update(f"{name} {settings}".encode())
    for name, value in module.state_dict().items():
        if not isinstance(value, torch.Tensor):  # a module's extra state
            digest.update(f"{name} {value!r}".encode())
            continue
        tensor = value.detach()
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


def _keras_digest(model: Any, digest: Any) -> None:
    try:
        digest.update(model.to_json().encode())
    except Exception:  # a subclassed model without a config: its layers' kinds, then
        digest.update(repr([type(layer).__name__ for layer in model.layers]).encode())
    for variable in model.weights:
        value = np.ascontiguousarray(variable.numpy())
        digest.update(f"{variable.path} {value.dtype} {value.shape}".encode())
        digest.update(value.reshape(-1).view(np.uint8))
