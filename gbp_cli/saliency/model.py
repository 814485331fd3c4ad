"""Opening the model for a run: check that it can do the methods asked for, and tell the user
what they must hear before trusting any output."""

from __future__ import annotations

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
    if model.info.weights.is_random:
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
