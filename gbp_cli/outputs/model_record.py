"""What every output records about the model that made it (a different one makes it stale)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from gbp_cli.backends import BUILT_IN, weights_source
from gbp_cli.backends.base import ModelSpec, WeightsSpec
from gbp_cli.errors import GbpError
from gbp_cli.fingerprints import sha256_weights
from gbp_cli.outputs.records import unknown


def model_record(
    backend: str,
    model: ModelSpec,
    spec: WeightsSpec,
    precision: str,
    before_loading: bool = False,
) -> dict[str, str]:
    """The model part of every output's record: backend, network, weights (by name and by the
    content of the file that holds them), precision, and whatever else changes the maps.

    `before_loading` (--dry-run): what only loading can tell (a weights file not cached yet,
    named weights only the framework knows) is recorded as unknown, never guessed."""
    settings = {"backend": backend, "model": model.name}
    if backend not in BUILT_IN:  # a backend of your own: its code makes the maps
        settings["backend code"] = code_mark(backend)
    if model.kind == "factory":  # your own model: its code makes the network
        settings["model code"] = code_mark(model.name.rpartition(":")[0])
    settings |= weights_record(backend, model, spec, before_loading)
    settings["precision"] = precision
    if model.input_size or model.normalize:
        settings["input"] = f"{model.input_size or 224} {model.normalize or 'imagenet'}"
    if model.other_activations != "refuse":
        settings["other activations"] = model.other_activations
    if model.cam_layer:
        settings["cam layer"] = model.cam_layer
    return settings


def weights_record(
    backend: str, model: ModelSpec, spec: WeightsSpec, before_loading: bool = False
) -> dict[str, str]:
    """Which weights: a --weights FILE by its content; seeded random by the seed and the version
    of gbp's draw (a factory of your own: the weights its code makes, after that seed);
    ImageNet by the weights' name (torchvision's enum, Keras's application, the Lite0 package and
    its version) and the content of the file that holds them."""
    if spec.kind == "file" and spec.path is not None:
        return {"weights": file_mark(spec.path)}
    if spec.kind == "random" and model.kind == "factory":
        return {"weights": f"the factory's own, after torch.manual_seed({spec.seed})"}
    if spec.kind == "random":
        return {"weights": spec.describe(), "weights draw": f"gbp {weights_source.RANDOM_DRAW}"}
    source = weights_source.imagenet_source(backend, model.name)
    record = {"weights": source["weights"]}
    then = "; a run keeps these outputs only if its weights are the ones that made them"
    if "unknown" in source:
        record["weights file"] = unknown(source["unknown"] + then) if before_loading else "unknown"
    elif "file" in source:
        path = Path(source["file"])
        missing = f"{path.name}, not found"  # loaded from elsewhere (a stand-in backend)
        if path.is_file():
            record["weights file"] = file_mark(path)
        elif before_loading:  # a run fetches it first; a stand-in backend records it missing
            why = f"{path.name} is not in {path.parent} yet{then}"
            record["weights file"] = unknown(why, unless=missing)
        else:
            record["weights file"] = missing
    return record


def file_mark(path: Path) -> str:
    """A weights file as a record names it: its name and the start of its SHA-256."""
    try:
        digest = sha256_weights(path)
    except OSError as e:
        raise GbpError(f"cannot read the weights file {path}: {e.strerror or e}") from None
    return f"{path.name} sha256:{digest[:16]}"


def code_mark(module: str) -> str:
    """A module of your own as a record names it: its file's name and the start of its SHA-256
    (found as gbp imports a factory, the working folder first on the path, but without running
    it); "unknown" where it has no file to read."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    origin = getattr(found, "origin", None)
    if not origin or not Path(origin).is_file():
        return f"{module}, unknown"
    return f"{module} " + file_mark(Path(origin)).split(" ", 1)[1]
