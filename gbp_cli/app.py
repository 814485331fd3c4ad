"""What each command does, in terms of the library: validate, load once, run, report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from backends import WeightsSpec, open_backend
from gbp_cli.errors import GbpError
from gbp_cli.inputs import STDIN, discover
from gbp_cli.labels import imagenet_classes, load_labels, resolve_target
from gbp_cli.pipeline import Job, run
from gbp_cli.report import printer

RANDOM_WARNING = (
    "gbp: WARNING: --weights random: an untrained, seeded DenseNet; "
    "its labels and maps say nothing about ImageNet"
)


def unique(values: tuple[str, ...], default: str) -> tuple[str, ...]:
    """Repeated options in the order given, each once."""
    return tuple(dict.fromkeys(values)) or (default,)


def explain_command(
    inputs: tuple[str, ...],
    *,
    backend: str,
    methods: tuple[str, ...],
    target: str | None,
    top_k: int,
    weights: str,
    labels: Path | None,
    out_dir: Path,
    formats: tuple[str, ...],
    resize: str,
    batch_size: int,
    device: str,
    overwrite: bool,
    null: bool,
) -> int:
    """Run `gbp explain`; returns how many inputs failed."""
    if target is not None and top_k > 1:
        raise GbpError("--target and --top-k are alternatives: give one of them")
    spec = WeightsSpec.parse(weights)
    if spec.kind == "file" and not (spec.path and spec.path.is_file()):
        raise GbpError(f"--weights {weights}: no such file (expected imagenet, random or a path)")
    if target is not None and spec.kind != "file" and labels is None:
        resolve_target(target, imagenet_classes())  # fail fast, before loading a framework
    model = open_backend(backend, spec, device)
    names = load_labels(labels, model.info.num_classes)
    if top_k > len(names):
        raise GbpError(f"--top-k {top_k} is more than the model's {len(names)} classes")
    job = Job(
        methods=unique(methods, "guided"),
        formats=unique(formats, "color"),
        out_dir=out_dir,
        labels=names,
        target=None if target is None else resolve_target(target, names),
        top_k=top_k,
        resize=resize,
        batch_size=batch_size,
        overwrite=overwrite,
    )
    if spec.is_random:
        click.echo(RANDOM_WARNING, err=True)
    sources = discover(
        inputs, stdin=sys.stdin if STDIN in inputs else None, null=null, skip=out_dir
    )
    return run(sources, model, job, printer(spec.is_random))
