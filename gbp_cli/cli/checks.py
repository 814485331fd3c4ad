"""What several commands share: checking `--weights` and `--model`, opening a model, and what
users must hear before trusting an output."""

from __future__ import annotations

import difflib
from pathlib import Path

import click

from gbp_cli.backends import WeightsSpec
from gbp_cli.backends.base import ModelSpec
from gbp_cli.errors import GbpError
from gbp_cli.saliency.labels import imagenet_classes, load_labels, resolve_target
from gbp_cli.settings import Rendering


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


def check_colormap(name: str) -> str:
    """A matplotlib colormap name; matplotlib is imported only for a name that is not the
    default."""
    if name == Rendering.cmap:
        return name
    import matplotlib

    if name not in matplotlib.colormaps:
        known = sorted(matplotlib.colormaps)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        some = ", ".join(c for c in known if not c.endswith("_r"))[:300]
        raise GbpError(f"--cmap {name!r} is not a matplotlib colormap; {hint}known: {some}, …")
    return name


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` with 1 ≤ I ≤ N: this job's share of the inputs, counted from 1 like GNU split's
    `-n K/N` and SLURM's `--array=1-N`."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise GbpError(f"--shard {text!r}: expected I/N, e.g. 1/4 (I counts from 1)") from None
    if not 1 <= index <= count:
        raise GbpError(f"--shard {text!r}: I must be in 1..N (shares count from 1)")
    return index, count


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
