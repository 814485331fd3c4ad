"""What several commands share: checking `--weights`, opening a model, and what users must hear."""

from __future__ import annotations

import click

from gbp_cli.backends import Backend, WeightsSpec, open_backend
from gbp_cli.errors import GbpError

RANDOM_WARNING = (
    "gbp: WARNING: --weights random: an untrained, seeded network; "
    "its labels and maps say nothing about ImageNet"
)


def unique(values: tuple[str, ...], default: str | tuple[str, ...]) -> tuple[str, ...]:
    """Repeated options in the order given, each once; the default when none was given."""
    chosen = tuple(dict.fromkeys(values))
    return chosen or ((default,) if isinstance(default, str) else default)


def weights_spec(text: str) -> WeightsSpec:
    """`--weights`, checked before any framework loads."""
    spec = WeightsSpec.parse(text)
    if spec.kind == "file" and not (spec.path and spec.path.is_file()):
        raise GbpError(f"--weights {text}: no such file (expected imagenet, random or a path)")
    return spec


def announce(model: Backend) -> None:
    """Say on stderr what the user must know before trusting any output."""
    if model.info.weights.is_random:
        click.echo(RANDOM_WARNING, err=True)
    for warning in model.info.warnings:
        click.echo(f"gbp: WARNING: {warning}", err=True)


def load_model(
    backend: str, spec: WeightsSpec, device: str, precision: str = "fp32", mode: str = "auto"
) -> Backend:
    """Open a backend and say what the user must hear about it."""
    model = open_backend(backend, spec, device, precision, mode if backend == "tf" else "auto")
    announce(model)
    return model
