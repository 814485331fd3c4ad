"""What every output records about the model that made it (a different one makes it stale)."""

from __future__ import annotations

from gbp_cli.backends.base import ModelSpec, WeightsSpec
from gbp_cli.fingerprints import sha256_file


def model_record(
    backend: str, model: ModelSpec, spec: WeightsSpec, precision: str
) -> dict[str, str]:
    """The model part of every output's record: backend, network, weights (a file by its
    content), precision, and whatever else changes the maps."""
    weights = spec.describe()
    if spec.kind == "file" and spec.path is not None:
        weights = f"{spec.path.name} sha256:{sha256_file(spec.path)[:16]}"
    settings = {"backend": backend, "model": model.name, "weights": weights}
    settings["precision"] = precision
    if model.input_size or model.normalize:
        settings["input"] = f"{model.input_size or 224} {model.normalize or 'imagenet'}"
    if model.other_activations != "refuse":
        settings["other activations"] = model.other_activations
    if model.cam_layer:
        settings["cam layer"] = model.cam_layer
    return settings
