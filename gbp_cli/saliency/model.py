"""Opening the model for a run: check that it can do the methods asked for, and tell the user
what they must hear before trusting any output."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from gbp_cli.backends import Backend, WeightsSpec, open_backend
from gbp_cli.backends.base import ModelSpec
from gbp_cli.saliency.maps import check_methods

RANDOM_WARNING = (
    "gbp: WARNING: --weights random: an untrained, seeded network; "
    "its labels and maps say nothing about ImageNet"
)


def announce(model: Backend) -> None:
    """Say on stderr what the user must know before trusting any output."""
    own = ModelSpec(model.info.model).kind == "factory"  # it keeps the weights it made itself
    if model.info.weights.is_random and not own:
        click.echo(RANDOM_WARNING, err=True)
    for warning in model.info.warnings:
        click.echo(f"gbp: WARNING: {warning}", err=True)


def load_model(
    backend: str,
    spec: WeightsSpec,
    device: str,
    precision: str = "fp32",
    mode: str = "auto",
    model: ModelSpec | None = None,
    methods: tuple[str, ...] = (),
) -> Backend:
    """Open a backend, check that it can do the methods, and say what the user must hear."""
    model = model or ModelSpec()
    loaded = open_backend(
        backend, spec, device, precision, mode if backend == "tf" else "auto", model=model
    )
    check_methods(loaded.info, methods, model)
    announce(loaded)
    return loaded


@dataclass(frozen=True)
class ModelChoice:
    """What the user chose of the model: an engine opens it where the work runs (here, or once
    on each Ray worker), so it travels as this description, never as a loaded model."""

    backend: str
    weights: WeightsSpec
    device: str = "auto"
    precision: str = "fp32"
    mode: str = "auto"  # TensorFlow's execution mode (--tf-mode)
    model: ModelSpec = field(default_factory=ModelSpec)
    methods: tuple[str, ...] = ()

    def open(self) -> Backend:
        return load_model(
            self.backend, self.weights, self.device, self.precision, self.mode, self.model,
            self.methods,
        )  # fmt: skip
