"""What several commands check that no single option can: `--model` against the options that
describe it, and `--target` against the classes `--labels` or `--weights` imply. (What one
option's value alone decides is its type's job, in cli/options.py.)"""

from __future__ import annotations

from pathlib import Path

import click

from gbp_cli.backends import WeightsSpec
from gbp_cli.backends.base import ModelSpec
from gbp_cli.errors import GbpError
from gbp_cli.saliency.labels import imagenet_classes, load_labels, resolve_target


def unique(values: tuple[str, ...], default: str | tuple[str, ...]) -> tuple[str, ...]:
    """Repeated options in the order given, each once; the default when none was given."""
    chosen = tuple(dict.fromkeys(values))
    return chosen or ((default,) if isinstance(default, str) else default)


def model_spec(
    model: str = "densenet201",
    input_size: int | None = None,
    normalize: str | None = None,
    cam_layer: str | None = None,
    other_activations: str = "refuse",
) -> ModelSpec:
    """`--model` and what describes it, checked before any framework loads."""
    spec = ModelSpec(model, input_size, normalize, cam_layer, other_activations)
    if (input_size or normalize) and spec.kind not in ("factory", "keras-file"):
        raise GbpError(
            "--input-size and --normalize describe your own model (package.module:factory or "
            f"a .keras file); {model} brings its own preprocessing"
        )
    return spec


def early_target(target: str | None, labels: Path | None, spec: WeightsSpec) -> int | None:
    """Resolve `--target` before any framework loads, and say which class a name meant."""
    if target is None:
        return None
    if labels is not None:
        names = load_labels(labels, None)
    elif spec.kind != "file":
        names = imagenet_classes()
    else:
        return None  # a checkpoint's own classes: resolved once the model is loaded
    index = resolve_target(target, names)
    if not target.strip().isdigit():
        click.echo(f"gbp: --target {target!r} is class {index}, {names[index]}", err=True)
    return index
